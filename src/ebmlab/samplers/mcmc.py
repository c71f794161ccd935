"""Gradient-based MCMC as pure functions: ULA, MALA, HMC and kinetic (underdamped) Langevin.

Every sampler is a pair ``init(x0, energy_fn) -> state`` and
``step(state, energy_fn, *, ..., generator) -> (state, info)``; :func:`run` chains steps.

Conventions
-----------
* ``energy_fn(x: Tensor[b, D]) -> Tensor[b]`` is an unnormalised negative log-density (nats),
  one chain per row. Rows must be independent (``energy_fn(x)[i]`` depends on ``x[i]`` only —
  e.g. no BatchNorm in training mode), because ``grad E`` is taken of ``energy_fn(x).sum()``.
  The target is ``p(x) ∝ exp(-E(x))``.
* Gradients are taken with ``torch.autograd.grad`` on a detached leaf with
  ``create_graph=False``, so no graph survives a step and parameters of ``energy_fn`` receive
  no ``.grad``. Call the samplers outside ``torch.inference_mode``.
* ``step_size`` may be a float, a 0-d tensor or a tensor ``[b]`` (one step size per chain).
* All randomness is drawn from the explicit ``generator``; results are bit-reproducible for a
  given seed, device and dtype. Work happens in the dtype of ``x0``.
"""

from __future__ import annotations

import math
import dataclasses
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, TypeVar

import torch
from torch import Tensor

# compiler_available is patched in tests as mcmc.compiler_available
from ..compiled import cache_message, compiler_available, os_error_in, own_code
from ..nets.calls import in_blocks
from ..rng import rand, randn
from ..syncs import scalar_like
from ..types import EnergyFn

__all__ = [
    "State",
    "KineticState",
    "StepInfo",
    "energy_and_grad",
    "metropolis_accept",
    "leapfrog",
    "langevin_init",
    "ula_step",
    "mala_step",
    "hmc_step",
    "kinetic_langevin_init",
    "kinetic_langevin_step",
    "latent_energy",
    "tune_step_size",
    "DualAveraging",
    "compiler_available",
    "dual_averaging_init",
    "dual_averaging_update",
    "Algorithm",
    "ula",
    "mala",
    "hmc",
    "kinetic_langevin",
    "RunResult",
    "run",
]



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


def _normal(x: Tensor, generator: torch.Generator) -> Tensor:
    return randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def _uniform(x: Tensor, generator: torch.Generator) -> Tensor:
    return rand(x.shape[:1], generator=generator, dtype=x.dtype, device=x.device)


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
# Step-size adaptation
# --------------------------------------------------------------------------------------------
def tune_step_size(
    step_size: float,
    acceptance: float,
    t: int,
    *,
    target: float = 0.65,
    rate: float = 1.0,
    decay: float = 0.5,
) -> float:
    """One Robbins–Monro update of the log step size toward a target acceptance probability:
    ``log eps <- log eps + rate · t^(-decay) · (acceptance - target)``.

    ``acceptance`` is the Metropolis acceptance probability averaged over chains, so one global
    step size is tuned. That average is nearly noise-free with hundreds of chains, which is why
    plain stochastic approximation is used rather than dual averaging (Hoffman & Gelman 2014),
    whose iterate averaging guards against noise that is absent here and slows convergence:
    for HMC (10 leapfrog steps, 4000 chains) on the correlated 2-D Gaussian of the tests,
    started from eps = 0.1, dual averaging still gives 0.73 acceptance (target 0.65) after 300
    warm-up steps, while this rule is within 0.01 of the target after 30.
    ``decay = 0.5`` (gains ``rate/sqrt(t)``, t = 1, 2, ...) settles for a fixed target;
    ``decay = 0`` (constant gain) tracks a moving one, as in annealing.
    """
    if t < 1:
        raise ValueError(f"tune_step_size: t counts updates from 1, got {t}.")
    return step_size * math.exp(rate * t ** (-decay) * (acceptance - target))


