"""The pieces every gradient-based MCMC kernel shares: states, per-step diagnostics, the energy and its gradient
(autograd, or ``torch.func`` where a step is compiled), per-chain parameters, the Metropolis test, the latent-space
energy of a generator, and :class:`Algorithm`, a sampler as ``init``/``step`` (split into its draws and the
arithmetic on them). The conventions are those of ``ebmlab.samplers.mcmc``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import torch
from torch import Tensor

from ..nets.calls import in_blocks
from ..rng import rand, randn
from ..syncs import scalar_like
from ..types import EnergyFn


# --------------------------------------------------------------------------------------------
# States, infos and shared pieces
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class State:
    """Position with its cached energy and gradient (ULA, MALA, HMC).

    x: ``[b, D]``; energy: ``E(x)``, ``[b]`` (nats); grad: ``∇E(x)``, ``[b, D]``.
    """

    x: Tensor
    energy: Tensor
    grad: Tensor


@dataclass(frozen=True)
class KineticState:
    """Position and velocity of kinetic Langevin: x ``[b, D]``, v ``[b, D]`` (unit mass)."""

    x: Tensor
    v: Tensor


@dataclass(frozen=True)
class StepInfo:
    """Per-step diagnostics, one entry per chain.

    acceptance_prob: Metropolis acceptance probability ``min(1, α)``, ``[b]`` (ones for the
        unadjusted samplers).
    is_accepted: ``[b]`` bool.
    energy_error: HMC only: ``H(end of trajectory) - H(start)``, ``[b]`` (nats); the
        Hamiltonian is ``E(x) + ½‖p‖²``. ``None`` for the other samplers.
    """

    acceptance_prob: Tensor
    is_accepted: Tensor
    energy_error: Tensor | None = None


def energy_and_grad(energy_fn: EnergyFn, x: Tensor) -> tuple[Tensor, Tensor]:
    """``(E(x) [b], ∇E(x) [b, D])``, both detached; no graph is kept.

    Works under an outer ``torch.no_grad()`` (gradients are re-enabled locally).
    """
    with torch.enable_grad():
        x_leaf = x.detach().requires_grad_(True)
        e = energy_fn(x_leaf)
        if e.shape != x.shape[:1]:
            raise ValueError(
                f"energy_fn must map x of shape [b, D] = {tuple(x.shape)} to a tensor of shape "
                f"[b] = ({x.shape[0]},); got {tuple(e.shape)}. Squeeze a trailing unit "
                "dimension or sum over per-dimension energies."
            )
        (g,) = torch.autograd.grad(e.sum(), x_leaf, create_graph=False)
    return e.detach(), g.detach()


EnergyGrad = Callable[[Tensor], tuple[Tensor, Tensor]]  # x -> (E(x) [b], ∇E(x) [b, D])


def _eager(energy_fn: EnergyFn) -> EnergyGrad:
    return lambda x: energy_and_grad(energy_fn, x)


def functional_energy_and_grad(energy_fn: EnergyFn) -> EnergyGrad:
    """``x -> (E(x), ∇E(x))`` by ``torch.func.grad``: the form ``torch.compile`` traces into one graph (it cannot
    trace ``torch.autograd.grad``). The same values as :func:`energy_and_grad`."""
    def summed(x: Tensor) -> tuple[Tensor, Tensor]:
        e = energy_fn(x)
        return e.sum(), e

    grad = torch.func.grad(summed, has_aux=True)

    def energy_grad(x: Tensor) -> tuple[Tensor, Tensor]:
        g, e = grad(x)
        return e.detach(), g.detach()

    return energy_grad


def _per_chain(value: float | Tensor, x: Tensor) -> Tensor:
    """A scalar or per-chain ``[b]`` parameter as a ``[b, 1]`` (or scalar) tensor in x's dtype,
    so that it broadcasts against ``[b, D]``."""
    t = scalar_like(value, x)  # a number filled on the device: no host → device copy inside a chain
    if t.dim() == 0:
        return t
    if t.shape != x.shape[:1]:
        raise ValueError(
            f"a per-chain parameter must be a scalar or have shape [b] = ({x.shape[0]},); "
            f"got {tuple(t.shape)}."
        )
    return t.unsqueeze(1)


def metropolis_accept(log_alpha: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Accept each chain with probability ``min(1, exp(log_alpha))``.

    NaN log-ratios (e.g. a diverging proposal with infinite energy) count as rejections.

    Returns:
        ``(is_accepted [b] bool, acceptance_prob [b])``.
    """
    u = rand(log_alpha.shape, generator=generator, dtype=log_alpha.dtype,
             device=log_alpha.device)
    return _accept(log_alpha, u)


