"""Helmholtz-machine estimators (Bornschein, Shabanian, Fischer & Bengio, "Bidirectional Helmholtz Machines",
ICML 2016; Bornschein & Bengio, "Reweighted Wake-Sleep", ICLR 2015), per example, in nats.

Inputs are log p(x, h_k) and log q(h_k | x) for K samples h_k ~ q(h | x), as [b, K] tensors. With
log w_k = log p(x, h_k) − log q(h_k | x):

    log p(x)    ≈ log (1/K) Σ_k w_k                            (importance sampling; E ≤ log p(x), → as K → ∞)
    2 log p̃*(x) ≈ 2 log (1/K) Σ_k √w_k                         (p̃*(x) = Σ_h √(p(x, h) q(h|x)) = E_q √w)
    log p*(x)   = 2 log p̃*(x) − log Z²,    Z² = Σ_x p̃*(x)² ≤ 1  (Cauchy–Schwarz, so 2 log p̃* ≤ log p*)

Training signals (the p and q parts of one surrogate loss; their gradients are the papers' estimators):
- BiHM: ω̃ = softmax_k(½ log w_k); p gets Σ_k ω̃_k ∇ log p(x, h_k) and q gets Σ_k (ω̃_k − 1/K) ∇ log q(h_k | x).
  Both are self-normalised importance estimates of ∇ 2 log p̃*(x) = E_π[∇ log p] + E_π[∇ log q] with
  π(h) ∝ √(p(x, h) q(h|x)); the −1/K term has expectation zero (a score has mean zero under q) and is the
  baseline the original code subtracts.
- RWS (wake phase): w̃ = softmax_k(log w_k); p and q both get Σ_k w̃_k ∇ log(·) (q then minimises
  KL(p(h|x) ‖ q(h|x)) in expectation).

Z² (the estimator of the original ``est-z.py``): draw (x, h) ~ p(x, h) and, independently, h'_1..h'_M ~ q(h | x); then

    t = √(q(h|x) / p(x, h)) · (1/M) Σ_m √(p(x, h'_m) / q(h'_m | x))

is unbiased for Z² (E over (x, h) ~ p of √(q/p)·p̃*(x) is Σ_x p̃*(x)², and the inner mean is unbiased for p̃*(x) and
independent of the outer draw). log Z² = log mean t, averaged in log space, with the delta-method standard error
s.e.(t)/mean(t). Being a log of an unbiased mean, log Ẑ² is biased low by about s.e.²/2, which the reported s.e.
bounds.

The effective sample size is reported as a fraction of K, (Σ w)² / (K Σ w²) ∈ [1/K, 1], for the weights of p (w) and
of p* (√w), as in the original ``est-ess.py``.
"""

from __future__ import annotations

from typing import Any

import math

import torch
from torch import Tensor
from ..rng import Noise



def log_mean_exp(a: Tensor, dim: int = -1) -> Tensor:
    """log (1/n) Σ exp(a) along ``dim`` (stable)."""
    return torch.logsumexp(a, dim=dim) - math.log(a.shape[dim])


def _check(log_p: Tensor, log_q: Tensor) -> None:
    if log_p.shape != log_q.shape or log_p.dim() != 2:
        raise ValueError(f"log_p and log_q must both be [b, K] (b examples, K samples of h each); got "
                         f"{tuple(log_p.shape)} and {tuple(log_q.shape)}")


def log_p_is(log_p: Tensor, log_q: Tensor) -> Tensor:
    """Importance-sampling estimate of log p(x): [b, K] → [b]."""
    _check(log_p, log_q)
    return log_mean_exp(log_p - log_q)


def two_log_p_tilde(log_p: Tensor, log_q: Tensor) -> Tensor:
    """Estimate of 2 log p̃*(x) = 2 log E_q √(p/q): [b, K] → [b]."""
    _check(log_p, log_q)
    return two_log_p_tilde_from_log_w(log_p - log_q)


def sqrt_weights(log_p: Tensor, log_q: Tensor) -> Tensor:
    """BiHM's normalised weights ω̃ = softmax_k(½(log p − log q)): [b, K] → [b, K]."""
    _check(log_p, log_q)
    return torch.softmax(0.5 * (log_p - log_q), dim=1)


def ess_fraction(log_w: Tensor) -> Tensor:
    """Effective sample size over K, (Σ w)² / (K Σ w²), of unnormalised log-weights [b, K] → [b] in [1/K, 1]."""
    return torch.exp(2.0 * torch.logsumexp(log_w, 1) - torch.logsumexp(2.0 * log_w, 1) - math.log(log_w.shape[1]))


def bihm_surrogate(log_p: Tensor, log_q: Tensor) -> Tensor:
    """A scalar whose gradient is minus the BiHM estimator, averaged over the batch.

    ``log_p`` must depend only on p's parameters and ``log_q`` only on q's (samples h detached), so that
    ∂/∂θ_p = −mean_b Σ_k ω̃_k ∇ log p and ∂/∂θ_q = −mean_b Σ_k (ω̃_k − 1/K) ∇ log q.
    """
    w = sqrt_weights(log_p, log_q).detach()
    k = log_p.shape[1]
    return -((w * log_p).sum(1) + ((w - 1.0 / k) * log_q).sum(1)).mean()


def rws_surrogate(log_p: Tensor, log_q: Tensor) -> Tensor:
    """A scalar whose gradient is minus the RWS wake-phase estimator (ordinary normalised weights for p and q)."""
    _check(log_p, log_q)
    w = torch.softmax(log_p - log_q, dim=1).detach()
    return -((w * log_p).sum(1) + (w * log_q).sum(1)).mean()


def log_z2_terms(pair: Any, n: int, n_inner: int, generator: Noise | None = None) -> Tensor:
    """log t for n outer draws (x, h) ~ p and ``n_inner`` inner draws h' ~ q(h | x) each: [n] (module docstring).

    ``pair`` is a :class:`ebmlab.nets.sbn.HelmholtzPair` (anything with ``sample_p`` and ``sample_q`` returning
    (state, log-probability), ``log_p`` and ``log_q``).
    """
    if n < 1 or n_inner < 1:
        raise ValueError(f"n and n_inner must be ≥ 1; got {n} and {n_inner}")
    outer, log_p_outer = pair.sample_p(n, generator)
    log_ratio_outer = pair.log_q(outer) - log_p_outer
    inner, log_q_inner = pair.sample_q(outer[0].repeat_interleave(n_inner, 0), generator)
    log_w_inner = (pair.log_p(inner) - log_q_inner).view(n, n_inner)
    out: Tensor = 0.5 * log_ratio_outer + 0.5 * two_log_p_tilde_from_log_w(log_w_inner)
    return out


def two_log_p_tilde_from_log_w(log_w: Tensor) -> Tensor:
    """2 log (1/K) Σ_k √w_k of log-weights [b, K] → [b]."""
    return 2.0 * log_mean_exp(0.5 * log_w)


def log_mean_with_se(log_t: Tensor) -> tuple[float, float]:
    """(log mean t, delta-method standard error of it) from log t [n], in float64."""
    lt = log_t.detach().double().flatten()
    n = lt.numel()
    lm = float(torch.logsumexp(lt, 0) - math.log(n))
    if n < 2:
        return lm, float("nan")
    r = torch.exp(lt - lm)  # t / mean t
    return lm, float(r.std() / math.sqrt(n))


__all__ = ["bihm_surrogate", "ess_fraction", "log_mean_exp", "log_mean_with_se", "log_p_is", "log_z2_terms",
           "rws_surrogate", "sqrt_weights", "two_log_p_tilde", "two_log_p_tilde_from_log_w"]
