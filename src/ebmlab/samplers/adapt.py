"""Step-size adaptation: one Robbins–Monro update of a global step size toward a target acceptance, and per-chain
dual averaging (Hoffman & Gelman 2014), both pure functions."""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor


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


__all__ = ["DualAveraging", "dual_averaging_init", "dual_averaging_update", "tune_step_size"]
