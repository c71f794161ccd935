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
from typing import Any, Callable, Literal

import torch
from torch import Tensor

from ..errors import EbmlabError
from ..nets.calls import in_blocks
from . import mcmc

SamplerName = Literal["kinetic", "ula", "mala", "hmc"]


@dataclass(frozen=True)
class GuidedConfig:
    sampler: SamplerName = "kinetic"
    inverse_temperature: float = 1.0
    n_steps: int = 500
    step_size: float = 1e-3  # ULA/MALA/HMC step; for kinetic Langevin this is γ (time step h = 2√γ)
    friction: float = 1.0  # kinetic Langevin κ (per unit time)
    n_leapfrog: int = 5

    def __post_init__(self) -> None:
        import math

        bad = [f"{name}={v!r} (expected {want})" for name, v, ok, want in (
            ("sampler", self.sampler, self.sampler in ("kinetic", "ula", "mala", "hmc"), "kinetic, ula, mala or hmc"),
            ("inverse_temperature", self.inverse_temperature,
             isinstance(self.inverse_temperature, (int, float)) and math.isfinite(self.inverse_temperature)
             and self.inverse_temperature >= 0, "a finite number ≥ 0"),
            ("n_steps", self.n_steps, isinstance(self.n_steps, int) and self.n_steps >= 1, "an integer ≥ 1"),
            ("step_size", self.step_size, isinstance(self.step_size, (int, float)) and math.isfinite(self.step_size)
             and self.step_size > 0, "a finite number > 0"),
            ("friction", self.friction, isinstance(self.friction, (int, float)) and math.isfinite(self.friction)
             and self.friction >= 0, "a finite number ≥ 0"),
            ("n_leapfrog", self.n_leapfrog, isinstance(self.n_leapfrog, int) and self.n_leapfrog >= 1,
             "an integer ≥ 1")) if not ok]
        if bad:
            raise EbmlabError("invalid energy-guided sampler settings: " + "; ".join(bad))


def latent_samples(generate: Callable[[Tensor], Tensor], energy: Callable[[Tensor], Tensor], latent_dim: int,
                   n: int, cfg: GuidedConfig, *, generator: torch.Generator, device: Any = None,
                   progress: bool = False, rows: int | None = None) -> tuple[Tensor, dict[str, float]]:
    """n energy-guided samples G(z) [n, *shape], z run by ``cfg.sampler`` on U(z) = ½‖z‖² + T·E(G(z)) from
    z ~ N(0, I_d) with d = ``latent_dim``; ``generate``: z [b, d] → x, ``energy``: x → E(x) [b] (nats).

    ``rows``: evaluate the networks on blocks of at most this many chains (``mcmc.latent_energy``; the same
    samples, faster on the CPU for convolutional networks; a method's ``forward_rows``).

    Returns the samples and diagnostics (mean acceptance for MALA/HMC, mean latent energy before/after).
    """
    z0 = torch.randn(n, latent_dim, generator=generator, device=device)
    u = mcmc.latent_energy(generate, energy, cfg.inverse_temperature, rows)
    kw: dict[str, Any]
    if cfg.sampler == "kinetic":
        algo, kw = mcmc.kinetic_langevin, {"gamma": cfg.step_size, "kappa": cfg.friction}
    elif cfg.sampler == "ula":
        algo, kw = mcmc.ula, {"step_size": cfg.step_size}
    elif cfg.sampler == "mala":
        algo, kw = mcmc.mala, {"step_size": cfg.step_size}
    elif cfg.sampler == "hmc":
        algo, kw = mcmc.hmc, {"step_size": cfg.step_size, "n_leapfrog": cfg.n_leapfrog}
    else:
        raise EbmlabError(f"unknown sampler {cfg.sampler!r}; valid: kinetic, ula, mala, hmc")
    with torch.no_grad():
        u0 = float(u(z0).mean())
    res = mcmc.run(algo, z0, u, n_steps=cfg.n_steps, generator=generator, progress=progress, **kw)
    z = res.final_state.x
    with torch.no_grad():
        x = in_blocks(generate, z, rows)
        u1 = float(u(z).mean())
    return x, {"acceptance": res.mean_acceptance, "latent_energy_start": u0, "latent_energy_end": u1}
