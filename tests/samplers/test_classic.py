"""Known-answer tests for ebmlab.samplers.classic (float64, fixed seeds).

Monte-Carlo checks allow 4 standard errors (two-sided false-alarm probability 6e-5 per check);
each standard error is stated where it is computed.
"""

import math

import pytest
import torch
from scipy import stats

from ebmlab.samplers import classic

DT = torch.float64


def gen(seed):
    return torch.Generator().manual_seed(seed)


def gaussian_log_prob(sigma, mean=0.0):
    """Normalised log N(mean, sigma² I), [n, D] -> [n]."""

    def f(z):
        d = z.shape[1]
        log_norm = d * math.log(sigma * math.sqrt(2 * math.pi))
        return -0.5 * (((z - mean) / sigma) ** 2).sum(1) - log_norm

    return f


def gaussian_sampler(sigma, d, mean=0.0):
    return lambda n, g: mean + sigma * torch.randn(n, d, generator=g, dtype=DT)


# ------------------------------------------------------------------ inverse transform
def test_inverse_transform_exponential_matches_cdf():
    lam, n = 2.0, 20_000
    y = classic.inverse_transform(lambda u: -torch.log1p(-u) / lam, n, generator=gen(0), dtype=DT)
    assert y.shape == (n,) and y.dtype == DT
    # mean 1/λ with se (1/λ)/sqrt(n)
    assert abs(y.mean().item() - 1 / lam) < 4 * (1 / lam) / math.sqrt(n)
    # Kolmogorov–Smirnov against the exact CDF: p < 1e-4 would reject the law.
    assert stats.kstest(y.numpy(), stats.expon(scale=1 / lam).cdf).pvalue > 1e-4


def test_inverse_transform_event_shape_and_reproducibility():
    a = classic.inverse_transform(torch.special.ndtri, 5, generator=gen(1), event_shape=(3,))
    b = classic.inverse_transform(torch.special.ndtri, 5, generator=gen(1), event_shape=(3,))
    assert a.shape == (5, 3) and torch.isfinite(a).all()
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_log_abs_dz_dy_of_normal_cdf_is_normal_log_density():
    y = torch.randn(10, 3, generator=gen(2), dtype=DT)
    got = classic.log_abs_dz_dy(torch.special.ndtr, y)
    torch.testing.assert_close(got, gaussian_log_prob(1.0)(y))
    got1 = classic.log_abs_dz_dy(torch.special.ndtr, y[:, 0])
    torch.testing.assert_close(got1, gaussian_log_prob(1.0)(y[:, :1]))


# ------------------------------------------------------------------ rejection
@pytest.mark.parametrize("d", [1, 2, 4])
def test_rejection_acceptance_is_sigma_ratio_to_the_d(d):
    sp, sq, n = 1.0, 1.5, 4000
    log_k = d * math.log(sq / sp)  # tight: max p/q is at z = 0
    z, info = classic.rejection(gaussian_log_prob(sp), gaussian_sampler(sq, d),
                                gaussian_log_prob(sq), log_k, n, generator=gen(3 + d))
    expected = (sp / sq) ** d
    # binomial standard error of accepted / proposed
    se = math.sqrt(expected * (1 - expected) / info.n_proposed)
    assert abs(info.acceptance_rate - expected) < 4 * se, (info, expected)
    assert z.shape == (n, d)
    # accepted draws are N(0, sp²): per-coordinate variance se sp² sqrt(2/n)
    var = z.var(0)
    assert ((var - sp**2).abs() < 4 * sp**2 * math.sqrt(2 / n)).all(), var


def test_rejection_reports_a_violated_envelope():
    d = 2
    log_k = d * math.log(1.5) - 0.5  # k below the tight bound: p~ > k q near the origin
    with pytest.raises(ValueError, match="envelope violated"):
        classic.rejection(gaussian_log_prob(1.0), gaussian_sampler(1.5, d),
                          gaussian_log_prob(1.5), log_k, 1000, generator=gen(7))


def test_rejection_gives_up_after_max_rounds():
    d = 8  # acceptance (1/1.5)^8 = 0.039: 100 proposals cannot give 100 samples
    with pytest.raises(RuntimeError, match="accepted only"):
        classic.rejection(gaussian_log_prob(1.0), gaussian_sampler(1.5, d),
                          gaussian_log_prob(1.5), d * math.log(1.5), 100, generator=gen(8),
                          max_rounds=1)


