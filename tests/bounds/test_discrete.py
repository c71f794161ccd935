"""Likelihoods of 8-bit data: the discretised Gaussian against direct summation of the normal CDF (scipy, float64),
its 256 probabilities summing to 1 in the hard cases, and uniform dequantisation bounding the discrete NLL."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from ebmlab.bounds.discrete import (bin_width, bits_per_dim, dequantisation_offset, dequantise,
                                    discretized_gaussian_log_lik)

GRID = torch.linspace(-1, 1, 256, dtype=torch.float64)
W = 2 / 255


def _all_levels(mu: float, logvar: float) -> torch.Tensor:
    """log P(k) for the 256 levels of one pixel: [256]."""
    x = GRID.view(256, 1)
    return discretized_gaussian_log_lik(torch.full_like(x, mu), x, torch.tensor(logvar, dtype=torch.float64))


# (mean, σ): ordinary, far narrower than a bin, far wider than the range, mean beyond each edge, mean on a bin edge
CASES = [(0.1, 0.2), (0.3, 1e-4), (0.0, 50.0), (1.7, 0.05), (-3.0, 0.3), (-1 + W / 2, 0.01), (0.99, 1e-6)]


@pytest.mark.parametrize("mu,sigma", CASES)
def test_probabilities_of_a_pixel_sum_to_one_and_match_the_cdf(mu, sigma):
    lp = _all_levels(mu, 2 * math.log(sigma))
    p = lp.exp()
    # the 256 bins partition the line: their probabilities sum to 1 up to float64 rounding of the CDF differences
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-9)
    assert bool((lp <= 1e-12).all())  # −log P ≥ 0: an NLL of 8-bit data cannot be negative
    edges = np.concatenate([[-np.inf], (GRID[:-1].numpy() + W / 2), [np.inf]])
    lo, hi = edges[:-1], edges[1:]
    # scipy reference, each bin from the tail it lies in (no difference of two numbers near 1)
    upper = lo > mu
    want = np.where(upper, stats.norm.sf(lo, mu, sigma) - stats.norm.sf(hi, mu, sigma),
                    stats.norm.cdf(hi, mu, sigma) - stats.norm.cdf(lo, mu, sigma))
    big = want > 1e-200  # where the direct difference is representable, the log-probabilities agree closely
    np.testing.assert_allclose(lp.numpy()[big], np.log(want[big]), rtol=1e-9, atol=1e-9)


def test_far_tails_stay_finite_and_ordered():
    """Bins hundreds of σ from the mean: no −inf or NaN, and farther bins are less likely (midpoint rule)."""
    lp = _all_levels(0.0, 2 * math.log(1e-3))
    assert bool(torch.isfinite(lp).all())
    right = lp[128:]
    assert bool((right[1:] < right[:-1]).all())


def test_upper_tail_is_not_a_difference_of_ones():
    """P of the bin at 7σ above the mean is ~1e-12 relative to the bins near the mean: computed as
    Φ(−a) − Φ(−b), not 1 − 1."""
    mu, sigma = 0.0, W
    lp = _all_levels(mu, 2 * math.log(sigma))
    k = 127 + 7  # x_k ≈ 7.5 w above 0... (the grid has no level at 0: levels at ±w/2)
    x = float(GRID[k])
    want = stats.norm.sf((x - W / 2 - mu) / sigma) - stats.norm.sf((x + W / 2 - mu) / sigma)
    assert float(lp[k]) == pytest.approx(math.log(want), rel=1e-9)


def test_dequantised_nll_bounds_the_discrete_nll():
    """For a density constant on each cell the bound is an equality; for a smooth density it is an upper bound
    (Jensen), checked by integrating a 1-d Gaussian over each bin."""
    g = torch.Generator().manual_seed(0)
    x = GRID[torch.randint(0, 256, (20000,), generator=g)].view(-1, 1)
    # a histogram density: value q_k / w on cell k
    q = torch.softmax(torch.randn(256, generator=g, dtype=torch.float64), 0)
    k = torch.round((x + 1) / W).long().view(-1)
    discrete = -q.log()[k].mean()
    u = dequantise(x, (-1.0, 1.0), 256, generator=g)
    ku = torch.round((u + 1) / W).long().clamp(0, 255).view(-1)
    cont = -(q.log() - math.log(W))[ku].mean()
    assert torch.equal(ku, k)  # the noise stays inside each cell
    assert float(cont) + dequantisation_offset(1, (-1.0, 1.0), 256) == pytest.approx(float(discrete), abs=1e-12)
    # a smooth density: E_u[−log N(u)] − log w ≥ −log ∫_cell N = −log P(k)
    mu, sigma = 0.2, 0.05
    lp = _all_levels(mu, 2 * math.log(sigma))
    x = torch.round((mu + sigma * torch.randn(20000, 1, generator=g, dtype=torch.float64) + 1) / W).clamp(0, 255) * W - 1
    k = torch.round((x + 1) / W).long().view(-1)
    u = dequantise(x, (-1.0, 1.0), 256, generator=g)
    discrete = float(-lp[k].mean())
    cont = float(-torch.distributions.Normal(mu, sigma).log_prob(u.view(-1)).mean())
    bound = cont + dequantisation_offset(1, (-1.0, 1.0), 256)
    assert bound >= discrete - 3 * 0.002  # Monte Carlo error of the mean over 20,000 draws ≲ 0.002 nats
    assert bound - discrete < 0.02  # and close: σ is 6 bins wide (the gap is ~w²/(24σ²) ≈ 0.003 nats)


def test_units():
    assert bin_width((-1.0, 1.0), 256) == pytest.approx(2 / 255)
    assert dequantisation_offset(784, (0.0, 1.0), 256) == pytest.approx(784 * math.log(255))
    assert bits_per_dim(784 * math.log(2), 784) == pytest.approx(1.0)