@dataclasses.dataclass(frozen=True)
class DualAveraging:
    """Per-chain dual averaging of the log step size (Hoffman & Gelman 2014, Algorithm 5), all fields ``[b]``:
    ``log_eps`` is the step size used next, ``log_eps_bar`` the averaged iterate kept after warm-up."""

    mu: Tensor
    h_bar: Tensor
    log_eps: Tensor
    log_eps_bar: Tensor
    t: int


def dual_averaging_init(step_size: float | Tensor, n_chains: int, *, dtype: torch.dtype = torch.float64,
                        device: torch.device | None = None) -> DualAveraging:
    """Start every chain at ``step_size`` (a scalar or ``[b]``), shrinking toward mu = log(10·eps0) as in the
    paper."""
    eps0 = torch.as_tensor(step_size, dtype=dtype, device=device).expand(n_chains).clone()
    log0 = eps0.log()
    zero = torch.zeros_like(log0)
    return DualAveraging(mu=math.log(10.0) + log0, h_bar=zero, log_eps=log0, log_eps_bar=zero, t=0)


def dual_averaging_update(s: DualAveraging, acceptance: Tensor, *, target: float = 0.65, gamma: float = 0.05,
                          t0: float = 10.0, kappa: float = 0.75) -> DualAveraging:
    """One update from each chain's Metropolis acceptance probability ``[b]`` (pure: returns a new state):
    h̄ ← (1 − 1/(t+t0)) h̄ + (target − a)/(t+t0); log ε = μ − √t/γ · h̄; log ε̄ ← t^(−κ) log ε + (1 − t^(−κ)) log ε̄.
    Each chain's acceptance is one noisy draw, which is why this averaged rule is used per chain rather than the
    plain Robbins–Monro step of :func:`tune_step_size` (which suits one step size for an average over chains)."""
    t = s.t + 1
    a = acceptance.to(s.h_bar.dtype)
    w = 1.0 / (t + t0)
    h_bar = (1.0 - w) * s.h_bar + w * (target - a)
    log_eps = s.mu - math.sqrt(t) / gamma * h_bar
    eta = t ** (-kappa)
    return DualAveraging(mu=s.mu, h_bar=h_bar, log_eps=log_eps, log_eps_bar=eta * log_eps + (1 - eta) * s.log_eps_bar,
                         t=t)


# --------------------------------------------------------------------------------------------
# Algorithms and the run loop
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


ula = Algorithm("ula", langevin_init, ula_step, False, ula_draws, ula_apply)
mala = Algorithm("mala", langevin_init, mala_step, True, mala_draws, mala_apply)
# HMC's apply loops over n_leapfrog energy evaluations: compiled whole, its leapfrog runs as torch's scan operator
# (_scanned_leapfrog; unrolled, the compile time grew steeply with the leapfrog steps: 505 s cold at 10 on a 50-D
# Gaussian). Where scan cannot trace the energy (torch 2.13 fails on a closure's transposed tensor, e.g. x @ w.T
# with w a plain tensor, not a parameter), one leapfrog step (drift, energy, gradient, kick) is compiled and called
# n_leapfrog times, the momentum draw and the acceptance eager
hmc = Algorithm("hmc", langevin_init, hmc_step, True, hmc_draws, hmc_apply,
                compile_part=lambda energy_fn, **kw: _CompiledDriftKick(energy_fn, **kw))
kinetic_langevin = Algorithm("kinetic_langevin", kinetic_langevin_init, kinetic_langevin_step, False,
                             kinetic_langevin_draws, kinetic_langevin_apply)

