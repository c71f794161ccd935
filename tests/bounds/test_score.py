"""Known answers for the score-mismatch term of BiB (bound (iii)) and the zero-centred gradient penalty, float64.

When E = −log p_g (+ const) the chain rule makes the two inner products equal for every v, so the mismatch is
zero to round-off (asserted at 1e-20 on squared values of O(1)). For a quadratic energy and a linear generator
every term is closed form. Finite-difference checks use central differences with h = 1e-5 (truncation error
O(h²) ≈ 1e-10 relative), compared at 1e-6.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ebmlab.bounds.entropy import batch_jacobian
from ebmlab.bounds.score import gp_upper_term, latent_score, score_mismatch_gp, zero_centred_gp

DT = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mlp(d: int, h: int, D: int, seed: int) -> nn.Module:
    net = nn.Sequential(nn.Linear(d, h), nn.Tanh(), nn.Linear(h, D)).to(DT)
    g = _gen(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=DT) / math.sqrt(p.shape[-1]))
    return net


@pytest.mark.parametrize("volume", ["logdet", "smin", "lobpcg"])
def test_mismatch_is_zero_for_the_exact_energy_of_a_linear_generator(volume):
    # D = d, full rank: p_g = N(0, AAᵀ), E(x) = ½ xᵀ(AAᵀ)⁻¹x. J is constant, so every volume has zero z-gradient.
    d = 3
    A = torch.randn(d, d, generator=_gen(0), dtype=DT) + 2 * torch.eye(d, dtype=DT)
    prec = torch.linalg.inv(A @ A.T)
    energy = lambda x: 0.5 * ((x @ prec) * x).sum(1)  # noqa: E731
    z = torch.randn(64, d, generator=_gen(1), dtype=DT)
    res = score_mismatch_gp(energy, lambda zz: zz @ A.T, z, generator=_gen(2), volume=volume)
    assert res.per_example.max().item() < 1e-20
    assert res.per_example.shape == (64,)


def test_mismatch_is_zero_for_the_exact_energy_of_a_nonlinear_generator():
    # G(z) = [R sinh(z); 0] in R^{d+2}: on the manifold y = Rᵀx[:d], p_g(x) = N(asinh y) / Π √(1 + y_k²), and
    # ½ log det JᵀJ = Σ log cosh z_k, whose z-gradient needs G's second derivatives. The energy's behaviour off the
    # manifold (the 5‖x[d:]‖² term) is invisible to the latent-coordinate mismatch.
    d = 3
    R, _ = torch.linalg.qr(torch.randn(d, d, generator=_gen(3), dtype=DT))

    def G(z):
        return torch.cat([torch.sinh(z) @ R.T, torch.zeros(z.shape[0], 2, dtype=DT)], dim=1)

    def energy(x):
        y = x[:, :d] @ R
        return 0.5 * torch.asinh(y).pow(2).sum(1) + 0.5 * torch.log1p(y**2).sum(1) + 5 * x[:, d:].pow(2).sum(1)

    z = torch.randn(64, d, generator=_gen(4), dtype=DT)
    exact = score_mismatch_gp(energy, G, z, generator=_gen(5), volume="logdet")
    assert exact.per_example.max().item() < 1e-20
    # the s_min volume is a different density (a bound), so the same energy now mismatches
    smin = score_mismatch_gp(energy, G, z, generator=_gen(5), volume="smin")
    assert smin.gp.item() > 1e-3


def test_mismatch_closed_form_for_quadratic_energy_and_linear_generator():
    # E(x) = ½ xᵀPx, G(z) = Az: ∇_x E = Px and the latent score is z, so the mismatch is vᵀ(AᵀPA − I)z.
    d, D = 3, 5
    A = torch.randn(D, d, generator=_gen(6), dtype=DT)
    L = torch.randn(D, D, generator=_gen(7), dtype=DT)
    P = L @ L.T / D + torch.eye(D, dtype=DT)
    energy = lambda x: 0.5 * ((x @ P) * x).sum(1)  # noqa: E731
    z = torch.randn(32, d, generator=_gen(8), dtype=DT)
    v = torch.randn(32, d, generator=_gen(9), dtype=DT)
    res = score_mismatch_gp(energy, lambda zz: zz @ A.T, z, v=v)
    K = A.T @ P @ A - torch.eye(d, dtype=DT)
    expected = 0.5 * ((v @ K) * z).sum(1) ** 2
    torch.testing.assert_close(res.per_example, expected, rtol=1e-12, atol=1e-14)
    assert res.gp.item() > 0
    torch.testing.assert_close(res.x, z @ A.T)
    with pytest.raises(ValueError, match="explicit generator"):
        score_mismatch_gp(energy, lambda zz: zz @ A.T, z)
    # the sliced estimate averages to ½‖(AᵀPA − I)z‖² over v ~ N(0, I) (Hutchinson)
    n = 100_000
    z1 = z[:1].expand(n, d)
    many = score_mismatch_gp(energy, lambda zz: zz @ A.T, z1, generator=_gen(10), score=z1)
    se = many.per_example.std().item() / math.sqrt(n)
    assert abs(many.gp.item() - 0.5 * (z[0] @ K).pow(2).sum().item()) < 4 * se


def test_only_the_energy_receives_gradient():
    d, D = 2, 4
    G = nn.Linear(d, D).to(DT)
    with torch.no_grad():
        G.weight.copy_(torch.randn(D, d, generator=_gen(11), dtype=DT))
        G.bias.zero_()
    p = torch.rand(D, generator=_gen(12), dtype=DT).add_(0.5).requires_grad_(True)
    energy = lambda x: 0.5 * (p * x**2).sum(1)  # noqa: E731
    z = torch.randn(16, d, generator=_gen(13), dtype=DT)
    v = torch.randn(16, d, generator=_gen(14), dtype=DT)
    res = score_mismatch_gp(energy, G, z, v=v)
    res.gp.backward()
    assert G.weight.grad is None and G.bias.grad is None
    # closed form: mismatch_i = Σ_k p_k x_ik (Jv)_ik − zᵢᵀvᵢ, d gp / d p_k = mean_i mismatch_i x_ik (Jv)_ik
    with torch.no_grad():
        x, Jv = G(z), v @ G.weight.T
        mismatch = (p * x * Jv).sum(1) - (z * v).sum(1)
        expected = (mismatch[:, None] * x * Jv).mean(0)
    torch.testing.assert_close(p.grad, expected, rtol=1e-12, atol=1e-14)


def _fd_latent_gradient(f, z: torch.Tensor, h: float = 1e-5) -> torch.Tensor:
    out = torch.zeros_like(z)
    for k in range(z.shape[1]):
        e = torch.zeros_like(z)
        e[:, k] = h
        out[:, k] = (f(z + e) - f(z - e)) / (2 * h)
    return out


@pytest.mark.parametrize("volume", ["logdet", "smin"])
def test_latent_score_matches_finite_differences(volume):
    d, D = 3, 5
    net = _mlp(d, 8, D, seed=15)
    z = torch.randn(6, d, generator=_gen(16), dtype=DT)

    def log_volume(zz):
        J = batch_jacobian(net, zz)
        if volume == "logdet":
            return 0.5 * torch.linalg.slogdet(J.transpose(1, 2) @ J)[1]
        return d * torch.log(torch.linalg.svdvals(J)[:, -1])

    with torch.no_grad():
        expected = z + _fd_latent_gradient(log_volume, z)
    got = latent_score(net, z, volume=volume)
    assert not got.requires_grad
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("volume", ["logdet", "smin"])
def test_piecewise_linear_generator_latent_score_is_z_and_the_mismatch_matches_autodiff(volume):
    """A PReLU MLP with eval-mode BatchNorm (BiB's toy generator) has a Jacobian constant on each linear region, so
    the latent score is z exactly; the shortcut that skips the backward gives the same score (bit for bit) and the
    same mismatch (to rounding) as the full autodiff route through torch.func (``jac_mode="rev"``), and the same
    x and J v: checked against central finite differences of the log-volume too."""
    from ebmlab.nets.jacobian import piecewise_linear
    from ebmlab.nets.mlp import mlp

    torch.manual_seed(0)
    G = mlp(2, (16, 16), 2, act="prelu", batchnorm=True, bn_position="post").to(DT).eval()
    assert piecewise_linear(G) and not piecewise_linear(_mlp(2, 8, 2, seed=1))
    z = torch.randn(50, 2, generator=_gen(20), dtype=DT)
    fast = latent_score(G, z, volume=volume)
    slow = latent_score(G, z, volume=volume, jac_mode="rev")
    assert torch.equal(fast, z) and torch.equal(slow, z)  # autodiff's volume gradient is exactly 0 as well

    def log_volume(zz):
        J = batch_jacobian(G, zz)
        return 0.5 * torch.linalg.slogdet(J.transpose(1, 2) @ J)[1]

    with torch.no_grad():  # steps of 1e-5 stay inside one linear region for all but a measure-zero set of z
        assert _fd_latent_gradient(log_volume, z).abs().max().item() < 1e-8
    energy = lambda x: (x**2).sum(1) + torch.sin(3 * x[:, 0])  # noqa: E731
    a = score_mismatch_gp(energy, G, z, generator=_gen(21), volume=volume)
    b = score_mismatch_gp(energy, G, z, generator=_gen(21), volume=volume, jac_mode="rev")
    torch.testing.assert_close(a.per_example, b.per_example, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(a.x, b.x, rtol=0, atol=1e-14)


def test_latent_score_lobpcg_agrees_with_exact_smin():
    d, D = 4, 6
    net = _mlp(d, 10, D, seed=17)
    z = torch.randn(8, d, generator=_gen(18), dtype=DT)
    exact = latent_score(net, z, volume="smin")
    lob = latent_score(net, z, volume="lobpcg", n_iter=30, generator=_gen(19))
    torch.testing.assert_close(lob, exact, rtol=1e-6, atol=1e-8)
    # z ~ N(0, std² I) scales the Gaussian part only
    torch.testing.assert_close(latent_score(net, z, volume="smin", z_std=2.0), exact - 0.75 * z)
    with pytest.raises(ValueError, match="volume must be"):
        latent_score(net, z, volume="svd")


def test_gp_upper_term_hinge():
    gp = torch.tensor([500.0, 1500.0, 3000.0], dtype=DT)
    torch.testing.assert_close(gp_upper_term(gp), torch.tensor([0.0, 0.5, 2.0], dtype=DT))
    torch.testing.assert_close(gp_upper_term(gp, w=1.0, thre=0.0), gp)


def test_zero_centred_gp_closed_form_and_gradient():
    D = 3
    L = torch.randn(D, D, generator=_gen(20), dtype=DT)
    b = torch.randn(D, generator=_gen(21), dtype=DT).requires_grad_(True)
    energy = lambda x: 0.5 * (x @ L.T).pow(2).sum(1) + x @ b  # noqa: E731  ∇E = LᵀL x + b
    x = torch.randn(50, D, generator=_gen(22), dtype=DT)
    gp = zero_centred_gp(energy, x)
    grad_e = x @ (L.T @ L) + b.detach()
    torch.testing.assert_close(gp, grad_e.pow(2).sum(1).mean(), rtol=1e-12, atol=0)
    (g_b,) = torch.autograd.grad(gp, b)
    torch.testing.assert_close(g_b, 2 * grad_e.mean(0), rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="to \\[b\\]"):
        zero_centred_gp(lambda xx: xx, x)
