"""Likelihoods of quantised data: a discretised Gaussian, uniform dequantisation, nats and bits per dimension.

8-bit images are served on a grid: value k ∈ {0, …, L−1} (L = 256 levels) is x_k = lo + k·w with w = (hi − lo)/(L−1)
(ebmlab's images: lo = −1, hi = 1, w = 2/255). A density on that grid is not a likelihood of the data — a
learned variance can shrink onto the grid points and send "log p" to +∞, which is how a VAE reports a negative NLL
of 8-bit images. Two valid alternatives, both in nats of the *discrete* data:

- **Discretised Gaussian** (as PixelCNN++ discretises its logistic): P(k) = Φ((x_k + w/2 − μ)/σ) −
  Φ((x_k − w/2 − μ)/σ), the first bin extended to −∞ and the last to +∞, so the L probabilities of a pixel sum to
  1 and −log P ≥ 0. The differences are taken in log space on the side of the tail where they are not a difference
  of two numbers near 1 (log Φ via ``special.log_ndtr``); where even that underflows (a bin > 37σ from μ), the
  midpoint rule log φ + log(w/σ) stands in for it.
- **Uniform dequantisation** (Theis, van den Oord & Bethge 2016): u = x_k + U(−w/2, w/2) per coordinate; for any
  density p on the continuous space, Jensen gives −log P(k) ≤ E_u[−log p(u)] − D·log w, with equality when p is
  constant on each cell. So a continuous model trained and evaluated on dequantised data reports an *upper bound*
  on the discrete NLL, ≥ 0 in expectation.

Bits per dimension: nats / (D · ln 2).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..syncs import scalar_like
from ..rng import Noise, rand


def bin_width(value_range: tuple[float, float], levels: int) -> float:
    """w: the spacing of ``levels`` grid values spanning ``value_range``."""
    lo, hi = value_range
    return (hi - lo) / (levels - 1)


def _log_diff_cdf(a: Tensor, b: Tensor) -> Tensor:
    """log(Φ(b) − Φ(a)) for a < b, elementwise, without cancellation: on the upper side (a > 0) it is computed as
    log(Φ(−a) − Φ(−b)), a difference of two small numbers."""
    flip = a > 0
    lo = torch.where(flip, -b, a)
    hi = torch.where(flip, -a, b)
    lhi: Tensor = torch.special.log_ndtr(hi)
    llo: Tensor = torch.special.log_ndtr(lo)
    out: Tensor = lhi + torch.log1p(-torch.exp((llo - lhi).clamp(max=0.0)))
    return out


def discretized_gaussian_log_lik(mean: Tensor, x: Tensor, logvar: Tensor | float, *,
                                 value_range: tuple[float, float] = (-1.0, 1.0), levels: int = 256) -> Tensor:
    """log P(x | mean, σ²) per example [b] in nats, summed over dimensions, for x on the grid of ``levels`` values
    spanning ``value_range`` (values off the grid are rounded to the nearest level first)."""
    lo, hi = value_range
    w = bin_width(value_range, levels)
    logvar = scalar_like(logvar, mean)
    k = torch.round((x.to(mean.dtype) - lo) / w).clamp(0, levels - 1)
    xk = lo + k * w
    inv_sigma = torch.exp(-0.5 * logvar)
    a = (xk - w / 2 - mean) * inv_sigma
    b = (xk + w / 2 - mean) * inv_sigma
    inf = torch.full_like(a, math.inf)
    a = torch.where(k <= 0, -inf, a)
    b = torch.where(k >= levels - 1, inf, b)
    lp = _log_diff_cdf(a, b)
    # midpoint rule where the difference underflowed (bins many σ from the mean): log φ(t) + log(w/σ)
    t = (xk - mean) * inv_sigma
    mid = -0.5 * t.square() - 0.5 * math.log(2 * math.pi) + math.log(w) - 0.5 * logvar
    lp = torch.where(torch.isfinite(lp), lp, mid)
    return lp.flatten(1).sum(1)


def dequantise(x: Tensor, value_range: tuple[float, float], levels: int, *, generator: Noise) -> Tensor:
    """x + U(−w/2, w/2) per coordinate (module docstring)."""
    w = bin_width(value_range, levels)
    u = rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)  # a compiled step's tape too
    return x + (u - 0.5) * w


def dequantisation_offset(dim: int, value_range: tuple[float, float], levels: int) -> float:
    """−D·log w: add it to a continuous NLL of dequantised data for the upper bound on the discrete NLL."""
    return -dim * math.log(bin_width(value_range, levels))


def bits_per_dim(nll_nats: float, dim: int) -> float:
    return nll_nats / (dim * math.log(2))


__all__ = ["bin_width", "bits_per_dim", "dequantisation_offset", "dequantise", "discretized_gaussian_log_lik"]