COMPILE_BACKEND = "inductor"  # torch.compile's backend for compile=on|auto (the tests trace with aot_eager)
# compile="auto" times the first AUTO_PROBE_STEPS steps eagerly (the first one, which warms caches, untimed) and
# compiles the rest only when the time a compiled step saves over them repays a compile: a cold compile measured at
# 11-22 s on a 2-core CPU, up to ~50 s for HMC (AUTO_COMPILE_SECONDS), compiled steps 1.25-4.5x the eager ones
# (AUTO_SPEEDUP, the middle of that range; benchmarks/peers/README.md). A 500-step HMC chain of 6.7 s runs eagerly.
AUTO_PROBE_STEPS = 8
AUTO_COMPILE_SECONDS = 20.0
AUTO_SPEEDUP = 2.0
# compiled samplers whose step is one graph run the steps after warm-up in blocks of this many per compiled call: a
# call's fixed cost (dynamo's guards and the wrapper, ~39 us on a 2-core CPU) is paid once a block, not once a step
COMPILE_BLOCK = 8
COMPILE_CHOICES = (False, True, "auto", "off", "on")


_T = TypeVar("_T")


class _Stepper:
    """One step of ``algorithm``: eager, or its ``apply`` compiled into one graph (energy, gradient and update; the
    draws stay eager, from the same generator in the same order). ``compile_seconds``: the wall time of setting up
    ``torch.compile`` and of the first compiled calls (tracing and code generation). When the first call cannot
    trace the step into one graph: the algorithm's ``compile_part`` (HMC: its leapfrog step compiled alone, said in
    ``note``), else eagerly with a warning under ``auto`` and a ValueError under ``on``."""

    def __init__(self, algorithm: Algorithm, energy_fn: EnergyFn, mode: bool | str, static: dict[str, Any]):
        self.algorithm, self.energy_fn, self.mode, self.static = algorithm, energy_fn, mode, static
        self.compiled: Callable[..., Any] | None = None
        self.part: EnergyGrad | None = None  # compile_part's energy-and-gradient, after the whole step failed
        self.note: str | None = None
        self.compile_seconds: float | None = None  # the first calls of the step and of the block, summed
        self._block: Callable[..., Any] | None = None  # the compiled block of steps (block)
        self._called: set[str] = set()  # which compiled functions have had their first (compiling) call
        self._setup = 0.0  # torch.compile's own imports (dynamo, inductor: seconds on a first use), counted in
        self._kw: dict[str, Any] = {"fullgraph": True, "dynamic": False, "backend": COMPILE_BACKEND}
        if mode and algorithm.apply is None:
            raise ValueError(f"compile: {algorithm.name!r} has no draws/apply split to compile")
        if mode:
            t0 = time.perf_counter()
            self.compiled = torch.compile(own_code(self._flat), **self._kw)
            self._setup = time.perf_counter() - t0

    def _flat(self, cls: type, fields: tuple[Tensor, ...], draws: tuple[Tensor, ...],
              kw: dict[str, Tensor]) -> tuple[tuple[Tensor, ...], tuple[Tensor | None, ...]]:
        assert self.algorithm.apply is not None
        new, info = self.algorithm.apply(cls(*fields), functional_energy_and_grad(self.energy_fn), draws,
                                         **kw, **self.static)
        return (tuple(getattr(new, f.name) for f in dataclasses.fields(new)),
                (info.acceptance_prob, info.is_accepted, info.energy_error))

    def __call__(self, state: Any, generator: torch.Generator, kw: dict[str, Any]) -> tuple[Any, StepInfo]:
        if self.compiled is None and self.part is None:
            return self.algorithm.step(state, self.energy_fn, generator=generator, **kw, **self.static)
        assert self.algorithm.draws is not None and self.algorithm.apply is not None
        draws = self.algorithm.draws(state, generator, **self.static)
        if self.compiled is None:
            return self._steps(state, (draws,), kw)[:2]
        tensors = {k: scalar_like(v, state.x) for k, v in kw.items()}  # a new value must not recompile
        return self._first_timed("step", lambda: self._compiled_step(state, draws, tensors),
                                 lambda: self._steps(state, (draws,), kw)[:2])

    def _first_timed(self, name: str, call: Callable[[], _T], fallback: Callable[[], _T]) -> _T:
        """``call()``, the first call of each compiled function timed into ``compile_seconds`` (torch.compile's
        set-up counted once); when that first call cannot trace the step into one graph: ``fallback()`` through
        the algorithm's compiled part, else eagerly (see the class)."""
        first, t0 = name not in self._called, time.perf_counter()
        try:
            out = call()
        except (torch._dynamo.exc.TorchDynamoException, AssertionError) as exc:  # torch's tracing asserts too
            if not first:
                raise
            self._whole_failed(exc)
            out = self._part_or_eager(fallback)
        if first and (self.compiled is not None or self.part is not None):  # something compiled ran
            self._called.add(name)
            self.compile_seconds = (self.compile_seconds or self._setup) + time.perf_counter() - t0
        return out

    def _whole_failed(self, exc: Exception) -> None:
        err = os_error_in(exc)
        if err is not None:  # the file system, not the energy: said as such, whatever the mode
            raise ValueError(f"compile={self.mode}: {cache_message(err)} (compile=off)") from None
        self.compiled = None
        if self.algorithm.compile_part is not None:
            self.part = self.algorithm.compile_part(self.energy_fn, **self._kw)
            self.note = (f"compile={self.mode}: {self.algorithm.name}'s step could not be traced whole "
                         f"({type(exc).__name__}); its compiled part runs, the rest eagerly")
            return
        self._cannot_compile(exc)

    def _cannot_compile(self, exc: Exception) -> None:
        if self.mode != "auto":
            raise ValueError(f"compile=on: the energy cannot be compiled into one graph ({type(exc).__name__}): "
                             f"{exc}") from None
        warnings.warn(f"compile=auto: the energy could not be compiled into one graph ({type(exc).__name__}); "
                      f"the chains run eagerly", stacklevel=5)
        self.note = None

    def _part_or_eager(self, fallback: Callable[[], _T]) -> _T:
        if self.part is None:
            return fallback()
        try:
            return fallback()
        except (torch._dynamo.exc.TorchDynamoException, AssertionError) as exc:
            self.part = None
            self._cannot_compile(exc)
            return fallback()

    def _steps(self, state: Any, draws: tuple[tuple[Tensor, ...], ...], kw: dict[str, Any]
               ) -> tuple[Any, StepInfo, Tensor]:
        """The steps of ``draws`` one call at a time, through the compiled part (:attr:`part`) or eagerly: the last
        state and step information, and the acceptances' sum."""
        apply = self.algorithm.apply
        assert apply is not None
        energy_grad = self.part if self.part is not None else _eager(self.energy_fn)
        acc = None
        for d in draws:
            state, info = apply(state, energy_grad, d, **kw, **self.static)
            acc = info.acceptance_prob if acc is None else acc + info.acceptance_prob
        assert acc is not None
        return state, info, acc

    def _flat_block(self, cls: type, fields: tuple[Tensor, ...], draws: tuple[tuple[Tensor, ...], ...],
                    kw: dict[str, Tensor]) -> tuple[tuple[Tensor, ...], Tensor]:
        assert self.algorithm.apply is not None
        state, eg, acc = cls(*fields), functional_energy_and_grad(self.energy_fn), None
        for d in draws:
            state, info = self.algorithm.apply(state, eg, d, **kw, **self.static)
            acc = info.acceptance_prob if acc is None else acc + info.acceptance_prob
        assert acc is not None
        return tuple(getattr(state, f.name) for f in dataclasses.fields(state)), acc

    def blocked(self, n: int) -> bool:
        """Whether :meth:`block` runs ``n`` steps as one compiled call (a step compiled whole; ``n`` > 1)."""
        return self.compiled is not None and n > 1

    def block(self, state: Any, generator: torch.Generator, kw: dict[str, Any], n: int) -> tuple[Any, Tensor]:
        """``n`` steps as one compiled call (:meth:`blocked`), their draws made first, in the order the ``n`` steps
        make them (a step's draws depend only on the state's shapes): the same chain as ``n`` single steps to
        float rounding. Returns the state after them and the sum of their acceptance probabilities."""
        assert self.algorithm.draws is not None
        draws = tuple(self.algorithm.draws(state, generator, **self.static) for _ in range(n))
        tensors = {k: scalar_like(v, state.x) for k, v in kw.items()}
        if self._block is None:
            self._block = torch.compile(own_code(self._flat_block), **self._kw)
        fields = tuple(getattr(state, f.name) for f in dataclasses.fields(state))

        def compiled() -> tuple[Any, Tensor]:
            assert self._block is not None
            out, acc = self._block(type(state), fields, draws, tensors)
            return type(state)(*out), acc

        def fallback() -> tuple[Any, Tensor]:
            new, _, acc = self._steps(state, draws, kw)
            return new, acc

        return self._first_timed("block", compiled, fallback)

    def _compiled_step(self, state: Any, draws: tuple[Tensor, ...], tensors: dict[str, Tensor]) -> tuple[Any, StepInfo]:
        assert self.compiled is not None
        fields = tuple(getattr(state, f.name) for f in dataclasses.fields(state))
        out, (prob, acc, err) = self.compiled(type(state), fields, draws, tensors)
        return type(state)(*out), StepInfo(prob, acc, err)


