"""Samplers as pure functions of an energy function ``energy_fn(x: Tensor[b, D]) -> Tensor[b]``
(nats, one chain per row), with explicit state and an explicit ``torch.Generator``.

* :mod:`ebmlab.samplers.classic` — inverse transform, rejection, importance sampling, SIR.
* :mod:`ebmlab.samplers.mcmc` — the MCMC run loop (warm-up, adaptation, thinning, compiled steps), and every MCMC
  name below: one kernel family per module, ``core`` (states, the Metropolis test, latent-space energy, the
  ``Algorithm`` type), ``langevin`` (ULA, MALA, kinetic Langevin by ABOBA), ``hamiltonian`` (leapfrog, HMC),
  ``adapt`` (Robbins–Monro and dual averaging of the step size).
* :mod:`ebmlab.samplers.latent` — the table of energy-guided latent samplers (``SAMPLERS``).
* :mod:`ebmlab.samplers.ais` — annealed importance sampling for log Z, forward and reverse.
"""

from .ais import AISResult, ais_log_z, reverse_ais_log_z, sigmoid_schedule
from .classic import (
    ImportanceResult,
    RejectionInfo,
    effective_sample_size,
    importance,
    inverse_transform,
    log_abs_dz_dy,
    rejection,
    self_normalised_expectation,
    sir,
)
from .mcmc import (
    KineticState,
    RunResult,
    State,
    StepInfo,
    energy_and_grad,
    hmc,
    hmc_step,
    kinetic_langevin,
    kinetic_langevin_init,
    kinetic_langevin_step,
    langevin_init,
    latent_energy,
    leapfrog,
    mala,
    mala_step,
    run,
    tune_step_size,
    ula,
    ula_step,
)

__all__ = [
    "AISResult", "ais_log_z", "reverse_ais_log_z", "sigmoid_schedule",
    "ImportanceResult", "RejectionInfo", "effective_sample_size", "importance",
    "inverse_transform", "log_abs_dz_dy", "rejection", "self_normalised_expectation", "sir",
    "KineticState", "RunResult", "State", "StepInfo", "energy_and_grad", "hmc", "hmc_step", "kinetic_langevin",
    "kinetic_langevin_init", "kinetic_langevin_step", "langevin_init", "latent_energy",
    "leapfrog", "mala", "mala_step", "run", "tune_step_size", "ula", "ula_step",
]
