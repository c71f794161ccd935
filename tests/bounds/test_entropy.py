"""Known answers for the Jacobian entropy bounds (BiB bound (i)), float64.

Tolerances: closed forms are compared at 1e-10 (float64 round-off of a few small matrix factorisations);
LOBPCG's s_min at the brief's 1e-4 relative, with enough iterations that it converges far below that
(measured ≈ 1e-10 after 30 iterations on d = 6); gradients at 1e-6 relative.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
from torch import nn

from ebmlab.bounds.entropy import (
    RITZ_SQUARINGS,
    _orthonormalise,
    _smallest_ritz_vector,
    batch_jacobian,
    gaussian_entropy,
    lobpcg_entropy,
    lobpcg_smin,
    logdet_entropy,
    smallest_singular_value,
    smin_entropy_exact,
    svdvals_or_nan,
)

DT = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mlp(d: int, h: int, D: int, seed: int) -> nn.Module:
    """tanh MLP with weights drawn from an explicit generator (not the global RNG)."""
    net = nn.Sequential(nn.Linear(d, h), nn.Tanh(), nn.Linear(h, D)).to(DT)
    g = _gen(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=DT) / math.sqrt(p.shape[-1]))
    return net


def _linear(A: torch.Tensor, c: torch.Tensor | None = None):
    return lambda z: z @ A.T + (0 if c is None else c)


def test_gaussian_entropy_matches_scipy():
    expected = scipy.stats.multivariate_normal(mean=[0, 0, 0], cov=0.7**2 * np.eye(3)).entropy()
    assert gaussian_entropy(3, 0.7) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="std > 0"):
        gaussian_entropy(2, 0.0)


def test_batch_jacobian_fwd_rev_and_per_example_reference():
    net = _mlp(3, 8, 5, seed=0)
    z = torch.randn(4, 3, generator=_gen(1), dtype=DT)
    J_fwd = batch_jacobian(net, z, mode="fwd")
    J_rev = batch_jacobian(net, z, mode="rev")
    ref = torch.stack([torch.autograd.functional.jacobian(lambda zi: net(zi[None])[0], z[i]) for i in range(4)])
    assert J_fwd.shape == (4, 5, 3)
    torch.testing.assert_close(J_fwd, ref, rtol=0, atol=1e-13)
    torch.testing.assert_close(J_rev, ref, rtol=0, atol=1e-13)


def test_logdet_entropy_linear_generator_closed_form():
    d, D = 3, 5
    A = torch.randn(D, d, generator=_gen(2), dtype=DT)
    z = torch.randn(7, d, generator=_gen(3), dtype=DT)
    est = logdet_entropy(_linear(A, torch.ones(D, dtype=DT)), z)
    expected = gaussian_entropy(d) + 0.5 * torch.logdet(A.T @ A)
    torch.testing.assert_close(est.entropy, expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(est.log_volume, (0.5 * torch.logdet(A.T @ A)).expand(7), rtol=0, atol=1e-10)
    # with z ~ N(0, std² I) only H(z) changes
    est2 = logdet_entropy(_linear(A), 0.5 * z, z_std=0.5)
    torch.testing.assert_close(est2.entropy, expected + d * math.log(0.5), rtol=0, atol=1e-10)


def test_logdet_entropy_gradient_closed_form():
    # d/dA ½ log det(AᵀA) = A (AᵀA)⁻¹
    d, D = 2, 4
    A = torch.randn(D, d, generator=_gen(4), dtype=DT).requires_grad_(True)
    z = torch.randn(3, d, generator=_gen(5), dtype=DT)
    (grad,) = torch.autograd.grad(logdet_entropy(_linear(A), z).entropy, A)
    A0 = A.detach()
    torch.testing.assert_close(grad, A0 @ torch.linalg.inv(A0.T @ A0), rtol=0, atol=1e-10)


def test_smin_exact_linear_generator_and_ordering():
    d, D = 3, 6
    A = torch.randn(D, d, generator=_gen(6), dtype=DT)
    z = torch.randn(5, d, generator=_gen(7), dtype=DT)
    s_min = torch.linalg.svdvals(A)[-1]
    est = smin_entropy_exact(_linear(A), z)
    torch.testing.assert_close(est.entropy, gaussian_entropy(d) + d * torch.log(s_min), rtol=0, atol=1e-10)
    # d log s_min ≤ Σ log s_k: the s_min form is a lower bound on the exact form
    assert est.entropy < logdet_entropy(_linear(A), z).entropy


def _with_singular_values(s: list[float], D: int, seed: int) -> torch.Tensor:
    """A [D, d] matrix U diag(s) Vᵀ with random orthonormal U, V: known singular values."""
    d = len(s)
    g = _gen(seed)
    U = torch.linalg.qr(torch.randn(D, d, generator=g, dtype=DT))[0]
    V = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=DT))[0]
    return (U * torch.tensor(s, dtype=DT)) @ V.T


@pytest.mark.parametrize("D", [2, 5, 64, 65])  # 65: past the closed form, svdvals
@pytest.mark.parametrize("s", [[3.0, 0.5], [1.0, 1e-8], [2.0, 2.0], [1.0, 0.0], [0.0, 0.0], [1e-30, 1e-31], [7.0]])
def test_smallest_singular_value_known_answers(s, D):
    """The closed form for d ≤ 2 (capturable in a CUDA graph) gives the chosen s_min to a backward-stable method's
    accuracy, ~eps·s_max: also for a nearly singular J (s_min/s_max = 1e-8, where a·e − c² would lose it all —
    its error is ~√eps·s_max = 1e-8), equal values, rank 0 and 1, and tiny scales."""
    J = torch.stack([_with_singular_values(s, D, seed) for seed in range(4)])
    got = smallest_singular_value(J)
    assert got.shape == (4,) and torch.isfinite(got).all()
    torch.testing.assert_close(got, torch.full((4,), min(s), dtype=DT), rtol=1e-12, atol=8 * 2.2e-16 * max(s))


def test_smallest_singular_value_gradient_matches_svdvals_and_stays_finite_at_equal_values():
    J = torch.randn(6, 3, 2, generator=_gen(11), dtype=DT, requires_grad=True)
    torch.autograd.gradcheck(smallest_singular_value, (J,))
    g_closed, = torch.autograd.grad(smallest_singular_value(J).sum(), J)
    g_svd, = torch.autograd.grad(torch.linalg.svdvals(J)[:, -1].sum(), J)
    torch.testing.assert_close(g_closed, g_svd, rtol=1e-9, atol=1e-12)
    for s in ([2.0, 2.0], [0.0, 0.0]):  # s_min not differentiable there: a finite gradient, not NaN
        Je = _with_singular_values(s, 3, 1)[None].requires_grad_(True)
        g, = torch.autograd.grad(smallest_singular_value(Je).sum(), Je)
        assert torch.isfinite(g).all()


def test_svdvals_or_nan_gives_nan_rows_for_a_non_finite_jacobian_and_exact_values_elsewhere():
    """A diverged generator's J must reach the trainer's divergence check as NaN: ``svdvals`` raises for the whole
    batch on the CPU when one row holds a NaN or an inf."""
    J = torch.randn(4, 70, 3, generator=_gen(5), dtype=DT)
    J[1, 3, 0], J[3, 0, 2] = math.nan, math.inf
    with pytest.raises(torch.linalg.LinAlgError):  # what the guard is for
        torch.linalg.svdvals(J)
    got = svdvals_or_nan(J.requires_grad_(True))
    assert torch.isnan(got[[1, 3]]).all()
    torch.testing.assert_close(got[[0, 2]], torch.linalg.svdvals(J.detach()[[0, 2]]), rtol=1e-14, atol=0)
    g, = torch.autograd.grad(got[[0, 2]].sum(), J)
    assert torch.isfinite(g).all() and (g[[1, 3]] == 0).all()
    assert torch.isnan(smallest_singular_value(J.detach())[[1, 3]]).all()  # past the closed form: this route


def test_smin_exact_on_a_two_dimensional_latent_equals_svdvals():
    G = _mlp(2, 16, 2, seed=12)
    z = torch.randn(64, 2, generator=_gen(13), dtype=DT)
    est = smin_entropy_exact(G, z)
    J = batch_jacobian(G, z)
    want = gaussian_entropy(2) + 2 * torch.log(torch.linalg.svdvals(J)[:, -1]).mean()
    torch.testing.assert_close(est.entropy, want, rtol=1e-12, atol=1e-12)


def test_jacobian_bound_needs_d_le_D():
    A = torch.randn(2, 3, generator=_gen(8), dtype=DT)
    z = torch.randn(4, 3, generator=_gen(9), dtype=DT)
    with pytest.raises(ValueError, match="d ≤ D"):
        logdet_entropy(_linear(A), z)
    with pytest.raises(ValueError, match=r"shape \[b, d\]"):
        logdet_entropy(_linear(A), z[0])


def test_lobpcg_matches_svdvals_on_mlp_and_image_shaped_output():
    d, D = 6, 12
    net = _mlp(d, 16, D, seed=10)
    z = torch.randn(16, d, generator=_gen(11), dtype=DT)
    exact = torch.linalg.svdvals(batch_jacobian(net, z))[:, -1]
    est = lobpcg_smin(net, z, n_iter=30, generator=_gen(12))
    assert est.valid.all()
    torch.testing.assert_close(est.s_min, exact, rtol=1e-4, atol=0)
    # the returned v is a unit right singular vector: ‖J v‖ = s_min
    assert torch.allclose(est.v.norm(dim=1), torch.ones(16, dtype=DT), atol=1e-12)
    # outputs with image shape [b, C, H, W] are flattened the same way
    img = lambda zz: net(zz).reshape(-1, 3, 2, 2)  # noqa: E731
    est_img = lobpcg_smin(img, z, n_iter=30, generator=_gen(12))
    torch.testing.assert_close(est_img.s_min, exact, rtol=1e-4, atol=0)


def test_lobpcg_matches_svdvals_on_linear_map_with_separated_spectrum():
    d, D = 5, 9
    U, _ = torch.linalg.qr(torch.randn(D, d, generator=_gen(13), dtype=DT))
    V, _ = torch.linalg.qr(torch.randn(d, d, generator=_gen(14), dtype=DT))
    s = torch.tensor([3.0, 2.5, 2.0, 1.5, 0.3], dtype=DT)
    A = U @ torch.diag(s) @ V.T
    z = torch.randn(8, d, generator=_gen(15), dtype=DT)
    est = lobpcg_smin(_linear(A), z, n_iter=10, generator=_gen(16))
    torch.testing.assert_close(est.s_min, torch.full((8,), 0.3, dtype=DT), rtol=1e-4, atol=0)
    # the singular vector is ± the last column of V
    assert torch.allclose((est.v @ V[:, -1]).abs(), torch.ones(8, dtype=DT), atol=1e-6)


def test_lobpcg_rayleigh_quotient_is_monotone_and_above_smin():
    # Rayleigh–Ritz over a space that contains the current v can only lower ‖J v‖, and any Rayleigh quotient
    # is ≥ s_min: the 2-iteration estimate of training is an over-estimate of s_min.
    d, D = 8, 10
    net = _mlp(d, 12, D, seed=17)
    z = torch.randn(32, d, generator=_gen(18), dtype=DT)
    exact = torch.linalg.svdvals(batch_jacobian(net, z))[:, -1]
    prev = None
    for n_iter in range(5):
        s = lobpcg_smin(net, z, n_iter=n_iter, generator=_gen(19)).s_min.detach()
        assert (s >= exact * (1 - 1e-12)).all()
        if prev is not None:
            assert (s <= prev * (1 + 1e-12)).all()
        prev = s


def test_lobpcg_gradient_matches_exact_svdvals_and_finite_differences():
    d, D = 4, 7
    net = _mlp(d, 10, D, seed=20)
    z = torch.randn(6, d, generator=_gen(21), dtype=DT)
    params = list(net.parameters())[:3]  # the last bias does not enter the Jacobian
    exact = smin_entropy_exact(net, z)
    g_exact = torch.autograd.grad(exact.entropy, params)
    est = lobpcg_entropy(net, z, n_iter=30, generator=_gen(22))
    torch.testing.assert_close(est.entropy, exact.entropy, rtol=1e-10, atol=0)
    g_lobpcg = torch.autograd.grad(est.entropy, params)
    for a, b in zip(g_lobpcg, g_exact):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)
    # the exact reference against central finite differences of d · mean log svdvals_min
    W = net[0].weight
    h = 1e-6
    for (i, j) in [(0, 0), (3, 2), (7, 1)]:
        vals = []
        for sgn in (1, -1):
            with torch.no_grad():
                W[i, j] += sgn * h
                vals.append(smin_entropy_exact(net, z).entropy.item())
                W[i, j] -= sgn * h
        fd = (vals[0] - vals[1]) / (2 * h)
        assert g_exact[0][i, j].item() == pytest.approx(fd, rel=1e-6, abs=1e-8)


def test_lobpcg_warm_start_and_shape_check():
    d, D = 5, 8
    net = _mlp(d, 10, D, seed=23)
    z = torch.randn(10, d, generator=_gen(24), dtype=DT)
    exact = torch.linalg.svdvals(batch_jacobian(net, z))[:, -1]
    first = lobpcg_smin(net, z, n_iter=30, generator=_gen(25))
    warm = lobpcg_smin(net, z, n_iter=0, v0=first.v)  # no iteration, no random start needed
    torch.testing.assert_close(warm.s_min, exact, rtol=1e-8, atol=0)
    with pytest.raises(ValueError, match="shape of z"):
        lobpcg_smin(net, z, v0=first.v[:, :2])
    with pytest.raises(ValueError, match="explicit generator"):
        lobpcg_smin(net, z)  # no global RNG: a random start needs a torch.Generator


def test_lobpcg_skips_rows_that_go_nan():
    d, D = 4, 6
    net = _mlp(d, 8, D, seed=26)
    z = torch.randn(12, d, generator=_gen(27), dtype=DT)
    bad = z[:, 0] < 0
    assert 0 < bad.sum() < 12

    def G(zz):  # NaN output and Jacobian exactly where z_0 < 0
        return net(zz) * torch.sqrt(zz[:, :1].clamp_min(-1.0) + 1.0) * torch.sqrt(torch.sign(zz[:, :1]) + 1)

    est = lobpcg_entropy(G, z, n_iter=25, generator=_gen(28))
    assert torch.equal(est.valid, ~bad)
    good = ~bad
    J_good = batch_jacobian(G, z[good])
    s_good = torch.linalg.svdvals(J_good)[:, -1]
    torch.testing.assert_close(est.log_volume[good], d * torch.log(s_good), rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(est.entropy, gaussian_entropy(d) + d * torch.log(s_good).mean(), rtol=1e-8,
                               atol=1e-8)
    grads = torch.autograd.grad(est.entropy, list(net.parameters()), allow_unused=True)
    assert all(g is None or torch.isfinite(g).all() for g in grads)


def test_lobpcg_runs_the_generator_once():
    # every J·w and Jᵀ·y product comes from one forward of G by double backward; with a NaN-free batch the
    # graph-carrying final product reuses it too
    d, D = 6, 12
    net = _mlp(d, 16, D, seed=30)
    z = torch.randn(16, d, generator=_gen(31), dtype=DT)
    calls = []
    counted = lambda zz: calls.append(zz.shape[0]) or net(zz)  # noqa: E731
    exact = torch.linalg.svdvals(batch_jacobian(net, z))[:, -1]
    for n_iter in (1, 2, 30):
        calls.clear()
        est = lobpcg_smin(counted, z, n_iter=n_iter, generator=_gen(32))
        assert est.valid.all() and calls == [16]
    torch.testing.assert_close(est.s_min, exact, rtol=1e-4, atol=0)


def test_lobpcg_from_an_exact_singular_vector_stays_exact():
    # A converged start makes r pure rounding noise; J r is still exact relative to r (J is linear), so the
    # combinations J Q of J S stay consistent and the estimate stays at the true s_min.
    d, D = 5, 9
    U, _ = torch.linalg.qr(torch.randn(D, d, generator=_gen(33), dtype=DT))
    V, _ = torch.linalg.qr(torch.randn(d, d, generator=_gen(34), dtype=DT))
    A = U @ torch.diag(torch.tensor([3.0, 2.5, 2.0, 1.5, 0.3], dtype=DT)) @ V.T
    z = torch.randn(8, d, generator=_gen(35), dtype=DT)
    est = lobpcg_smin(_linear(A), z, n_iter=3, v0=V[:, -1].expand(8, d).clone())
    assert est.valid.all()
    torch.testing.assert_close(est.s_min, torch.full((8,), 0.3, dtype=DT), rtol=1e-10, atol=0)


def test_lobpcg_in_two_latent_dimensions_drops_the_dependent_column():
    # With d = 2 the trial space [v, r, p] has 3 columns in R²: Gram–Schmidt drops the dependent one in the
    # iterations that carry p; the 2D problem is solved exactly by the first Rayleigh–Ritz step.
    net = _mlp(2, 16, 5, seed=37)
    z = torch.randn(12, 2, generator=_gen(38), dtype=DT)
    est = lobpcg_smin(net, z, n_iter=3, generator=_gen(39))
    assert est.valid.all()
    exact = torch.linalg.svdvals(batch_jacobian(net, z))[:, -1]
    torch.testing.assert_close(est.s_min, exact, rtol=1e-10, atol=0)


def test_auto_jacobian_mode_equals_both_modes_and_picks_forward_for_images():
    """D > d (an image generator that is not a layer chain): auto takes the d JVPs of forward mode; D ≤ d: reverse
    mode. Reverse mode in chunks (b = 300 rows → chunks of 13 cotangents) gives the same Jacobian."""
    from ebmlab.bounds.entropy import batch_jacobian, resolve_jac_mode

    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2 * 4 * 4).double()
    G = lambda z: torch.tanh(lin(z)).reshape(-1, 2, 4, 4)  # noqa: E731  row-wise, image-shaped output
    z = torch.randn(300, 3, dtype=torch.float64)
    ja, jf, jr = (batch_jacobian(G, z, mode=m) for m in ("auto", "fwd", "rev"))
    assert ja.shape == (300, 32, 3)
    assert torch.allclose(ja, jf, atol=1e-12) and torch.allclose(jf, jr, atol=1e-12)
    assert resolve_jac_mode("auto", 3, 32) == "fwd" and resolve_jac_mode("auto", 2, 2) == "rev"
    with pytest.raises(ValueError, match="jac_mode"):
        resolve_jac_mode("sideways", 2, 2)


@pytest.mark.parametrize("act", ["relu", "leaky_relu", "tanh", "prelu", "elu", "softplus"])
def test_propagated_jacobian_equals_autodiff_with_eval_batchnorm_and_second_derivatives(act):
    """Tangent propagation (``prop``, auto's pick for MLP generators) against torch.func's reverse and forward
    modes in float64: the Jacobian, G(z), and the gradients of a loss through ½ log det(JᵀJ + I) (finite where a
    ReLU net's J is singular) with respect to z (the latent score's second derivatives) and to every parameter;
    BatchNorm in eval mode with non-trivial statistics (after the activation for PReLU, EBM-BB's order), a ScaledTanh, a learned output scale and a
    final Reshape. Rounding only: J to 1e-13, gradients to 1e-9 relative."""
    from ebmlab.bounds.entropy import jacobian_and_output, resolve_jac_mode
    from ebmlab.nets.jacobian import propagates
    from ebmlab.nets.conv import Reshape
    from ebmlab.nets.mlp import LearnedScale, ScaledTanh, mlp

    torch.manual_seed(0)
    G = mlp(2, (7, 5), 3, act=act, batchnorm=True, bn_position="post" if act == "prelu" else "pre").to(DT)
    G.append(ScaledTanh(2.0))
    G.append(LearnedScale().to(DT))
    G.append(Reshape(3))
    with torch.no_grad():
        for m in G:
            if isinstance(m, nn.BatchNorm1d):
                m.running_var.uniform_(0.5, 2.0), m.running_mean.normal_(), m.weight.normal_(), m.bias.normal_()
            if isinstance(m, nn.PReLU):
                m.weight.fill_(0.3)
    G.eval()
    assert propagates(G) and resolve_jac_mode("auto", 2, 3, G) == "prop"
    z = torch.randn(13, 2, dtype=DT, generator=_gen(3))
    out = {}
    for mode in ("prop", "rev", "fwd"):
        zz = z.clone().requires_grad_(True)
        x, J = jacobian_and_output(G, zz, mode=mode)
        # log det(JᵀJ + I): finite also where a ReLU net's J is singular
        loss = 0.5 * torch.linalg.slogdet(J.transpose(1, 2) @ J + torch.eye(2, dtype=DT))[1].sum() + (x**2).sum()
        grads = torch.autograd.grad(loss, [zz, *G.parameters()], allow_unused=True, materialize_grads=True)
        out[mode] = (x, J, grads)
    for mode in ("rev", "fwd"):
        torch.testing.assert_close(out["prop"][0], out[mode][0], rtol=0, atol=1e-13)
        torch.testing.assert_close(out["prop"][1], out[mode][1], rtol=0, atol=1e-13)
        for a, b in zip(out["prop"][2], out[mode][2]):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    assert batch_jacobian(G, z).shape == (13, 3, 2)


def test_propagation_is_refused_where_it_would_be_wrong():
    """Train-mode BatchNorm couples the rows (no per-example Jacobian), an unknown layer has no rule, a plain
    function has no layers: auto falls back to torch.func there and still gives the right Jacobian."""
    from ebmlab.bounds.entropy import jacobian_and_output
    from ebmlab.nets.jacobian import propagate_jacobian, propagates

    G = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 2)).to(DT)
    assert not propagates(G)  # training mode
    G.eval()
    assert propagates(G)

    class Square(nn.Module):
        def forward(self, x):
            return x * x

    H = nn.Sequential(nn.Linear(2, 3), Square(), nn.Linear(3, 2)).to(DT)
    assert not propagates(H) and not propagates(lambda z: z)
    with pytest.raises(ValueError, match="no derivative rule"):
        propagate_jacobian(H, torch.zeros(1, 2, dtype=DT))
    z = torch.randn(5, 2, dtype=DT, generator=_gen(4))
    ref = torch.stack([torch.autograd.functional.jacobian(lambda zi: H(zi[None])[0], z[i]) for i in range(5)])
    torch.testing.assert_close(jacobian_and_output(H, z)[1], ref, rtol=0, atol=1e-13)


# --- the sync-free Rayleigh–Ritz pieces ------------------------------------------------------------------------


@pytest.mark.parametrize("scales", [(1.0, 1.0, 1.0), (1.0, 1e-3, 1e-6), (0.06, 0.3, 0.1), (1e-8, 1.0, 1e3),
                                    (1.0, 1.0), (1.0, 1e-6), (1e-8, 1e3), (1.0, 1.0 + 1e-9)])
def test_smallest_ritz_vector_is_the_svds_right_singular_vector(scales):
    """Against LAPACK's SVD, including graded columns (relative accuracy of the small one); three columns (repeated
    squaring) and two (the closed form of a LOBPCG's first iteration)."""
    k = len(scales)
    JQ = torch.randn(7, 11, k, generator=_gen(40), dtype=DT) * torch.tensor(scales, dtype=DT)
    c = _smallest_ritz_vector(JQ, torch.ones(7, k, dtype=torch.bool))
    _, S, Vh = torch.linalg.svd(JQ, full_matrices=False)
    ref = Vh[:, -1, :] * torch.sign((c * Vh[:, -1, :]).sum(1, keepdim=True))
    torch.testing.assert_close(c, ref, rtol=0, atol=1e-12)
    torch.testing.assert_close((JQ @ c[..., None]).squeeze(-1).norm(dim=1), S[:, -1], rtol=1e-12, atol=0)


def test_smallest_ritz_vector_with_repeated_values_dropped_and_zero_columns():
    # equal singular values: any unit vector of their span is right; its ‖J Q c‖ must be the common value
    Q, _ = torch.linalg.qr(torch.randn(9, 3, generator=_gen(41), dtype=DT))
    JQ = (Q * torch.tensor([2.0, 0.5, 0.5], dtype=DT)).expand(4, 9, 3).clone()
    c = _smallest_ritz_vector(JQ, torch.ones(4, 3, dtype=torch.bool))
    torch.testing.assert_close((JQ @ c[..., None]).squeeze(-1).norm(dim=1), torch.full((4,), 0.5, dtype=DT))
    torch.testing.assert_close(c.norm(dim=1), torch.ones(4, dtype=DT))
    # a dropped (zero) column is never chosen even though its norm 0 is the smallest
    JQ = torch.randn(5, 9, 3, generator=_gen(42), dtype=DT)
    JQ[:, :, 2] = 0
    keep = torch.tensor([True, True, False]).expand(5, 3)
    c = _smallest_ritz_vector(JQ, keep)
    assert torch.all(c[:, 2] == 0)
    ref = torch.linalg.svd(JQ[:, :, :2], full_matrices=False)[2][:, -1, :]
    torch.testing.assert_close(c[:, :2].abs(), ref.abs(), rtol=0, atol=1e-12)
    # a row of zeros (a row left out of the update) gives a unit, finite c
    c = _smallest_ritz_vector(torch.zeros(2, 9, 3, dtype=DT), torch.zeros(2, 3, dtype=torch.bool))
    assert torch.isfinite(c).all()


def test_smallest_ritz_vector_of_two_columns_is_exact_at_any_gap():
    """Two columns (a LOBPCG's first iteration, closed form): a pair of nearly equal singular values gets the exact
    smallest one, no excess; a null direction is found; nothing to minimise gives e1."""
    Q, _ = torch.linalg.qr(torch.randn(5, 9, 2, generator=_gen(50), dtype=DT))
    W, _ = torch.linalg.qr(torch.randn(5, 2, 2, generator=_gen(51), dtype=DT))
    for rho in (1 - 1e-6, 1 - 1e-8):
        JQ = Q * torch.tensor([0.5 / rho, 0.5], dtype=DT) @ W.transpose(1, 2)
        c = _smallest_ritz_vector(JQ, torch.ones(5, 2, dtype=torch.bool))
        torch.testing.assert_close((JQ @ c[..., None]).squeeze(-1).norm(dim=1), torch.full((5,), 0.5, dtype=DT),
                                   rtol=1e-15, atol=0)
    # parallel columns (a null direction), a zero column, nothing: the null vector; e1
    a = torch.randn(3, 9, 1, generator=_gen(52), dtype=DT)
    for JQ in (a * torch.tensor([1.0, 2.0], dtype=DT), a * torch.tensor([1.0, 0.0], dtype=DT)):
        c = _smallest_ritz_vector(JQ, torch.ones(3, 2, dtype=torch.bool))
        assert (JQ @ c[..., None]).norm() < 1e-14 * JQ.norm() and torch.allclose(c.norm(dim=1), torch.ones(3, dtype=DT))
    assert _smallest_ritz_vector(torch.zeros(2, 9, 2, dtype=DT), torch.ones(2, 2, dtype=torch.bool)).tolist() == [
        [1.0, 0.0]] * 2


def test_smallest_ritz_vector_near_equal_values_stays_within_its_stated_excess():
    """Repeated squaring converges as (σ_min/σ_mid)^(2^(s+1)): for a nearly equal pair c stays mixed inside it, and
    the Ritz value ‖J Q c‖ (a Rayleigh quotient: never below σ_min) exceeds σ_min by at most about
    1.5 / (e · 2^(s+2)) relative, whatever the gap — 1.3e-7 at the default s = 20. The worst ratio is
    ρ² = 2N/(2N+1) with N = 2^(s+1); ratios on both sides of it, and well separated ones (exact)."""
    Q, _ = torch.linalg.qr(torch.randn(20, 9, 3, generator=_gen(45), dtype=DT))
    W, _ = torch.linalg.qr(torch.randn(20, 3, 3, generator=_gen(46), dtype=DT))
    N = 2 ** (RITZ_SQUARINGS + 1)
    worst = math.sqrt(2 * N / (2 * N + 1))
    bound = 1.5 / (math.e * 2 ** (RITZ_SQUARINGS + 2))
    for rho in (0.5, 0.99, 0.999, 1 - 1e-6, worst, 1 - 1e-8, 1 - 1e-10):
        JQ = Q * torch.tensor([2.0, 0.5 / rho, 0.5], dtype=DT) @ W.transpose(1, 2)  # singular values known
        c = _smallest_ritz_vector(JQ, torch.ones(20, 3, dtype=torch.bool))
        excess = (JQ @ c[..., None]).squeeze(-1).norm(dim=1) / 0.5 - 1
        assert excess.min() > -1e-15 and excess.max() < (1e-15 if rho <= 0.999 else bound), (rho, excess)
    # fewer squarings: the excess at the worst ratio grows as stated (not hidden by a lucky start)
    s = 4
    rho = math.sqrt(2 ** (s + 2) / (2 ** (s + 2) + 1))
    JQ = Q * torch.tensor([2.0, 0.5 / rho, 0.5], dtype=DT) @ W.transpose(1, 2)
    excess = (JQ @ _smallest_ritz_vector(JQ, torch.ones(20, 3, dtype=torch.bool), squarings=s)[..., None])
    excess = excess.squeeze(-1).norm(dim=1) / 0.5 - 1
    assert 1e-4 < excess.max() < 1.5 / (math.e * 2 ** (s + 2))


def test_smallest_ritz_vector_on_rank_deficient_factors():
    """J Q of rank 1 with 3 kept columns (J with a null plane in span Q): the factor's adjugate is exactly 0, the
    diagonal shift lifts it, and c lies in the null space. Exactly parallel columns (×2, ×4 and equal ones leave
    Gram–Schmidt remainders of exactly 0) and a zero column."""
    a = torch.randn(4, 9, 1, generator=_gen(47), dtype=DT)
    for scales in ([1.0, 2.0, 4.0], [1.0, 1.0, 1.0], [1.0, 2.0, 3.0], [0.0, 1.0, 0.0], [1e-8, 1.0, 1e3]):
        JQ = a * torch.tensor(scales, dtype=DT)
        c = _smallest_ritz_vector(JQ, torch.ones(4, 3, dtype=torch.bool))
        torch.testing.assert_close(c.norm(dim=1), torch.ones(4, dtype=DT))
        residual = (JQ @ c[..., None]).squeeze(-1).norm(dim=1) / JQ.flatten(1).norm(dim=1)
        assert residual.max() < 1e-14, (scales, residual)
    # two independent columns and a zero one: the zero one is the minimiser, exactly
    JQ = torch.randn(3, 9, 3, generator=_gen(48), dtype=DT)
    JQ[:, :, 1] = 0
    c = _smallest_ritz_vector(JQ, torch.ones(3, 3, dtype=torch.bool))
    torch.testing.assert_close(c.abs(), torch.tensor([[0.0, 1.0, 0.0]] * 3, dtype=DT), rtol=0, atol=1e-15)
    # all zero but kept (nothing to minimise): c = e1, v is kept
    c = _smallest_ritz_vector(torch.zeros(2, 9, 3, dtype=DT), torch.ones(2, 3, dtype=torch.bool))
    assert c.tolist() == [[1.0, 0.0, 0.0]] * 2


def test_orthonormalise_is_orthonormal_consistent_and_drops_dependent_columns():
    A = torch.randn(8, 4, generator=_gen(43), dtype=DT)  # a linear J: J w = A w
    S = torch.randn(6, 4, 3, generator=_gen(44), dtype=DT)
    S[0, :, 2] = 2 * S[0, :, 0] - 3 * S[0, :, 1]  # row 0: the third column depends on the first two
    S[1, :, 1] = 0.0  # row 1: a zero column
    JS = torch.einsum("Dd,bdk->bDk", A, S)
    Q, JQ, keep = _orthonormalise(S, JS, math.sqrt(torch.finfo(DT).eps))
    assert keep[0].tolist() == [True, True, False] and keep[1].tolist() == [True, False, True]
    assert keep[2:].all()
    for i in range(6):
        Qi = Q[i][:, keep[i]]
        torch.testing.assert_close(Qi.T @ Qi, torch.eye(int(keep[i].sum()), dtype=DT), rtol=0, atol=1e-14)
        assert torch.all(Q[i][:, ~keep[i]] == 0)
    torch.testing.assert_close(JQ, torch.einsum("Dd,bdk->bDk", A, Q), rtol=0, atol=1e-13)  # J Q from J S


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-4)])
def test_lobpcg_stays_on_the_singular_vector_for_many_iterations(dtype, tol):
    """Once v has converged, carrying J p would drift (errors 10⁻¹ after 30 iterations); recomputed J p keeps
    v at the singular vector to working precision for 100 iterations."""
    net = _mlp(4, 10, 6, seed=17).to(dtype)
    z = torch.randn(64, 4, generator=_gen(18), dtype=DT).to(dtype)
    Vh = torch.linalg.svd(batch_jacobian(net, z).detach().double())[2]
    vt = Vh[:, -1, :]
    for n_iter in (30, 100):
        v = lobpcg_smin(net, z, n_iter=n_iter, generator=_gen(19)).v.double()
        err = (v - vt * torch.sign((v * vt).sum(1, keepdim=True))).norm(dim=1).max()
        assert err < tol, (n_iter, float(err))