def _compile_mode(compile: bool | str, n_total: int, device: torch.device) -> bool | str:
    if compile not in COMPILE_CHOICES:
        raise ValueError(f"compile must be off, on or auto (or False/True); got {compile!r}.")
    if compile in (False, "off"):
        return False
    if compile == "auto":
        return "auto" if n_total > AUTO_PROBE_STEPS and compiler_available(device) else False
    if COMPILE_BACKEND == "inductor" and not compiler_available(device):
        raise ValueError(f"compile=on needs a compiler for torch.compile on {device.type} (a C++ compiler and "
                         f"Python's headers for the CPU, Triton for CUDA); none was found: use off or auto")
    return "on"


@dataclass(frozen=True)
class RunResult:
    """Output of :func:`run`.

    final_state: state after the last step.
    samples: ``[n_kept, b, D]`` states kept every ``thin`` steps after warm-up, or ``None``.
    acceptance_rate: per-chain mean acceptance probability over the post-warm-up steps, ``[b]``.
    mean_acceptance: its mean over chains (float).
    step_size: the step size used after warm-up (adapted if requested), or ``None``.
    """

    final_state: State | KineticState
    samples: Tensor | None
    acceptance_rate: Tensor
    mean_acceptance: float
    step_size: float | Tensor | None
    compile_seconds: float | None = None
    compile_note: str | None = None  # compile="auto": what it measured and decided