def _accept(log_alpha: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`metropolis_accept` with its uniform draws ``u [b]`` given."""
    log_alpha = torch.nan_to_num(log_alpha, nan=-math.inf)
    return u.log() < log_alpha, log_alpha.clamp(max=0.0).exp()


def _select(mask: Tensor, new: Tensor, old: Tensor) -> Tensor:
    """Rows of ``new`` where ``mask`` [b] is True, rows of ``old`` elsewhere."""
    return torch.where(mask.view(-1, *([1] * (new.dim() - 1))), new, old)


def _normal(x: Tensor, generator: torch.Generator) -> Tensor:
    return randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def _uniform(x: Tensor, generator: torch.Generator) -> Tensor:
    return rand(x.shape[:1], generator=generator, dtype=x.dtype, device=x.device)


# --------------------------------------------------------------------------------------------
# Latent-space energy
# --------------------------------------------------------------------------------------------
def latent_energy(
    generator_fn: Callable[[Tensor], Tensor], energy_fn: EnergyFn, inverse_temperature: float,
    rows: int | None = None,
) -> EnergyFn:
    """Energy of a generator's latent space: ``U(z) = ½‖z‖² + T · E(G(z))``.

    The target ``exp(-U(z))`` is the N(0, I) prior re-weighted by ``exp(-T E(G(z)))``; pushing
    its samples through ``G`` samples the GEBM/KALE model ``exp(-T E(x)) G(dx)``. Every sampler
    in this module works on it unchanged.

    Args:
        generator_fn: ``G: [b, d_z] -> [b, ...]`` (a network in eval mode, so rows are
            independent).
        energy_fn: ``E: [b, ...] -> [b]``.
        inverse_temperature: ``T >= 0``.
        rows: evaluate ``G`` and ``E`` on blocks of at most this many chains (None: all at once). The chains are
            independent, so the values and their gradients are those of one call; the blocks' activations are
            separate small tensors. On the CPU, where a large tensor is mapped afresh on every call, this is
            ~2× faster for convolutional networks (4096 stacked 28×28 images: 7.5 → 3.9 s a step at 128 rows,
            ``benchmarks/eval_time_images.md``).

    Returns:
        ``U: [b, d_z] -> [b]`` (nats).
    """
    if inverse_temperature < 0:
        raise ValueError(f"inverse_temperature must be >= 0, got {inverse_temperature}.")
    if rows is not None and rows < 1:
        raise ValueError(f"rows must be >= 1 or None, got {rows}.")

    def u_block(z: Tensor) -> Tensor:
        return 0.5 * (z**2).sum(1) + inverse_temperature * energy_fn(generator_fn(z))

    if rows is None:
        return u_block
    return lambda z: in_blocks(u_block, z, rows)


# --------------------------------------------------------------------------------------------
# Algorithms: a sampler as init/step functions
# --------------------------------------------------------------------------------------------
class Algorithm(NamedTuple):
    """A sampler as ``init``/``step`` functions. ``adaptable``: has a Metropolis step whose
    ``step_size`` can be tuned toward a target acceptance. ``draws``/``apply``: the step split into its random
    draws (made from the generator, in the step's order) and the arithmetic on them (``step`` is ``apply`` of
    ``draws``), so that :func:`run` can compile the arithmetic and keep the draws, and so the numbers, the same."""

    name: str
    init: Callable[..., Any]  # -> the algorithm's state (State, KineticState)
    step: Callable[..., tuple[Any, StepInfo]]
    adaptable: bool
    draws: Callable[..., tuple[Tensor, ...]] | None = None
    apply: Callable[..., tuple[Any, StepInfo]] | None = None
    # what compile=on falls back to when the whole step cannot be traced into one graph: an energy-and-gradient
    # carrying a compiled part of the step (HMC: _CompiledDriftKick, one leapfrog step); None: eager (auto) or refused
    compile_part: Callable[..., Any] | None = None


__all__ = ["Algorithm", "EnergyGrad", "KineticState", "State", "StepInfo", "energy_and_grad",
           "functional_energy_and_grad", "latent_energy", "metropolis_accept"]
