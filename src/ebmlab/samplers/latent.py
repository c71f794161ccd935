"""Energy-guided latent sampling for any trained (generator, energy) pair — KALE/GEBM's sampler.

The model Q(dx) ∝ exp(−T·E(x)) G(dx) (Arbel, Zhou, Gretton, "Generalized Energy Based Models", §4) is sampled
in the generator's latent space: U(z) = ½‖z‖² + T·E(G(z)) is run by an MCMC sampler from z ~ N(0, I) and the
chains are pushed through G. T is the inverse temperature: T = 0 gives base-only samples, T = 1 the GEBM of a
KALE model. For VGAN/BiB/EBGAN pairs, this samples the prior re-weighted by their energy.

Pure functions of a generator and an energy function (no method object): KALE's ``sample`` and the API's
``sample_run(guided=...)`` call :func:`latent_samples` with the method's ``generate``, ``energy`` and
``latent_dim``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, NamedTuple, get_args

import torch
from torch import Tensor

from ..errors import EbmlabError
from ..metadata import out_of_range
from ..metadata import SamplerChoice, SamplerName
from ..nets.calls import in_blocks
from . import mcmc



class LatentSampler(NamedTuple):
    """A sampler of the energy-guided latent chains: its kernel and its step's settings from a GuidedConfig."""

    algorithm: mcmc.Algorithm
    settings: Callable[[GuidedConfig], dict[str, Any]]


# The one table of the latent samplers: every other place (GuidedConfig's check, KALE's option, `ebmlab sample
# --sampler`, the accept/reject diagnostics) reads it or metadata.SamplerName / SamplerChoice, which must name its rows
SAMPLERS: dict[str, LatentSampler] = {
    "kinetic": LatentSampler(mcmc.kinetic_langevin, lambda c: {"gamma": c.mcmc_step_size, "kappa": c.mcmc_friction}),
    "ula": LatentSampler(mcmc.ula, lambda c: {"step_size": c.mcmc_step_size}),
    "mala": LatentSampler(mcmc.mala, lambda c: {"step_size": c.mcmc_step_size}),
    "hmc": LatentSampler(mcmc.hmc, lambda c: {"step_size": c.mcmc_step_size, "n_leapfrog": c.mcmc_leapfrog}),
}
if set(get_args(SamplerName)) != set(SAMPLERS) or set(get_args(SamplerChoice)) != {*SAMPLERS, "none"}:
    raise ImportError("samplers.latent: metadata.SamplerName / SamplerChoice must name exactly the rows of SAMPLERS")
# the samplers with a Metropolis accept/reject step (an acceptance rate to report)
ACCEPT_REJECT = tuple(name for name, s in SAMPLERS.items() if s.algorithm.adaptable)


@dataclass(frozen=True)
class GuidedConfig:
    """Settings of the energy-guided latent sampler, under the names a method's options use for them (KALE's
    ``sampler``, ``inverse_temperature``, ``mcmc_*``) and the ``ebmlab sample`` flags (``--mcmc-steps``, ...); each
    value checked against the range of its ``OPTIONS`` entry (``ebmlab.metadata.RANGES``) when it is made."""

    sampler: SamplerName = "kinetic"
    inverse_temperature: float = 1.0
    mcmc_steps: int = 500
    mcmc_step_size: float = 1e-3
    mcmc_friction: float = 1.0
    mcmc_leapfrog: int = 5
    mcmc_compile: str = "off"
    mcmc_decay_every: int = 0
    mcmc_decay: float = 0.1

    OPTIONS: ClassVar[dict[str, tuple[str, str]]] = {
        "sampler": ("choice", "energy-guided latent sampler (kinetic: kinetic Langevin; samplers.latent.SAMPLERS)"),
        "inverse_temperature": ("nonneg", "inverse temperature T of the energy in U(z) = |z|²/2 + T·E(G(z)) "
                                          "(0: the base generator's latent prior)"),
        "mcmc_steps": ("int1", "MCMC steps of the latent sampler"),
        "mcmc_step_size": ("pos", "step size of ULA/MALA/HMC; for kinetic Langevin γ (time step h = 2√γ)"),
        "mcmc_friction": ("nonneg", "friction κ of kinetic Langevin (per unit time)"),
        "mcmc_leapfrog": ("int1", "leapfrog steps of each HMC proposal"),
        "mcmc_compile": ("choice", "run each sampler step as one torch.compile'd graph (the same "
                                "samples to float rounding; the compile, tens of seconds, is paid once per draw; auto: "
                                "the first steps timed eagerly, the rest compiled where that repays a compile; "
                                "samplers.mcmc.run)"),
        "mcmc_decay_every": ("int0", "ula/mala/hmc: multiply the step size by mcmc_decay after every this many steps, "
                                     "as GEBM's released Langevin sampler does (×0.1 every 200; 0: a constant step)"),
        "mcmc_decay": ("open01", "the factor of mcmc_decay_every"),
    }

    def __post_init__(self) -> None:
        bad = out_of_range(self, self.OPTIONS)
        if self.sampler not in SAMPLERS:
            bad.insert(0, f"sampler={self.sampler!r} (expected one of {', '.join(SAMPLERS)})")
        if self.mcmc_decay_every and self.sampler == "kinetic":
            bad.append("mcmc_decay_every needs sampler ula, mala or hmc (kinetic Langevin's velocity would be reset "
                       "at each decay; GEBM's released decaying sampler is plain Langevin, ula)")
        if self.mcmc_compile not in ("off", "on", "auto"):
            bad.append(f"mcmc_compile={self.mcmc_compile!r} (expected off, on or auto)")
        # whether this machine can compile is not a property of the settings: a run trained with mcmc_compile=on
        # stays a valid run on a machine without a compiler (check_compiler refuses the compiled draw itself)
        if bad:
            raise EbmlabError("invalid energy-guided sampler settings: " + "; ".join(bad))