class _AutoCompile:
    """compile="auto"'s decision (module constants AUTO_*): the chain's first steps run eagerly and are timed; at
    step AUTO_PROBE_STEPS the eager time of the steps left is estimated, and the rest of the chain is compiled when
    what compiling saves of it (1 − 1/AUTO_SPEEDUP) exceeds a compile's cost. The decision and its numbers are kept
    in ``note`` (``RunResult.compile_note``). Compiled steps are the eager steps to float rounding, so where the
    chain switches changes no number beyond that."""

    def __init__(self, total: int):
        self.total, self.t0 = total, 0.0
        self.note: str | None = None

    def __call__(self, i: int, stepper: _Stepper) -> _Stepper:
        if i == 1:
            self.t0 = time.perf_counter()
        if i != AUTO_PROBE_STEPS:
            return stepper
        per_step = (time.perf_counter() - self.t0) / (AUTO_PROBE_STEPS - 1)
        left = self.total - i
        saved = left * per_step * (1 - 1 / AUTO_SPEEDUP)
        compiles = saved > AUTO_COMPILE_SECONDS
        self.note = (f"compile=auto: {left} steps left at {per_step * 1e3:.3g} ms an eager step; compiling would save "
                     f"about {saved:.3g} s against a compile of about {AUTO_COMPILE_SECONDS:.0f} s: "
                     + ("compiled from here" if compiles else "the chain ran eagerly"))
        return _Stepper(stepper.algorithm, stepper.energy_fn, "auto", stepper.static) if compiles else stepper