# ------------------------------------------------------------------ importance sampling
MU, S, SIGMA_Q = 1.0, 0.5, 2.0


def unnormalised_target(z):
    """p~(z) = exp(-(z - 1)² / (2·0.5²)), so Z_p = sqrt(2π)·0.5 and E_p[z] = 1."""
    return -0.5 * (((z - MU) / S) ** 2).sum(1)


def test_importance_estimates_mean_and_normalising_constant():
    n = 50_000
    res = classic.importance(unnormalised_target, gaussian_sampler(SIGMA_Q, 1),
                             gaussian_log_prob(SIGMA_Q), n, generator=gen(9))
    r = torch.exp(res.log_ratios)
    # log mean r: delta-method se std(r) / (mean(r) sqrt(n))
    se_logz = (r.std() / (r.mean() * math.sqrt(n))).item()
    assert abs(res.log_z_ratio.item() - math.log(math.sqrt(2 * math.pi) * S)) < 4 * se_logz
    # self-normalised mean: delta-method se sqrt(Σ w² (z - m̂)²)
    m_hat = res.expectation(lambda z: z[:, 0])
    se_m = (res.weights**2 * (res.samples[:, 0] - m_hat) ** 2).sum().sqrt().item()
    assert abs(m_hat.item() - MU) < 4 * se_m
    torch.testing.assert_close(res.weights.sum(), torch.tensor(1.0, dtype=DT))
    # ESS = (Σ r)² / Σ r² by definition
    torch.testing.assert_close(res.ess, r.sum() ** 2 / (r**2).sum())
    # and ESS / n -> (E_q r)² / E_q r² = 1 / ∫ p²/q for normalised p; for two Gaussians
    # ∫ p²/q = σ / (s² sqrt(2a)) · exp(b²/a - c), a = 1/s² - 1/(2σ²), b = μ/s², c = μ²/s².
    a, b, c = 1 / S**2 - 1 / (2 * SIGMA_Q**2), MU / S**2, MU**2 / S**2
    ess_frac = 1.0 / (SIGMA_Q / (S**2 * math.sqrt(2 * a)) * math.exp(b * b / a - c))
    # relative se of mean(r²) plus twice that of mean(r) (triangle inequality, delta method)
    rel_se = (r**2).std() / ((r**2).mean() * math.sqrt(n)) + 2 * r.std() / (r.mean() * math.sqrt(n))
    assert abs(res.ess.item() / n / ess_frac - 1) < 4 * rel_se.item()


def test_effective_sample_size_limits_and_shift_invariance():
    n = 7
    assert classic.effective_sample_size(torch.zeros(n, dtype=DT)).item() == pytest.approx(n)
    one_hot = torch.full((n,), -1e4, dtype=DT)
    one_hot[3] = 0.0
    assert classic.effective_sample_size(one_hot).item() == pytest.approx(1.0)
    lw = torch.randn(n, generator=gen(10), dtype=DT)
    torch.testing.assert_close(classic.effective_sample_size(lw + 800.0),
                               classic.effective_sample_size(lw))


def test_self_normalised_expectation_checks_shapes():
    with pytest.raises(ValueError, match="leading size 4"):
        classic.self_normalised_expectation(torch.zeros(3), torch.zeros(4))


def test_sir_resamples_the_target():
    n, m = 100_000, 20_000
    res = classic.importance(unnormalised_target, gaussian_sampler(SIGMA_Q, 1),
                             gaussian_log_prob(SIGMA_Q), n, generator=gen(11))
    z, idx = classic.sir(res.samples, res.log_ratios, m, generator=gen(12))
    assert z.shape == (m, 1)
    torch.testing.assert_close(z, res.samples[idx], rtol=0, atol=0)
    # Var of the resampled mean: S²/m from the multinomial draw + ~S²/ESS from the weighted set.
    se = S * math.sqrt(1 / m + 1 / res.ess.item())
    assert abs(z.mean().item() - MU) < 4 * se
    # variance of the resampled points: se of a sample variance ~ S² sqrt(2/m), inflated the
    # same way by the weighted set
    assert abs(z.var().item() - S**2) < 4 * S**2 * math.sqrt(2 / m + 2 / res.ess.item())