def check_compiler(mcmc_compile: str, device: Any = None) -> None:
    """Refuse ``mcmc_compile='on'`` where torch.compile has no compiler (``device``: the chains' device; None: any of
    the CPU and CUDA), naming the way out; ``off`` and ``auto`` always pass (auto runs eagerly there)."""
    devices = [torch.device(device)] if device is not None else [torch.device("cpu"), torch.device("cuda")]
    if mcmc_compile == "on" and not any(mcmc.compiler_available(d) for d in devices):
        raise EbmlabError("mcmc_compile='on' needs a compiler for torch.compile (a C++ compiler and Python's headers "
                          "for the CPU, Triton for CUDA) and this machine has none: use mcmc_compile=off or auto "
                          "(ebmlab sample/eval of a run: --mcmc-compile off)")


def latent_samples(generate: Callable[[Tensor], Tensor], energy: Callable[[Tensor], Tensor], latent_dim: int,
                   n: int, cfg: GuidedConfig, *, generator: torch.Generator, device: Any = None,
                   progress: bool = False, rows: int | None = None) -> tuple[Tensor, dict[str, float | None]]:
    """n energy-guided samples G(z) [n, *shape], z run by ``cfg.sampler`` on U(z) = ½‖z‖² + T·E(G(z)) from
    z ~ N(0, I_d) with d = ``latent_dim``; ``generate``: z [b, d] → x, ``energy``: x → E(x) [b] (nats).

    ``rows``: evaluate the networks on blocks of at most this many chains (``mcmc.latent_energy``; the same
    samples, faster on the CPU for convolutional networks; a method's ``forward_rows``).

    Returns the samples and diagnostics (mean acceptance for MALA/HMC, None for ULA and kinetic Langevin, which
    accept every step; mean latent energy before/after).
    """
    check_compiler(cfg.mcmc_compile, device if device is not None else "cpu")
    z0 = torch.randn(n, latent_dim, generator=generator, device=device)
    u = mcmc.latent_energy(generate, energy, cfg.inverse_temperature, rows)
    algo, kw = SAMPLERS[cfg.sampler].algorithm, SAMPLERS[cfg.sampler].settings(cfg)  # a GuidedConfig's is checked
    with torch.no_grad():
        u0 = float(u(z0).mean())
    z, acc = z0, []
    for seg, steps in enumerate(_segments(cfg.mcmc_steps, cfg.mcmc_decay_every)):
        if seg and "step_size" in kw:  # GEBM's schedule: the step size × decay after every decay_every steps
            kw = {**kw, "step_size": kw["step_size"] * cfg.mcmc_decay}
        try:
            res = mcmc.run(algo, z, u, n_steps=steps, generator=generator, progress=progress,
                           compile=cfg.mcmc_compile, **kw)
        except ValueError as exc:  # mcmc.run's refusals of a compile (cache, untraceable energy): one line
            if not str(exc).startswith("compile="):
                raise
            raise EbmlabError(f"mcmc_{exc}") from None
        z = res.final_state.x
        acc.append((steps, res.mean_acceptance))
    with torch.no_grad():
        x = in_blocks(generate, z, rows)
        u1 = float(u(z).mean())
    # ULA and kinetic Langevin have no accept/reject step: an acceptance rate (always 1) would say nothing
    acceptance = (sum(n * a for n, a in acc) / cfg.mcmc_steps) if algo.adaptable else None
    return x, {"acceptance": acceptance, "latent_energy_start": u0, "latent_energy_end": u1}


def _segments(steps: int, every: int) -> list[int]:
    """The chain's steps cut into runs of constant step size: ``every`` steps each (the last the rest), or one run."""
    if every <= 0 or every >= steps:
        return [steps]
    return [every] * (steps // every) + ([steps % every] if steps % every else [])