def _check_run(algorithm: Algorithm, adapt_step_size: bool | str, n_warmup: int, initial: Any,
               thin: int | None) -> None:
    """:func:`run`'s refusals of its arguments."""
    if adapt_step_size not in (False, True, "global", "per_chain"):
        raise ValueError(f"adapt_step_size must be False, True (global) or 'per_chain'; got {adapt_step_size!r}.")
    if adapt_step_size and not algorithm.adaptable:
        raise ValueError(
            f"adapt_step_size=True needs a Metropolis-adjusted sampler (mala or hmc); "
            f"got {algorithm.name!r}, whose acceptance is always 1."
        )
    if adapt_step_size and (n_warmup <= 0 or not isinstance(initial, (int, float))):
        raise ValueError(
            "adapt_step_size=True needs n_warmup > 0 and an initial scalar step_size=...; got "
            f"n_warmup={n_warmup}, step_size={initial!r}."
        )
    if thin is not None and thin < 1:
        raise ValueError(f"thin must be None or >= 1, got {thin}.")


def run(
    algorithm: Algorithm,
    x0: Tensor,
    energy_fn: EnergyFn,
    *,
    n_steps: int,
    generator: torch.Generator,
    n_warmup: int = 0,
    thin: int | None = None,
    adapt_step_size: bool | str = False,
    target_accept: float = 0.65,
    progress: bool = False,
    compile: bool | str = False,
    **step_kwargs: Any,
) -> RunResult:
    """Run ``n_warmup + n_steps`` steps of ``algorithm`` from ``x0 [b, D]`` (``b`` chains).

    ``x0`` may also be ``[b, *event]`` (images): the chains then run on the flattened coordinates with
    ``energy_fn`` called on the event shape, and ``final_state.x`` and ``samples`` come back in that shape.

    Args:
        algorithm: one of :data:`ula`, :data:`mala`, :data:`hmc`, :data:`kinetic_langevin`.
        n_steps: steps after warm-up (statistics and kept samples come from these only).
        n_warmup: steps before; with ``adapt_step_size`` the step size is tuned there.
        thin: keep every ``thin``-th post-warm-up state in ``samples``; ``None`` keeps none (use
            ``final_state``, e.g. one draw per independent chain).
        adapt_step_size: tune one global ``step_size`` during warm-up toward ``target_accept``
            (0.65 suits HMC; ~0.57 is optimal for MALA) with :func:`tune_step_size` on the
            chain-averaged acceptance probability, then freeze it at its last value. A global
            step size is less noisy than per-chain ones and keeps every chain on the same kernel.
            ``"per_chain"``: one step size per chain by dual averaging (:func:`dual_averaging_update`),
            frozen at each chain's averaged iterate after warm-up (``step_size`` comes back ``[b]``):
            for chains whose targets differ in scale (a batch of posteriors, tempered replicas).
        progress: show a ``tqdm`` progress bar.
        compile: ``off`` (False, the default), ``on`` (True): each step's arithmetic — the energy, its gradient
            by ``torch.func.grad`` and the update — runs as one ``torch.compile``d graph, the draws staying eager
            (the same generator, the same order): the same numbers to float rounding, fewer and larger operations.
            The first step pays the compile (``RunResult.compile_seconds``; 10–40 s on a CPU), and every call of
            ``run`` compiles afresh. ``auto``: time the first steps eagerly and compile the rest where that repays
            a compile (:class:`_AutoCompile`; its numbers in ``RunResult.compile_note``), with a compiler available;
            run eagerly, with a warning, when the energy cannot be traced into one graph (``on`` raises).
        **step_kwargs: passed to ``algorithm.step`` (``step_size``, ``n_leapfrog``, or
            ``gamma`` and ``kappa`` for kinetic Langevin).
    """
    initial = step_kwargs.get("step_size")
    _check_run(algorithm, adapt_step_size, n_warmup, initial, thin)
    if x0.dim() > 2:  # any event shape: the chains run on the flattened coordinates (the kernels are coordinate-wise)
        event = tuple(x0.shape[1:])
        res = run(algorithm, x0.flatten(1), lambda v: energy_fn(v.reshape(-1, *event)), n_steps=n_steps,
                  generator=generator, n_warmup=n_warmup, thin=thin, adapt_step_size=adapt_step_size,
                  target_accept=target_accept, progress=progress, compile=compile, **step_kwargs)
        return dataclasses.replace(
            res, final_state=dataclasses.replace(res.final_state, x=res.final_state.x.reshape(-1, *event)),
            samples=None if res.samples is None else res.samples.reshape(res.samples.shape[0], -1, *event))

    state = algorithm.init(x0, energy_fn)
    total = n_warmup + n_steps
    static = {k: v for k, v in step_kwargs.items() if k != "step_size"}
    step_kwargs = {k: v for k, v in step_kwargs.items() if k == "step_size"}
    mode = _compile_mode(compile, total, x0.device)
    auto = _AutoCompile(total) if mode == "auto" else None
    stepper = _Stepper(algorithm, energy_fn, False if auto else mode, static)
    bar = None
    if progress:
        from tqdm.auto import tqdm  # optional dependency, imported only when asked for

        bar = tqdm(total=total, desc=algorithm.name)

    acc_sum = torch.zeros(x0.shape[0], dtype=x0.dtype, device=x0.device)
    kept: list[Tensor] = []
    per_chain = adapt_step_size == "per_chain"
    da = dual_averaging_init(float(initial or 0.0), x0.shape[0], device=x0.device) if per_chain else None
    if da is not None:  # [b] from the first step (the same values): a compiled step keeps one shape
        step_kwargs["step_size"] = da.log_eps.exp().to(x0.dtype)
    block = COMPILE_BLOCK if thin is None else math.gcd(COMPILE_BLOCK, thin)
    i = 0
    while i < total:
        if auto is not None:
            stepper = auto(i, stepper)
        if i >= n_warmup and total - i >= block and stepper.blocked(block):  # after warm-up: blocks of steps
            state, acc = stepper.block(state, generator, step_kwargs, block)
            acc_sum += acc
            i += block
            if thin is not None and (i - n_warmup) % thin == 0:
                kept.append(state.x)
            if bar is not None:
                bar.update(block)
            continue
        state, info = stepper(state, generator, step_kwargs)
        if da is not None and i < n_warmup:
            da = dual_averaging_update(da, info.acceptance_prob, target=target_accept)
            log_eps = da.log_eps if i + 1 < n_warmup else da.log_eps_bar  # after warm-up: the averaged iterate
            step_kwargs = {**step_kwargs, "step_size": log_eps.exp().to(x0.dtype)}
        elif adapt_step_size and i < n_warmup:
            eps = tune_step_size(step_kwargs["step_size"], info.acceptance_prob.mean().item(),
                                 i + 1, target=target_accept)
            step_kwargs = {**step_kwargs, "step_size": eps}
        if i >= n_warmup:
            acc_sum += info.acceptance_prob
            if thin is not None and (i - n_warmup + 1) % thin == 0:
                kept.append(state.x)
        i += 1
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    acc = acc_sum / max(n_steps, 1)
    return RunResult(
        final_state=state,
        samples=torch.stack(kept) if kept else None,
        acceptance_rate=acc,
        mean_acceptance=acc.mean().item(),
        step_size=step_kwargs.get("step_size"),
        compile_seconds=stepper.compile_seconds,
        compile_note="; ".join(n for n in (auto.note if auto else None, stepper.note) if n) or None,
    )