def test_sync_free_lobpcg_equals_the_default_and_reads_nothing_on_the_host():
    from ebmlab.syncs import CountHostReads

    net = _mlp(6, 16, 12, seed=10)
    z = torch.randn(16, 6, generator=_gen(11), dtype=DT)
    params = list(net.parameters())[:3]  # the last bias does not enter the Jacobian
    a = lobpcg_entropy(net, z, n_iter=3, generator=_gen(12))
    with CountHostReads() as reads:
        b = lobpcg_entropy(net, z, n_iter=3, generator=_gen(12), sync_free=True)
    assert reads.total == 0, reads.where
    torch.testing.assert_close(b.entropy, a.entropy, rtol=1e-14, atol=0)
    for ga, gb in zip(torch.autograd.grad(a.entropy, params), torch.autograd.grad(b.entropy, params)):
        torch.testing.assert_close(gb, ga, rtol=1e-12, atol=1e-14)
    # the default still reads the host (to re-run G on valid rows only), which is why training asks for sync_free
    with CountHostReads() as reads:
        lobpcg_entropy(net, z, n_iter=3, generator=_gen(12))
    assert reads.total > 0


def test_entropy_ordering_through_s_min_for_a_nonlinear_generator():
    """BiB's bound (i) for a nonlinear injective generator with a known manifold entropy: G(z) = (a z₁, z₂,
    tanh(2 z₁)) has JᵀJ = diag(a² + g'(z₁)², 1), so the exact entropy H(p_g) = H(z) + E ½ log(a² + g'²) and the bound
    H(z) + d E log s_min = H(z) + E 2 min(½ log(a² + g'²), 0) are 1-D integrals (scipy's quadrature, to 1e-10).
    Per sample (float64): logdet_entropy's log-volume is ½ log(a² + g'²) and smin_entropy_exact's d log s_min, to
    1e-12; LOBPCG's s_min agrees with the exact one to its iteration's tolerance; and over 20,000 draws the means
    sit within 4 standard errors of the integrals, the bound strictly below the exact entropy."""
    import scipy.integrate

    a = 0.5

    def G(z):
        return torch.stack([a * z[:, 0], z[:, 1], torch.tanh(2 * z[:, 0])], 1)

    def log_vol(z1):  # ½ log det JᵀJ at z₁
        g1 = 2 / np.cosh(2 * z1) ** 2
        return 0.5 * np.log(a ** 2 + g1 ** 2)

    phi = scipy.stats.norm.pdf
    exact_mean = scipy.integrate.quad(lambda t: log_vol(t) * phi(t), -12, 12, epsabs=1e-12)[0]
    bound_mean = scipy.integrate.quad(lambda t: 2 * min(log_vol(t), 0.0) * phi(t), -12, 12, epsabs=1e-12,
                                      points=[-0.5, 0.5])[0]
    z = torch.randn(20_000, 2, generator=_gen(11), dtype=DT)
    ex, sm = logdet_entropy(G, z), smin_entropy_exact(G, z)
    want = torch.tensor(log_vol(z[:, 0].numpy()), dtype=DT)
    torch.testing.assert_close(ex.log_volume, want, rtol=0, atol=1e-12)
    torch.testing.assert_close(sm.log_volume, 2 * torch.clamp(want, max=0.0), rtol=0, atol=1e-12)
    assert bool((sm.log_volume <= ex.log_volume + 1e-12).all())  # d log s_min ≤ Σ log s_k, sample by sample
    h_z = gaussian_entropy(2)
    for est, mean in ((ex, exact_mean), (sm, bound_mean)):
        se = float(est.log_volume.std() / len(z) ** 0.5)
        assert abs(float(est.entropy) - (h_z + mean)) < 4 * se
    assert h_z + bound_mean < h_z + exact_mean - 0.1  # the bound is strictly below the exact entropy here
    lob = lobpcg_smin(G, z[:500], n_iter=30, generator=_gen(12))
    torch.testing.assert_close(lob.s_min, torch.exp(sm.log_volume[:500] / 2), rtol=1e-6, atol=1e-9)
