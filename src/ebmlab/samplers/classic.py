"""Classic (non-Markov-chain) samplers: inverse transform, rejection, importance sampling and
sampling-importance-resampling.

Conventions
-----------
* A sample set is a tensor of shape ``[n, D]`` (one sample per row) unless stated otherwise.
* Log-densities are in nats. ``log_p_tilde(z) -> Tensor[n]`` is an *unnormalised* target
  log-density (for an energy model, ``log_p_tilde = lambda z: -energy_fn(z)``).
* A proposal is a pair of callables: ``proposal_sample(n, generator) -> Tensor[n, D]`` and
  ``proposal_log_prob(z: Tensor[n, D]) -> Tensor[n]`` (normalised or not; see each function).
* Randomness comes only from the explicit ``torch.Generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from ..rng import rand
from ..types import LogDensityFn, SampleFn




# --------------------------------------------------------------------------------------------
# Inverse transform
# --------------------------------------------------------------------------------------------
def inverse_transform(
    icdf_fn: Callable[[Tensor], Tensor],
    n: int,
    *,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float64,
    event_shape: tuple[int, ...] = (),
    device: torch.device | str | None = None,
) -> Tensor:
    """Draw ``y = h^{-1}(u)`` with ``u ~ U(0, 1)`` elementwise, where ``h`` is a CDF.

    Args:
        icdf_fn: elementwise inverse CDF ``h^{-1}``, mapping a tensor of values in (0, 1) to a
            tensor of the same shape.
        n: number of samples.
        generator: source of randomness.
        dtype: floating dtype of ``u`` (and hence of the samples).
        event_shape: shape of one sample; ``()`` gives samples of shape ``[n]``, ``(D,)`` gives
            ``[n, D]`` with independent coordinates.
        device: device of the samples (must match the generator's device).

    Returns:
        Tensor of shape ``[n, *event_shape]``.

    The density of ``y`` is ``p(y) = p_u(h(y)) |dh/dy| = |dh/dy|`` on the support, see
    :func:`log_abs_dz_dy`.
    """
    if n < 0:
        raise ValueError(f"inverse_transform: n must be >= 0, got {n}.")
    u = rand((n, *event_shape), generator=generator, dtype=dtype, device=device)
    # torch.rand is in [0, 1); u = 0 would map to h^{-1}(0) = -inf for unbounded supports,
    # so lift it to the smallest positive normal number (probability ~2^-53 per draw).
    u = u.clamp_min(torch.finfo(dtype).tiny)
    return icdf_fn(u)


def log_abs_dz_dy(h_fn: Callable[[Tensor], Tensor], y: Tensor) -> Tensor:
    """Log of the density change ``|dz/dy|`` for an ELEMENTWISE monotone map ``z = h(y)``.

    If ``z`` has density ``p_z`` and ``y = h^{-1}(z)``, then
    ``log p_y(y) = log p_z(h(y)) + sum_i log |dh_i/dy_i|``; this function returns the sum.
    With ``h`` a CDF and ``z ~ U(0, 1)`` it is exactly ``log p_y(y)``.

    Args:
        h_fn: elementwise map (its Jacobian must be diagonal, e.g. a CDF applied per coordinate).
        y: points, shape ``[n]`` or ``[n, D]``.

    Returns:
        Tensor of shape ``[n]``, nats.
    """
    with torch.enable_grad():
        y_leaf = y.detach().requires_grad_(True)
        z = h_fn(y_leaf)
        if z.shape != y.shape:
            raise ValueError(
                f"log_abs_dz_dy: h_fn must be elementwise (output shape == input shape); "
                f"got input {tuple(y.shape)} and output {tuple(z.shape)}."
            )
        # For a diagonal Jacobian, the gradient of sum(z) is the vector of diagonal entries.
        (dz_dy,) = torch.autograd.grad(z.sum(), y_leaf)
    log_d = dz_dy.abs().log()
    return log_d if log_d.dim() == 1 else log_d.flatten(1).sum(1)


# --------------------------------------------------------------------------------------------
# Rejection sampling
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RejectionInfo:
    """Diagnostics of :func:`rejection`.

    acceptance_rate: accepted / proposed over every proposal drawn (estimates Z_p~ / k when the
        proposal log-density is normalised).
    """

    acceptance_rate: float
    n_proposed: int
    n_accepted: int
    rounds: int


def rejection(
    log_p_tilde: LogDensityFn,
    proposal_sample: SampleFn,
    proposal_log_prob: LogDensityFn,
    log_k: float,
    n: int,
    *,
    generator: torch.Generator,
    max_rounds: int = 100,
    bound_tol: float | None = None,
) -> tuple[Tensor, RejectionInfo]:
    """Rejection sampling: accept ``z ~ q`` with probability ``p~(z) / (k q(z))``.

    Requires ``k q(z) >= p~(z)`` everywhere; the accepted samples are then exact draws from
    ``p = p~ / Z_p~`` and the acceptance rate is ``Z_p~ / k`` (for a normalised ``q``).

    Args:
        log_p_tilde: unnormalised target log-density, ``[m, D] -> [m]`` (nats).
        proposal_sample: ``(m, generator) -> Tensor[m, D]``.
        proposal_log_prob: log-density of the proposal, ``[m, D] -> [m]`` (nats).
        log_k: log of the envelope constant ``k``.
        n: number of samples wanted.
        generator: source of randomness (proposals and uniforms).
        max_rounds: at most this many proposal batches are drawn before giving up.
        bound_tol: tolerance (nats) on ``log p~ - log k - log q <= 0`` before the envelope is
            declared violated; default ``sqrt(eps)`` of the dtype, which absorbs rounding when
            ``k`` is tight (the ratio equals 1 at the mode).

    Returns:
        ``(samples [n, D], RejectionInfo)``.

    Raises:
        ValueError: if ``p~(z) > k q(z)`` is observed at a proposed point.
        RuntimeError: if fewer than ``n`` samples are accepted in ``max_rounds`` rounds.
    """
    if n <= 0:
        raise ValueError(f"rejection: n must be positive, got {n}.")
    accepted: list[Tensor] = []
    n_acc = 0
    n_prop = 0
    batch = n
    for rounds in range(1, max_rounds + 1):
        z = proposal_sample(batch, generator)
        log_ratio = log_p_tilde(z) - log_k - proposal_log_prob(z)
        tol = bound_tol if bound_tol is not None else math.sqrt(torch.finfo(z.dtype).eps)
        worst = log_ratio.max().item()
        if worst > tol:
            i = int(log_ratio.argmax())
            raise ValueError(
                "rejection: envelope violated, expected p~(z) <= k q(z) everywhere but found "
                f"log p~ - log k - log q = {worst:.4g} > 0 at z = {z[i].tolist()}. "
                "Increase log_k or use a wider proposal."
            )
        u = rand(log_ratio.shape, generator=generator, dtype=log_ratio.dtype, device=z.device)
        keep = u.log() < log_ratio
        accepted.append(z[keep])
        n_acc += int(keep.sum())
        n_prop += batch
        if n_acc >= n:
            rate = n_acc / n_prop
            samples = torch.cat(accepted)[:n]
            return samples, RejectionInfo(rate, n_prop, n_acc, rounds)
        # Size the next batch from the running acceptance estimate (with a 10% margin), so
        # that a low acceptance rate costs few rounds; capped to bound memory.
        rate = max(n_acc / n_prop, 1.0 / n_prop)
        batch = int(min(math.ceil(1.1 * (n - n_acc) / rate), 100 * n))
    raise RuntimeError(
        f"rejection: accepted only {n_acc} of the {n} samples wanted after {max_rounds} rounds "
        f"({n_prop} proposals, acceptance rate {n_acc / n_prop:.3g}). The envelope k q is too "
        "loose for this target: use a tighter log_k, a better proposal, or raise max_rounds."
    )


# --------------------------------------------------------------------------------------------
# Importance sampling
# --------------------------------------------------------------------------------------------
def log_mean_exp(log_r: Tensor, dim: int = 0) -> Tensor:
    """``log(mean(exp(log_r)))`` along ``dim``, computed stably as logsumexp - log n."""
    return torch.logsumexp(log_r, dim=dim) - math.log(log_r.shape[dim])


def self_normalised_weights(log_r: Tensor) -> Tensor:
    """Self-normalised weights ``w_l = r_l / sum_m r_m`` from log-ratios ``log_r`` of shape
    ``[n]`` (softmax, so no overflow however large the log-ratios)."""
    return torch.softmax(log_r, dim=0)


def effective_sample_size(log_r: Tensor) -> Tensor:
    """Kish effective sample size ``(sum w)^2 / sum w^2`` of weights given as logs ``[n]``.

    Computed as ``exp(2 logsumexp(log_r) - logsumexp(2 log_r))`` so it is invariant to a
    constant shift of ``log_r`` and never overflows. Ranges over ``[1, n]``.
    """
    return torch.exp(2.0 * torch.logsumexp(log_r, 0) - torch.logsumexp(2.0 * log_r, 0))


def self_normalised_expectation(f_values: Tensor, log_r: Tensor) -> Tensor:
    """Self-normalised importance estimate ``sum_l w_l f(z_l)`` of ``E_p[f]``.

    Args:
        f_values: ``f(z_l)``, shape ``[n]`` or ``[n, ...]``.
        log_r: log importance ratios ``log p~(z_l) - log q(z_l)``, shape ``[n]``.

    Returns:
        Tensor of shape ``f_values.shape[1:]``.
    """
    if f_values.shape[0] != log_r.shape[0]:
        raise ValueError(
            f"self_normalised_expectation: expected f_values with leading size {log_r.shape[0]} "
            f"(one value per weight), got shape {tuple(f_values.shape)}."
        )
    w = self_normalised_weights(log_r).to(f_values.dtype)
    out: Tensor = torch.tensordot(w, f_values, dims=1)
    return out


@dataclass(frozen=True)
class ImportanceResult:
    """Output of :func:`importance`.

    samples: proposal draws ``[n, D]``.
    log_ratios: ``log r~_l = log p~(z_l) - log q(z_l)``, shape ``[n]`` (nats).
    weights: self-normalised weights ``[n]`` (sum to 1).
    log_z_ratio: scalar tensor, estimate of ``log(Z_p / Z_q)`` = logsumexp(log r~) - log n
        (an under-estimate in expectation by Jensen, although ``mean r~`` itself is unbiased).
    ess: scalar tensor, ``(sum w)^2 / sum w^2``.
    """

    samples: Tensor
    log_ratios: Tensor
    weights: Tensor
    log_z_ratio: Tensor
    ess: Tensor

    def expectation(self, f: Callable[[Tensor], Tensor]) -> Tensor:
        """Self-normalised estimate of ``E_p[f(z)]``; ``f: [n, D] -> [n, ...]``."""
        return self_normalised_expectation(f(self.samples), self.log_ratios)


def importance(
    log_p_tilde: LogDensityFn,
    proposal_sample: SampleFn,
    proposal_log_prob: LogDensityFn,
    n: int,
    *,
    generator: torch.Generator,
) -> ImportanceResult:
    """Importance sampling with ``n`` proposal draws.

    Args:
        log_p_tilde: unnormalised target log-density ``[n, D] -> [n]`` (nats).
        proposal_sample: ``(n, generator) -> Tensor[n, D]``.
        proposal_log_prob: log q~ ``[n, D] -> [n]`` (nats); if it is normalised,
            ``log_z_ratio`` estimates ``log Z_p`` itself.
        n: number of draws.
        generator: source of randomness.

    Returns:
        :class:`ImportanceResult` with self-normalised weights, ``log(Z_p/Z_q)`` and the ESS.
    """
    z = proposal_sample(n, generator)
    log_r = log_p_tilde(z) - proposal_log_prob(z)
    if log_r.shape != (n,):
        raise ValueError(
            f"importance: expected log-densities of shape ({n},), got {tuple(log_r.shape)}; "
            "log_p_tilde and proposal_log_prob must return one value per row."
        )
    return ImportanceResult(
        samples=z,
        log_ratios=log_r,
        weights=self_normalised_weights(log_r),
        log_z_ratio=log_mean_exp(log_r),
        ess=effective_sample_size(log_r),
    )


def sir(
    samples: Tensor, log_weights: Tensor, m: int, *, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Sampling-importance-resampling: draw ``m`` points from the weighted set.

    Multinomial resampling with replacement, probabilities the self-normalised weights.
    As ``n -> inf`` the resampled points are distributed as the target; for finite ``n`` they
    inherit the O(1/n) bias of self-normalised importance sampling.

    Args:
        samples: weighted points ``[n, D]`` (e.g. ``ImportanceResult.samples``).
        log_weights: unnormalised log-weights ``[n]`` (e.g. ``ImportanceResult.log_ratios``).
        m: number of points to draw.
        generator: source of randomness.

    Returns:
        ``(resampled [m, D], indices [m])`` with ``resampled = samples[indices]``.
    """
    if samples.shape[0] != log_weights.shape[0] or log_weights.dim() != 1:
        raise ValueError(
            f"sir: expected log_weights of shape ({samples.shape[0]},) to match samples "
            f"{tuple(samples.shape)}, got {tuple(log_weights.shape)}."
        )
    w = self_normalised_weights(log_weights)
    idx = torch.multinomial(w, m, replacement=True, generator=generator)
    return samples[idx], idx


__all__ = ["effective_sample_size", "importance", "ImportanceResult", "inverse_transform", "log_abs_dz_dy",
           "log_mean_exp", "rejection", "RejectionInfo", "self_normalised_expectation", "self_normalised_weights",
           "sir"]
