"""Hamiltonian Monte Carlo as pure functions: the leapfrog integrator and the HMC step (fresh momentum, leapfrog
trajectory, Metropolis test), with the forms ``ebmlab.samplers.mcmc.run`` compiles: the leapfrog as one scanned loop
when the whole step is one graph, else one compiled drift-and-kick per leapfrog step."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..compiled import own_code
from ..syncs import scalar_like
from ..types import EnergyFn
from .core import (Algorithm, EnergyGrad, State, StepInfo, _accept, _eager, _normal, _per_chain, _select, _uniform,
                   functional_energy_and_grad)
from .langevin import langevin_init


# --------------------------------------------------------------------------------------------
# HMC
# --------------------------------------------------------------------------------------------
def leapfrog(
    x: Tensor, p: Tensor, grad: Tensor, energy_fn: EnergyFn, step_size: float | Tensor,
    n_steps: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Leapfrog (velocity Verlet) integration of ``H(x, p) = E(x) + ½‖p‖²`` (unit mass).

    Args:
        x, p: start position and momentum ``[b, D]``; grad: ``∇E(x)`` ``[b, D]``.
        energy_fn: ``[b, D] -> [b]``.
        step_size: ``eps``, scalar or ``[b]``.
        n_steps: number of leapfrog steps ``L`` (``L`` gradient evaluations).

    Returns:
        ``(x_L, p_L, E(x_L), ∇E(x_L))``. The trajectory is time-reversible and volume-preserving;
        its energy error is O(eps²) for a fixed length ``L·eps``.
    """
    return _leapfrog(x, p, grad, _eager(energy_fn), step_size, n_steps)


