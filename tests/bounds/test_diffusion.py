"""Known answers for the diffusion upper bound (BiB bound (iv)), float64.

Gaussian case. Data N(m, s²I) in D = 2; the forward marginals are p_t = N(α_t m, v_t I), v_t = α_t² s² + σ_t², and
E(x, t) = ‖x − α_t m‖²/(2 v_t) has the exact scores. What E_data[L_diff] must equal (module docstring):
    E_data[L_diff] = H(p_{t_min}) + KL(p_1 ‖ N(0, I))
— the entropy of the data after the forward process has run to t_min (not of N(m, s²I) itself: the t_min
effect is (D/2) log(v_{t_min}/s²) ≈ 2.0e-4 nats here) plus the prior mismatch at t = 1 (≈ 1.4e-5 nats).
A score error adds exactly ½ ∫_{t_min}^1 β E_{p_t}‖s_θ − ∇log p_t‖² dt, computed here with scipy.integrate.quad.

How 1e-3 nats is reached without ~10⁷ samples (per-example s.d. ≈ 5 nats): for Gaussian energies ∇_x E is
linear in x_t, so the per-sample integrand at fixed t is a quadratic polynomial in (x − m, ε); a 3-point
Gauss–Hermite rule per dimension (exact to degree 5) averages it exactly over data and noise, 81 nodes in all.
The t-integral is done by the module's Gauss–Legendre rule in log-SNR with 64 nodes (measured error: 5.6e-4 at
16 nodes, 2e-9 at 32, 1e-15 at 64).
The remaining error is round-off, so 1e-3 holds with a margin of > 10⁶ — the tests use 1e-8 where they can.
The random-t estimators are tested separately for unbiasedness within 4 standard errors.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.integrate
import torch

from ebmlab.bounds.diffusion import (
    CONSISTENCY_CAVEAT,
    T_MIN,
    alpha_sigma,
    beta,
    beta_d_term,
    decoder_nll_offset,
    diffusion_nll_bound,
    diffusion_nll_bound_quadrature,
    diffusion_upper_bound,
    int_beta,
    log_snr,
    prior_nll,
    sample_t,
    t_from_log_snr,
)

DT = torch.float64
D = 2
M = torch.tensor([0.7, -0.4], dtype=DT)
S = 0.6


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _a_s(t: float) -> tuple[float, float]:
    a, s = alpha_sigma(torch.tensor(t, dtype=DT))
    return a.item(), s.item()


def _gaussian_energy(mean: torch.Tensor, scale: torch.Tensor | float):
    """E(x, t) = ‖x − α_t mean‖² / (2(α_t² scale² + σ_t²)): exact scores of the data N(mean, scale² I)."""

    def energy(x, t):
        a, s = alpha_sigma(t)
        v = a**2 * scale**2 + s**2
        return ((x - a[:, None] * mean) ** 2).sum(1) / (2 * v)

    return energy


def _gauss_hermite(n_dims: int, n: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes [n^k, k] and weights [n^k] of the tensor Gauss–Hermite rule for N(0, I_k)."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / w.sum()
    idx = list(itertools.product(range(n), repeat=n_dims))
    nodes = torch.tensor([[x[i] for i in p] for p in idx], dtype=DT)
    weights = torch.tensor([np.prod([w[i] for i in p]) for p in idx], dtype=DT)
    return nodes, weights


def _data_and_noise_nodes(mean=M, scale=S):
    nodes, weights = _gauss_hermite(2 * D)
    return mean + scale * nodes[:, :D], nodes[:, D:], weights


def _closed_form(mean=M, scale=S) -> tuple[float, float, float]:
    """(H(p_{t_min}), KL(p_1 ‖ N(0, I)), v_{t_min}) for data N(mean, scale² I)."""
    a0, s0 = _a_s(T_MIN)
    v0 = a0**2 * scale**2 + s0**2
    a1, s1 = _a_s(1.0)
    v1 = a1**2 * scale**2 + s1**2
    kl = 0.5 * (D * (v1 - 1 - math.log(v1)) + a1**2 * float((mean**2).sum()))
    return 0.5 * D * math.log(2 * math.pi * math.e * v0), kl, v0


def _expected_bound(energy, mean=M, scale=S, **kw) -> torch.Tensor:
    x, eps, w = _data_and_noise_nodes(mean, scale)
    return (w * diffusion_nll_bound_quadrature(energy, x, n_t=64, eps=eps, **kw)).sum()


def test_schedule_identities():
    t = torch.linspace(T_MIN, 1.0, 50, dtype=DT)
    a, s = alpha_sigma(t)
    torch.testing.assert_close(a**2 + s**2, torch.ones_like(t), rtol=0, atol=1e-14)
    for tk in (0.01, 0.3, 1.0):
        integral = scipy.integrate.quad(lambda u: 0.1 + 19.9 * u, 0, tk)[0]
        assert _a_s(tk)[0] == pytest.approx(math.exp(-0.5 * integral), rel=1e-12)
    torch.testing.assert_close(t_from_log_snr(log_snr(t)), t, rtol=1e-12, atol=0)
    tt = t.clone().requires_grad_(True)
    (dlam,) = torch.autograd.grad(log_snr(tt).sum(), tt)
    torch.testing.assert_close(dlam, -beta(t) / s**2, rtol=1e-10, atol=0)


@pytest.mark.parametrize("scheme", ["log_snr", "uniform"])
def test_sample_t_weights_are_unbiased(scheme):
    # E[w f(t)] = ∫ (β/σ²) f dt; f = σ² gives B(1) − B(t_min) = 2/D · beta_d_term, f = α² gives ∫ β α²/σ² dt.
    n = 200_000
    t, w = sample_t(n, generator=_gen(0), scheme=scheme)
    assert t.min() >= T_MIN and t.max() <= 1.0
    a, s = alpha_sigma(t)
    for f, exact in ((s**2, 2 / D * beta_d_term(D)),
                     (a**2, scipy.integrate.quad(lambda u: _a_s(u)[0] ** 2 * (0.1 + 19.9 * u) / _a_s(u)[1] ** 2,
                                                 T_MIN, 1.0, points=[0.01, 0.1], limit=200)[0])):
        vals = w * f
        se = vals.std().item() / math.sqrt(n)
        assert abs(vals.mean().item() - exact) < 4 * se


def test_zero_energy_reduces_to_closed_form_constants():
    # E ≡ 0: ε̂ = 0, so the bound is prior + ½∫(β/σ²)σ²‖ε‖² dt; with ‖ε‖² = D exactly this is the βD term.
    x = torch.randn(5, D, generator=_gen(1), dtype=DT)
    eps = torch.ones(5, D, dtype=DT)
    zero = lambda xx, t: 0.0 * xx.sum(1)  # noqa: E731
    L = diffusion_nll_bound_quadrature(zero, x, eps=eps)
    torch.testing.assert_close(L, prior_nll(x) + beta_d_term(D), rtol=1e-12, atol=0)
    a1, s1 = _a_s(1.0)
    expected_prior = 0.5 * D * math.log(2 * math.pi) + 0.5 * (a1**2 * (x**2).sum(1) + D * s1**2)
    torch.testing.assert_close(prior_nll(x), expected_prior, rtol=1e-14, atol=0)
    assert beta_d_term(D) == pytest.approx(0.5 * D * (10.05 - (0.1 * T_MIN + 9.95 * T_MIN**2)), rel=1e-14)


def test_gaussian_known_answer_exact_scores():
    H_tmin, kl, v0 = _closed_form()
    got = _expected_bound(_gaussian_energy(M, S)).item()
    assert got == pytest.approx(H_tmin + kl, abs=1e-8)
    # the t_min effect and the prior mismatch are what separate it from the data entropy
    H_data = 0.5 * D * math.log(2 * math.pi * math.e * S**2)
    assert got - H_data == pytest.approx(0.5 * D * math.log(v0 / S**2) + kl, abs=1e-8)
    # the clean-point decoder bound: E_data[L] + (D/2) B(t_min) = cross-entropy of N(m, s²) under
    # N(·, (s² + σ²/α²) I), which is ≥ H_data
    a0, s0 = _a_s(T_MIN)
    cross = 0.5 * D * math.log(2 * math.pi * math.e * (S**2 + s0**2 / a0**2)) + kl
    assert got + decoder_nll_offset(D) == pytest.approx(cross, abs=1e-8)
    assert cross > H_data


def _excess(score_gap_sq) -> float:
    """½ ∫_{t_min}^1 β(t) E_{p_t}‖s_θ − ∇log p_t‖² dt for a given t ↦ E‖·‖²."""
    f = lambda u: 0.5 * (0.1 + 19.9 * u) * score_gap_sq(u)  # noqa: E731
    return scipy.integrate.quad(f, T_MIN, 1.0, limit=200, epsabs=1e-13, epsrel=1e-12)[0]


def test_misspecified_energy_gives_a_larger_bound_by_the_exact_excess():
    H_tmin, kl, _ = _closed_form()
    v = lambda u, sc: _a_s(u)[0] ** 2 * sc**2 + _a_s(u)[1] ** 2  # noqa: E731
    # wrong mean: s_θ − s = α(m' − m)/v
    m_wrong = M + torch.tensor([0.3, 0.2], dtype=DT)
    dm2 = float(((m_wrong - M) ** 2).sum())
    got = _expected_bound(_gaussian_energy(m_wrong, S)).item()
    excess = _excess(lambda u: _a_s(u)[0] ** 2 * dm2 / v(u, S) ** 2)
    assert excess > 0.01
    assert got == pytest.approx(H_tmin + kl + excess, abs=1e-8)
    # wrong scale: s_θ − s = −(x − α m)(1/v' − 1/v), E‖·‖² = D v (1/v' − 1/v)²
    s_wrong = 0.9
    got = _expected_bound(_gaussian_energy(M, s_wrong)).item()
    excess = _excess(lambda u: D * v(u, S) * (1 / v(u, s_wrong) - 1 / v(u, S)) ** 2)
    assert excess > 0.01
    assert got == pytest.approx(H_tmin + kl + excess, abs=1e-8)


def test_gradient_reaches_the_energy_parameters():
    # d/dm' of the excess ½∫β α²‖m' − m‖²/v² dt is ∫ β α² (m' − m)/v² dt.
    m_wrong = (M + torch.tensor([0.3, 0.2], dtype=DT)).requires_grad_(True)
    value = _expected_bound(_gaussian_energy(m_wrong, S), create_graph=True)
    (grad,) = torch.autograd.grad(value, m_wrong)
    v = lambda u: _a_s(u)[0] ** 2 * S**2 + _a_s(u)[1] ** 2  # noqa: E731
    k = scipy.integrate.quad(lambda u: (0.1 + 19.9 * u) * _a_s(u)[0] ** 2 / v(u) ** 2, T_MIN, 1.0,
                             limit=200, epsabs=1e-13, epsrel=1e-12)[0]
    torch.testing.assert_close(grad, k * (m_wrong.detach() - M), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("scheme", ["log_snr", "uniform"])
def test_monte_carlo_bound_is_unbiased(scheme):
    H_tmin, kl, _ = _closed_form()
    n = 20_000
    g = _gen(2)
    x = M + S * torch.randn(n, D, generator=g, dtype=DT)
    res = diffusion_nll_bound(_gaussian_energy(M, S), x, generator=g, scheme=scheme)
    se = res.l_diff.std().item() / math.sqrt(n)
    assert se < 0.06  # the control variate keeps the per-example s.d. near 5 nats (≈ 17 without it)
    assert abs(res.l_diff.mean().item() - (H_tmin + kl)) < 4 * se
    assert res.x_tmin.shape == x.shape


def test_monte_carlo_gradient_is_unbiased():
    # Gradient of the denoising term w.r.t. a wrong mean, over 20 independent batches, against the exact one.
    m_wrong = (M + torch.tensor([0.3, 0.2], dtype=DT)).requires_grad_(True)
    energy = _gaussian_energy(m_wrong, S)
    g = _gen(3)
    grads = []
    for _ in range(20):
        x = M + S * torch.randn(2000, D, generator=g, dtype=DT)
        res = diffusion_nll_bound(energy, x, generator=g)
        grads.append(torch.autograd.grad(res.denoising.mean(), m_wrong)[0])
    grads = torch.stack(grads)
    se = grads.std(0) / math.sqrt(20)
    v = lambda u: _a_s(u)[0] ** 2 * S**2 + _a_s(u)[1] ** 2  # noqa: E731
    k = scipy.integrate.quad(lambda u: (0.1 + 19.9 * u) * _a_s(u)[0] ** 2 / v(u) ** 2, T_MIN, 1.0, limit=200)[0]
    assert ((grads.mean(0) - k * (m_wrong.detach() - M)).abs() < 4 * se).all()


def _diffusion_model_marginal(mean=M, scale=S) -> tuple[torch.Tensor, float]:
    """Exact t_min marginal N(μ, κI) of the model process: the reverse SDE driven by the exact scores of data
    N(mean, scale² I) but started from π = N(0, I) at t = 1 (not from p_1). Per dimension, in τ = −t,
    dμ/dτ = ½βμ + β s(μ), dκ/dτ = (β − 2β/v_t)κ + β with s(x) = −(x − α_t m)/v_t; solved with DOP853 at rtol 1e-12."""
    m = mean.numpy()

    def rhs(t, y):
        a, s = _a_s(t)
        v = a**2 * scale**2 + s**2
        b = 0.1 + 19.9 * t
        dmu = -(0.5 * b * y[:D] - b * (y[:D] - a * m) / v)
        dk = -((b - 2 * b / v) * y[D] + b)
        return np.concatenate([dmu, [dk]])

    sol = scipy.integrate.solve_ivp(rhs, [1.0, T_MIN], np.array([0.0] * D + [1.0]), method="DOP853", rtol=1e-12,
                                    atol=1e-14)
    return torch.tensor(sol.y[:D, -1], dtype=DT), float(sol.y[D, -1])


def test_l_diff_bounds_the_exact_diffusion_model_pointwise():
    # L_diff(x) ≥ E_{y ~ N(α₀x, σ₀²I)}[−log p_θ,t_min(y)] for every x, with p_θ,t_min the model's own t_min marginal.
    # Here the gap is ≈ KL(p_1 ‖ π) ≈ 1.4e-5 for every x (the only imperfection of the exact-score model).
    energy = _gaussian_energy(M, S)
    mu, kappa = _diffusion_model_marginal()
    _, kl, _ = _closed_form()
    a0, s0 = _a_s(T_MIN)
    nodes, w = _gauss_hermite(D)
    for x0 in ([0.7, -0.4], [3.0, -3.0], [0.0, 0.0], [-2.0, 5.0]):
        x = torch.tensor(x0, dtype=DT).expand(len(w), D)
        L = (w * diffusion_nll_bound_quadrature(energy, x, eps=nodes)).sum().item()
        y_mean = a0 * torch.tensor(x0, dtype=DT)
        sq = float(((y_mean - mu) ** 2).sum())
        cross = 0.5 * D * math.log(2 * math.pi * kappa) + (sq + D * s0**2) / (2 * kappa)
        assert 0 < L - cross < 2 * kl


def test_bidirectional_upper_bound_sandwich():
    # EBM E(·, t_min) with the exact scores: p_θ = N(α₀ m, v₀ I), data NLL in closed form.
    energy = _gaussian_energy(M, S)
    _, kl, v0 = _closed_form()
    a0, s0 = _a_s(T_MIN)
    nll = 0.5 * D * math.log(2 * math.pi * v0) + (float(((M - a0 * M) ** 2).sum()) + D * S**2) / (2 * v0)
    log_z = 0.5 * D * math.log(2 * math.pi * v0)
    x_data, _, w_data = _data_and_noise_nodes()
    t0 = lambda n: torch.full((n,), T_MIN, dtype=DT)  # noqa: E731
    e_data = (w_data * energy(x_data, t0(len(x_data)))).sum()
    assert (e_data + log_z).item() == pytest.approx(nll, abs=1e-12)

    def upper(gen_mean):
        x_g, eps, w = _data_and_noise_nodes(gen_mean, S)
        y_g = a0 * x_g + s0 * eps  # the generator sample pushed to t_min, averaged exactly over ε
        l_diff = diffusion_nll_bound_quadrature(energy, x_g, eps=eps)
        n = len(w)  # weighted means written as plain means of weight-scaled vectors
        return diffusion_upper_bound(torch.full((1,), e_data.item(), dtype=DT), n * w * energy(y_g, t0(n)),
                                     n * w * l_diff).item()

    # generator = data: upper − NLL = KL(p_1 ‖ π) exactly (module docstring)
    assert upper(M) - nll == pytest.approx(kl, abs=1e-8)
    # any generator: upper ≥ NLL + E_q[log p_EBM(y) − log p_θ,t_min(y)] (the consistency term, here tiny but
    # exact), and with exact scores the bound stays tight however poor the generator: H(p_g) cancels.
    mu, kappa = _diffusion_model_marginal()
    shifted = M + torch.tensor([0.5, 0.0], dtype=DT)
    y_mean, y_var = a0 * shifted, a0**2 * S**2 + s0**2

    def cross(mean, var):  # E_{y ~ N(y_mean, y_var I)}[−log N(y; mean, var I)]
        return 0.5 * D * math.log(2 * math.pi * var) + (float(((y_mean - mean) ** 2).sum()) + D * y_var) / (2 * var)

    consistency = cross(mu, kappa) - cross(a0 * M, v0)  # E_q[log p_EBM − log p_θ,t_min]
    assert 0 < upper(shifted) - (nll + consistency) < 2 * kl


def test_errors_and_caveat():
    assert "diffusion model's likelihood" in CONSISTENCY_CAVEAT and "consistent" in CONSISTENCY_CAVEAT
    with pytest.raises(ValueError, match="same generator samples"):
        diffusion_upper_bound(torch.zeros(3), torch.zeros(4), torch.zeros(5))
    with pytest.raises(ValueError, match="t_min must lie"):
        sample_t(3, generator=_gen(4), t_min=0.0)
    with pytest.raises(ValueError, match="explicit generator"):
        sample_t(3, generator=None)
    with pytest.raises(ValueError, match="scheme must be"):
        sample_t(3, generator=_gen(4), scheme="cosine")
    x = torch.zeros(3, D, dtype=DT)
    with pytest.raises(ValueError, match="to \\[b\\]"):
        diffusion_nll_bound(lambda xx, t: xx, x, generator=_gen(5))
    assert int_beta(torch.tensor(1.0, dtype=DT)).item() == pytest.approx(10.05, rel=1e-14)


def test_both_bounds_sandwich_the_exact_nll_of_a_known_model():
    """BiB's sandwich on a model whose likelihood is known: the EBM E(·, t_min) of data N(M, S² I) (p_θ = N(α₀M, v₀I),
    NLL in closed form) and a linear generator G(z) = c + s·z with another mean. The Jacobian lower bound (i) with
    the exact log-determinant is NLL − KL(p_g ‖ p_θ) exactly (H(p_g) is exact for a linear G), the s_min form of it
    lower still for an anisotropic G, and the diffusion upper bound (iv) lies above the NLL — float64, Gauss–Hermite
    quadrature exact for these quadratics."""
    from ebmlab.bounds.entropy import logdet_entropy, smin_entropy_exact

    energy = _gaussian_energy(M, S)
    _, kl_prior, v0 = _closed_form()
    a0, s0 = _a_s(T_MIN)
    p_mean = a0 * M
    nll = 0.5 * D * math.log(2 * math.pi * v0) + (float(((M - p_mean) ** 2).sum()) + D * S**2) / (2 * v0)
    x_data, _, w_data = _data_and_noise_nodes()
    t0 = lambda n: torch.full((n,), T_MIN, dtype=DT)  # noqa: E731
    e_data = float((w_data * energy(x_data, t0(len(x_data)))).sum())

    def lower(c, scales, entropy_fn):
        z, w = _gauss_hermite(D)
        G = lambda zz: c + zz * scales  # noqa: E731
        e_gen = float((w * energy(G(z), t0(len(z)))).sum())
        return e_data - e_gen + float(entropy_fn(G, z).entropy)

    def kl_to_model(c, scales):  # KL(N(c, diag s²) ‖ N(p_mean, v0 I))
        var = scales ** 2
        return 0.5 * float((var / v0).sum() + ((c - p_mean) ** 2).sum() / v0 - D + D * math.log(v0)
                           - torch.log(var).sum())

    c = M + torch.tensor([0.5, 0.0], dtype=DT)
    iso = torch.full((D,), S, dtype=DT)
    lo = lower(c, iso, logdet_entropy)
    assert lo == pytest.approx(nll - kl_to_model(c, iso), abs=1e-10) and lo < nll
    # the generator equal to the model closes the lower bound exactly
    assert lower(p_mean, torch.full((D,), math.sqrt(v0), dtype=DT), logdet_entropy) == pytest.approx(nll, abs=1e-10)
    # the s_min form: d·log s_min ≤ ½ log det, strictly for an anisotropic generator
    aniso = torch.tensor([0.3, 0.9], dtype=DT)
    exact, smin = lower(c, aniso, logdet_entropy), lower(c, aniso, smin_entropy_exact)
    assert exact == pytest.approx(nll - kl_to_model(c, aniso), abs=1e-10)
    assert smin == pytest.approx(exact - math.log(0.9 / 0.3), abs=1e-10) and smin < exact < nll
    # the upper bound of the same generator (isotropic, as the diffusion helper draws it) above the NLL
    x_g, eps, w = _data_and_noise_nodes(c, S)
    n = len(w)
    up = diffusion_upper_bound(torch.full((1,), e_data, dtype=DT), n * w * energy(a0 * x_g + s0 * eps, t0(n)),
                               n * w * diffusion_nll_bound_quadrature(energy, x_g, eps=eps)).item()
    assert lo < nll < up and up - nll < 2 * kl_prior + 1.0
