"""Langevin kernels as pure functions: ULA and MALA (overdamped, with and without the Metropolis test) and kinetic
(underdamped) Langevin by the ABOBA splitting GEBM samples with. Each kernel is ``init``/``step`` and, for
``ebmlab.samplers.mcmc.run``'s compiled chains, the step split into ``draws`` and ``apply``."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..types import EnergyFn
from .core import (Algorithm, EnergyGrad, KineticState, State, StepInfo, _accept, _eager, _normal, _per_chain,
                   _select, _uniform, energy_and_grad)


# --------------------------------------------------------------------------------------------
# ULA and MALA
# --------------------------------------------------------------------------------------------
def langevin_init(x0: Tensor, energy_fn: EnergyFn) -> State:
    """Initial :class:`State` for ULA, MALA and HMC: ``x0 [b, D]`` with its energy and gradient."""
    if x0.dim() != 2:
        raise ValueError(f"x0 must have shape [b, D] (one chain per row), got {tuple(x0.shape)}.")
    e, g = energy_and_grad(energy_fn, x0)
    return State(x0.detach(), e, g)


def ula_step(
    state: State, energy_fn: EnergyFn, *, step_size: float | Tensor, generator: torch.Generator
) -> tuple[State, StepInfo]:
    """One unadjusted Langevin step ``x' = x - (h/2) ∇E(x) + sqrt(h) ξ``, ``ξ ~ N(0, I)``.

    This is the Euler–Maruyama discretisation of ``dx = -½∇E dt + dW`` with time step ``h``
    (``step_size``): its stationary law is ``exp(-E)`` only as ``h -> 0``; for finite ``h`` it is
    biased (for ``E = x²/(2σ²)`` the stationary variance is ``σ² / (1 - h/(4σ²))``).
    KALE's latent ULA ``z ← z - (γ/2)∇U + sqrt(γ) ξ`` is this step with ``h = γ``.
    """
    return ula_apply(state, _eager(energy_fn), ula_draws(state, generator), step_size=step_size)


def ula_draws(state: State, generator: torch.Generator, **_: Any) -> tuple[Tensor, ...]:
    """The noise of one ULA step: ``ξ [b, D]``."""
    return (_normal(state.x, generator),)


def ula_apply(state: State, energy_grad: EnergyGrad, draws: tuple[Tensor, ...], *,
              step_size: float | Tensor) -> tuple[State, StepInfo]:
    """:func:`ula_step` with its draws given (:func:`ula_draws`) and ``energy_grad: x -> (E(x), ∇E(x))``."""
    (noise,) = draws
    h = _per_chain(step_size, state.x)
    x = state.x - 0.5 * h * state.grad + h.sqrt() * noise
    e, g = energy_grad(x)
    ones = torch.ones_like(e)
    return State(x, e, g), StepInfo(ones, torch.ones_like(e, dtype=torch.bool))


def mala_step(
    state: State, energy_fn: EnergyFn, *, step_size: float | Tensor, generator: torch.Generator
) -> tuple[State, StepInfo]:
    """One Metropolis-adjusted Langevin step (Roberts & Tweedie 1996).

    Proposal ``y = x - (h/2)∇E(x) + sqrt(h) ξ``, i.e. ``q(y|x) = N(x - (h/2)∇E(x), h I)``,
    accepted per chain with probability
    ``min(1, exp(-E(y) + E(x)) q(x|y) / q(y|x))``, so ``exp(-E)`` is invariant for every ``h``.
    The optimal acceptance rate in high dimension is about 0.574.
    """
    return mala_apply(state, _eager(energy_fn), mala_draws(state, generator), step_size=step_size)


def mala_draws(state: State, generator: torch.Generator, **_: Any) -> tuple[Tensor, ...]:
    """The draws of one MALA step, in the order :func:`mala_step` makes them: ``ξ [b, D]``, then the uniforms
    ``u [b]`` of the acceptance test."""
    return _normal(state.x, generator), _uniform(state.x, generator)


def mala_apply(state: State, energy_grad: EnergyGrad, draws: tuple[Tensor, ...], *,
               step_size: float | Tensor) -> tuple[State, StepInfo]:
    """:func:`mala_step` with its draws given (:func:`mala_draws`)."""
    noise, u = draws
    x, h = state.x, _per_chain(step_size, state.x)
    y = x - 0.5 * h * state.grad + h.sqrt() * noise
    e_y, g_y = energy_grad(y)
    # log q(x|y) - log q(y|x); the normalisers cancel because the variance h is the same both
    # ways, and (y - x + (h/2)∇E(x)) / sqrt(h) is exactly the noise drawn.
    log_q_rev = -((x - y + 0.5 * h * g_y) ** 2).sum(1) / (2.0 * h.squeeze(-1))
    log_q_fwd = -0.5 * (noise**2).sum(1)
    log_alpha = state.energy - e_y + log_q_rev - log_q_fwd
    accept, prob = _accept(log_alpha, u)
    new = State(_select(accept, y, x), _select(accept, e_y, state.energy),
                _select(accept, g_y, state.grad))
    return new, StepInfo(prob, accept)


# --------------------------------------------------------------------------------------------
# Kinetic (underdamped) Langevin, ABOBA splitting as in KALE / GEBM sampling
# --------------------------------------------------------------------------------------------
def kinetic_langevin_init(x0: Tensor, energy_fn: EnergyFn | None = None) -> KineticState:
    """Initial :class:`KineticState`: ``x0 [b, D]`` with zero velocity (``v0 = 0``).

    ``energy_fn`` is accepted for a uniform ``init(x0, energy_fn)`` signature and unused: the
    ABOBA step evaluates the gradient at the half-step position, not at ``x``.
    """
    if x0.dim() != 2:
        raise ValueError(f"x0 must have shape [b, D] (one chain per row), got {tuple(x0.shape)}.")
    x0 = x0.detach()
    return KineticState(x0, torch.zeros_like(x0))


def kinetic_langevin_step(
    state: KineticState,
    energy_fn: EnergyFn,
    *,
    gamma: float,
    kappa: float,
    generator: torch.Generator,
) -> tuple[KineticState, StepInfo]:
    """One step of kinetic Langevin ``dx = v dt, dv = -∇U(x) dt - κ v dt + sqrt(2κ) dW``
    (unit mass), ABOBA splitting with one gradient evaluation per step:

    ``h = 2 sqrt(gamma)``, ``C = exp(-kappa h)``, ``D = sqrt(1 - C²)``::

        x½ = x + (h/2) v
        v½ = v - (h/2) ∇U(x½)
        ṽ  = C v½ + D ξ            (exact Ornstein–Uhlenbeck step, ξ ~ N(0, I))
        v' = ṽ - (h/2) ∇U(x½)
        x' = x½ + (h/2) v'

    Args:
        gamma: step parameter; the time step is ``h = 2 sqrt(gamma)`` (KALE's "step size";
            ``(h/2)² = gamma`` is the scale of the gradient's effect on x per half step).
        kappa: friction ``κ`` (per unit time).
        Both are required keywords: the original code's positional defaults are easy to swap.

    The stationary law of x is ``exp(-U)`` up to an O(h²) discretisation bias (no Metropolis
    correction); ``info.acceptance_prob`` is all ones.
    """
    return kinetic_langevin_apply(state, _eager(energy_fn), kinetic_langevin_draws(state, generator), gamma=gamma,
                                  kappa=kappa)


def kinetic_langevin_draws(state: KineticState, generator: torch.Generator, **_: Any) -> tuple[Tensor, ...]:
    """The noise of one kinetic Langevin step: ``ξ [b, D]`` (the energy draws nothing, so drawing it before the
    gradient gives the numbers :func:`kinetic_langevin_step` always drew)."""
    return (_normal(state.x, generator),)


def kinetic_langevin_apply(state: KineticState, energy_grad: EnergyGrad, draws: tuple[Tensor, ...], *,
                           gamma: float, kappa: float) -> tuple[KineticState, StepInfo]:
    """:func:`kinetic_langevin_step` with its draws given (:func:`kinetic_langevin_draws`)."""
    (noise,) = draws
    x, v = state.x, state.v
    h = 2.0 * math.sqrt(gamma)
    c = math.exp(-kappa * h)
    d = math.sqrt(1.0 - c * c)
    x_half = x + 0.5 * h * v
    _, g = energy_grad(x_half)
    v_half = v - 0.5 * h * g
    v_new = c * v_half + d * noise - 0.5 * h * g
    x_new = x_half + 0.5 * h * v_new
    ones = torch.ones(x.shape[:1], dtype=x.dtype, device=x.device)
    return KineticState(x_new, v_new), StepInfo(ones, ones.bool())


ula = Algorithm("ula", langevin_init, ula_step, False, ula_draws, ula_apply)
mala = Algorithm("mala", langevin_init, mala_step, True, mala_draws, mala_apply)
kinetic_langevin = Algorithm("kinetic_langevin", kinetic_langevin_init, kinetic_langevin_step, False,
                             kinetic_langevin_draws, kinetic_langevin_apply)


__all__ = ["kinetic_langevin", "kinetic_langevin_apply", "kinetic_langevin_draws", "kinetic_langevin_init",
           "kinetic_langevin_step", "langevin_init", "mala", "mala_apply", "mala_draws", "mala_step", "ula",
           "ula_apply", "ula_draws", "ula_step"]