def _leapfrog(x: Tensor, p: Tensor, grad: Tensor, energy_grad: EnergyGrad, step_size: float | Tensor,
              n_steps: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    if n_steps < 1:
        raise ValueError(f"leapfrog: n_steps must be >= 1, got {n_steps}.")
    eps = _per_chain(step_size, x)
    if torch.compiler.is_compiling():  # traced whole (compile=on): the leapfrog as one loop, see _scanned_leapfrog
        return _scanned_leapfrog(x, p, grad, energy_grad, eps, n_steps)
    p = p - 0.5 * eps * grad
    e = None
    step = getattr(energy_grad, "drift_kick", None)  # the compiled form of _drift_kick (compile=on), else eager
    for i in range(n_steps):
        # Merge the two consecutive half kicks between position updates into one full kick.
        kick = eps if i < n_steps - 1 else 0.5 * eps
        x, p, e, grad = step(x, p, eps, kick) if step is not None else _drift_kick(x, p, eps, kick, energy_grad)
    assert e is not None  # n_steps ≥ 1
    return x, p, e, grad


def _scanned_leapfrog(x: Tensor, p: Tensor, grad: Tensor, energy_grad: EnergyGrad, eps: Tensor,
                      n_steps: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:func:`_leapfrog` as a compiled graph has it: its ``n_steps - 1`` drift-and-full-kick steps as one loop
    (torch's ``scan`` operator: the energy traced once, not ``n_steps`` times, so the compile does not grow with
    the leapfrog steps), then the last drift and half kick; the same operations in the same order as the eager
    loop, so the same numbers to float rounding."""
    from torch._higher_order_ops.scan import scan

    p = p - 0.5 * eps * grad
    if n_steps > 1:
        def body(carry: tuple[Tensor, Tensor], _: Tensor) -> tuple[tuple[Tensor, Tensor], Tensor]:
            x_i, p_i, _e, _g = _drift_kick(*carry, eps, eps, energy_grad)
            return (x_i, p_i), _e

        (x, p), _ = scan(body, (x, p), torch.zeros(n_steps - 1, 1, dtype=x.dtype, device=x.device))
    return _drift_kick(x, p, eps, 0.5 * eps, energy_grad)


def _drift_kick(x: Tensor, p: Tensor, eps: Tensor, kick: Tensor,
                energy_grad: EnergyGrad) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One leapfrog position update and the momentum kick after it: ``(x', p', E(x'), ∇E(x'))``."""
    x = x + eps * p
    e, grad = energy_grad(x)
    return x, p - kick * grad, e, grad


class _CompiledDriftKick:
    """An energy-and-gradient (``__call__``, uncompiled) carrying HMC's compiled drift-and-kick (``drift_kick``),
    which :func:`_leapfrog` calls instead: one leapfrog step as one graph, whatever the number of leapfrog steps."""

    def __init__(self, energy_fn: EnergyFn, **compile_kw: Any):
        self.energy_grad = functional_energy_and_grad(energy_fn)
        eg = self.energy_grad
        step = own_code(lambda x, p, eps, kick: _drift_kick(x, p, eps, kick, eg))  # a code object per run
        self.drift_kick = torch.compile(step, **compile_kw)

    def __call__(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.energy_grad(x)


def hmc_step(
    state: State,
    energy_fn: EnergyFn,
    *,
    step_size: float | Tensor,
    generator: torch.Generator,
    n_leapfrog: int = 10,
    step_size_jitter: float = 0.0,
) -> tuple[State, StepInfo]:
    """One Hamiltonian Monte Carlo step: fresh momentum ``p ~ N(0, I)``, ``n_leapfrog`` leapfrog
    steps, Metropolis acceptance with probability ``min(1, exp(-ΔH))``.

    Args:
        step_size: leapfrog step ``eps`` (scalar or ``[b]``).
        n_leapfrog: leapfrog steps per proposal.
        step_size_jitter: if ``j > 0``, each chain uses ``eps·(1 + j·(2u - 1))``, ``u ~ U(0,1)``,
            which breaks the periodic trajectories a fixed ``L·eps`` can fall into on
            near-Gaussian targets (Neal 2011, "MCMC using Hamiltonian dynamics", §5.4.2.2).

    ``info.energy_error`` is ``ΔH = H(x_L, p_L) - H(x, p)`` of the proposed trajectory.
    """
    draws = hmc_draws(state, generator, step_size_jitter=step_size_jitter)
    return hmc_apply(state, _eager(energy_fn), draws, step_size=step_size, n_leapfrog=n_leapfrog,
                     step_size_jitter=step_size_jitter)


def hmc_draws(state: State, generator: torch.Generator, *, step_size_jitter: float = 0.0,
              **_: Any) -> tuple[Tensor, ...]:
    """The draws of one HMC step, in the order :func:`hmc_step` makes them: the jitter's uniforms ``[b]`` (only
    with ``step_size_jitter``), the momentum ``p [b, D]``, the acceptance test's uniforms ``[b]``."""
    jitter = (_uniform(state.x, generator),) if step_size_jitter else ()
    return (*jitter, _normal(state.x, generator), _uniform(state.x, generator))


def hmc_apply(state: State, energy_grad: EnergyGrad, draws: tuple[Tensor, ...], *, step_size: float | Tensor,
              n_leapfrog: int = 10, step_size_jitter: float = 0.0) -> tuple[State, StepInfo]:
    """:func:`hmc_step` with its draws given (:func:`hmc_draws`)."""
    x = state.x
    eps = scalar_like(step_size, x)
    if step_size_jitter:
        u_j, p, u = draws
        eps = eps * (1.0 + step_size_jitter * (2.0 * u_j - 1.0))
    else:
        p, u = draws
    x1, p1, e1, g1 = _leapfrog(x, p, state.grad, energy_grad, eps, n_leapfrog)
    delta_h = (e1 + 0.5 * (p1**2).sum(1)) - (state.energy + 0.5 * (p**2).sum(1))
    accept, prob = _accept(-delta_h, u)
    new = State(_select(accept, x1, x), _select(accept, e1, state.energy),
                _select(accept, g1, state.grad))
    return new, StepInfo(prob, accept, energy_error=delta_h)


# HMC's apply loops over n_leapfrog energy evaluations: compiled whole, its leapfrog runs as torch's scan operator
# (_scanned_leapfrog; unrolled, the compile time grew steeply with the leapfrog steps: 505 s cold at 10 on a 50-D
# Gaussian). Where scan cannot trace the energy (torch 2.13 fails on a closure's transposed tensor, e.g. x @ w.T
# with w a plain tensor, not a parameter), one leapfrog step (drift, energy, gradient, kick) is compiled and called
# n_leapfrog times, the momentum draw and the acceptance eager
hmc = Algorithm("hmc", langevin_init, hmc_step, True, hmc_draws, hmc_apply,
                compile_part=lambda energy_fn, **kw: _CompiledDriftKick(energy_fn, **kw))


__all__ = ["hmc", "hmc_apply", "hmc_draws", "hmc_step", "leapfrog"]
