"""BiB: pairings train, each player's step touches only its own networks, and the reported bounds have known
answers (exact on Gaussian cases, a sandwich around the exact NLL after training)."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from ebmlab.bounds.diffusion import alpha_sigma
from ebmlab.bounds.entropy import smin_entropy_exact
from ebmlab.bounds.score import latent_score, score_mismatch_gp
from ebmlab.data import get_dataset
from ebmlab.metrics.density import density_metrics
from ebmlab.methods.bib import BIB_METHODS
from ebmlab.trainer import build_method
from ebmlab.config import resolve_config

PAIRINGS = list(BIB_METHODS)  # bib = (i)+(iii), bib_jac_diff, bib_mi_gp, bib_mi_diff, bib_onesided


def make(name, data="ring8", **over):
    return build_method(resolve_config(name, data, overrides={"seed": 0, **over}), torch.device("cpu"))


def batch(n=64, data="ring8", seed=0):
    ds = get_dataset(data)
    return ds.train[torch.randint(0, len(ds.train), (n,), generator=torch.Generator().manual_seed(seed))]


def grads(module):
    return [p.grad for p in module.parameters()]


@pytest.mark.parametrize("name, over", [(n, {}) for n in PAIRINGS]
                         + [("bib", {"estimator": "logdet"}), ("bib", {"estimator": "lobpcg"}),
                            ("bib_onesided", {"onesided_penalty": "none"})])
def test_pairing_trains_and_reports_finite_bounds(name, over):
    m = make(name, **over)
    for s in range(3):
        metrics = m.train_step(batch(seed=s), s + 1)
    assert all(math.isfinite(v) for v in metrics.values()), metrics
    m.train(False)
    extra = m.evaluate_extra(get_dataset("ring8"))
    m.train(True)
    for k in ("nll_lower", "nll_lower_se", "nll_upper", "nll_upper_se", "nll_upper_chi2"):
        assert math.isfinite(extra[k]), (k, extra)
    assert extra["nll_lower"] < extra["nll_upper"]
    assert ("nll_upper_diffusion" in extra) == (m.config.upper == "diffusion")
    assert ("consistent" in extra["upper_note"]) == (m.config.upper == "diffusion")


@pytest.mark.parametrize("name", PAIRINGS)
def test_each_step_differentiates_only_its_own_players(name):
    m = make(name)
    others = [mod for k, mod in m.networks.items() if k != "energy"]
    loss_e, _ = m.energy_loss(batch())
    loss_e.backward()
    assert all(g is None for mod in others for g in grads(mod)), "the energy loss reached G or the encoder"
    assert any(g is not None and g.abs().sum() > 0 for g in grads(m.E))
    for p in m.E.parameters():
        p.grad = None
    loss_g, _ = m.generator_loss(64)
    loss_g.backward()
    assert all(g is None for g in grads(m.E)), "the generator loss reached the energy"
    for mod in others:  # the generator and, for (ii), the encoder
        assert any(g is not None and g.abs().sum() > 0 for g in grads(mod))


def test_generator_runs_row_wise_in_eval_mode_even_while_training():
    m = make("bib")
    for s in range(3):  # moves the BatchNorm running statistics away from their initial values
        m.train_step(batch(seed=s), s + 1)
    assert m.G.training  # the trainer's mode; sampling and every bound term still use eval mode
    x = m.sample(40, generator=torch.Generator().manual_seed(3))
    assert m.G.training
    z = torch.randn(40, 2, generator=torch.Generator().manual_seed(3))
    m.G.eval()
    torch.testing.assert_close(x, m.G(z), rtol=0, atol=1e-6)
    # row-wise: a train-mode BatchNorm would make a row depend on the others in the batch
    torch.testing.assert_close(x[:7], m.G(z[:7]), rtol=0, atol=1e-6)
    m.G.train()
    assert not torch.allclose(m.G(z), x, atol=1e-3)


def test_reverse_mode_jacobians_match_forward_mode():
    m = make("bib")
    m.train_step(batch(), 1)
    G = m.G.eval()
    z = torch.randn(32, 2, generator=torch.Generator().manual_seed(1))
    a, b = smin_entropy_exact(G, z, jac_mode="fwd"), smin_entropy_exact(G, z, jac_mode="rev")
    torch.testing.assert_close(a.log_volume, b.log_volume, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(latent_score(G, z, jac_mode="fwd"), latent_score(G, z, jac_mode="rev"),
                               rtol=1e-4, atol=1e-4)
    v = torch.randn(32, 2, generator=torch.Generator().manual_seed(2))
    sa = score_mismatch_gp(m.energy, G, z, v=v, jac_mode="fwd")
    sb = score_mismatch_gp(m.energy, G, z, v=v, jac_mode="rev")
    torch.testing.assert_close(sa.per_example, sb.per_example, rtol=1e-4, atol=1e-5)


# --- known answers of the reported bounds: a linear-Gaussian generator and the exact energy -----------------------
A = torch.tensor([[1.0, 0.3], [-0.2, 0.7]])


class Quadratic(nn.Module):
    """E(x) = ½ xᵀ P x (unnormalised), output [b, 1] like the method's MLP energy."""

    def __init__(self, cov):
        super().__init__()
        self.register_buffer("P", torch.linalg.inv(cov))

    def forward(self, x):
        return 0.5 * ((x @ self.P) * x).sum(1, keepdim=True)


def gaussian_case(cov, n_test=4000):
    test = torch.randn(n_test, 2, generator=torch.Generator().manual_seed(5)) @ torch.linalg.cholesky(cov).T
    log_z = math.log(2 * math.pi) + 0.5 * math.log(float(torch.det(cov)))
    e = Quadratic(cov)(test).squeeze(1)
    return SimpleNamespace(test=test), float(e.mean()) + log_z


def use_networks(m, G, E):
    """Put a known generator and energy in a built method: the method and its bound objects hold them (each bound
    has its own fields, no reference back to the method)."""
    m.G, m.E = G, E
    m.lower.G = m.upper.G = G
    m.upper.E = E


def test_jacobian_bounds_are_exact_when_the_generator_matches_the_energy():
    m = make("bib", estimator="logdet")
    use_networks(m, nn.Linear(2, 2, bias=False), Quadratic(A @ A.T))
    m.G.weight.data.copy_(A)
    ds, nll = gaussian_case(A @ A.T)
    out = m.evaluate_extra(ds)
    # p_g = p_θ: every log-weight log(p̃/p_g) equals log Z, so both bounds equal the NLL with zero spread
    assert out["nll_lower"] == pytest.approx(nll, abs=1e-4) and out["nll_lower_se"] < 1e-5
    assert out["nll_upper"] == pytest.approx(nll, abs=1e-4) and out["nll_upper_se"] < 1e-5
    assert out["fold_frac"] == 0.0
    # s_min bound: d·log s_min ≤ ½ log det, strictly for a non-conformal A
    m2 = make("bib", estimator="smin")
    use_networks(m2, m.G, m.E)
    out2 = m2.evaluate_extra(ds)
    s = torch.linalg.svdvals(A)
    assert out2["nll_lower"] == pytest.approx(nll + 2 * math.log(s[-1]) - math.log(s[0] * s[1]), abs=1e-4)


class PseudoInverseQuadratic(nn.Module):
    """E(x) = ½‖A⁺x‖², so that E(Az) = ½‖z‖²: on the generator's surface the energy is the latent prior's."""

    def __init__(self, A):
        super().__init__()
        self.register_buffer("W", torch.linalg.pinv(A.double()).float())

    def forward(self, x):
        return 0.5 * ((x @ self.W.T) ** 2).sum(1, keepdim=True)


@pytest.mark.parametrize("estimator", ["logdet", "lobpcg"])
def test_jacobian_bounds_of_an_ill_conditioned_generator_are_exact(estimator):
    """A linear generator x = Az into 64 dimensions whose singular values fall from 1 to 1e-4 (a condition number
    like an image generator's) and E(x) = ½‖A⁺x‖²: every log-weight is ℓ = ½ d log 2π + Σ log s_i, so both bounds
    of the (manifold) NLL have known answers. A float32 JᵀJ squares the condition number past float32's precision
    and is several nats off here; the singular values in float64 are not. At lobpcg the lower bound is d·log s_min
    at the exact s_min, and the LOBPCG estimate, a Ritz value, is never below it."""
    d, D = 8, 64
    g = torch.Generator().manual_seed(0)
    U = torch.linalg.qr(torch.randn(D, d, generator=g, dtype=torch.float64))[0]
    V = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))[0]
    A = (U * torch.logspace(0, -4, d, dtype=torch.float64)) @ V.T
    m = make("bib", data="digits", z_dim=d, estimator=estimator, bound_samples=500)
    G = nn.Linear(d, D, bias=False)
    G.weight.data.copy_(A.float())
    use_networks(m, G, PseudoInverseQuadratic(G.weight.data))
    ds = SimpleNamespace(test=torch.randn(300, d, generator=g) @ G.weight.data.T)  # test points on the surface
    out = m.evaluate_extra(ds)
    s = torch.linalg.svdvals(G.weight.data.double())
    e_data = float(m.energy(ds.test).double().mean())
    known = e_data + 0.5 * d * math.log(2 * math.pi) + float(s.log().sum())
    # tolerance: E(Az) in float32 recovers z through A⁺ with an error ~ 1e-7 × 1e4 per coordinate, ≲ 0.01 nats
    assert out["manifold_nll_upper_chi2"] == pytest.approx(known, abs=0.02)
    assert out["jac_mean_log_s"] == pytest.approx(float(s.log().mean()), abs=1e-3)
    assert out["jac_log10_cond"] == pytest.approx(float(torch.log10(s[0] / s[-1])), abs=1e-3)  # 4, by construction
    if estimator == "logdet":
        assert out["manifold_nll_lower"] == pytest.approx(known, abs=0.02)
    else:
        at_smin = e_data + 0.5 * d * math.log(2 * math.pi) + d * math.log(float(s[-1]))
        assert out["manifold_nll_lower"] == pytest.approx(at_smin, abs=0.02)
        assert at_smin < known - 10  # d·log s_min is far below Σ log s_i for this spread of singular values
        assert out["lobpcg_excess"] >= -1e-3


def test_mi_bounds_are_exact_with_the_exact_posterior_and_energy():
    # q(z | x) = p(z | x) = N(Σ Aᵀx/σ², Σ), Σ = (I + AᵀA/σ²)⁻¹ for x = Az + σε; a diagonal AᵀA keeps Σ diagonal
    # (the Gaussian encoder's covariance is diagonal)
    Ad = torch.tensor([[1.2, 0.0], [0.0, 0.5]])
    sigma = 0.3
    m = make("bib_mi_gp", sigma=sigma)
    use_networks(m, nn.Linear(2, 2, bias=False), Quadratic(Ad @ Ad.T + sigma**2 * torch.eye(2)))
    m.G.weight.data.copy_(Ad)
    S = torch.linalg.inv(torch.eye(2) + Ad.T @ Ad / sigma**2)
    m.lower.encoder = lambda x: (x @ (S @ Ad.T / sigma**2).T, torch.log(torch.diagonal(S)).expand(x.shape[0], 2))
    ds, nll = gaussian_case(Ad @ Ad.T + sigma**2 * torch.eye(2))
    out = m.evaluate_extra(ds)
    assert out["nll_lower"] == pytest.approx(nll, abs=1e-4) and out["nll_lower_se"] < 1e-5
    assert out["nll_upper_chi2"] == pytest.approx(nll, abs=1e-4)
    # a wider encoder loosens the lower bound and keeps the upper one above the NLL
    m.lower.encoder = lambda x: (x @ (S @ Ad.T / sigma**2).T, torch.log(4 * torch.diagonal(S)).expand(x.shape[0], 2))
    out = m.evaluate_extra(ds)
    assert out["nll_lower"] < nll - 0.1 and out["nll_upper_chi2"] > nll


class ExactTimeEnergy(nn.Module):
    """E(x, t) = −log p_t(x) for data N(0, s² I) under the VP-SDE: p_t = N(0, (α_t² s² + σ_t²) I)."""

    def __init__(self, s):
        super().__init__()
        self.s = s

    def forward(self, x, t):
        a, sg = alpha_sigma(t.to(x.dtype))
        var = a**2 * self.s**2 + sg**2
        return 0.5 * (x**2).sum(1) / var + math.log(2 * math.pi) + torch.log(var)


def test_diffusion_upper_bound_is_tight_for_consistent_exact_energies():
    s = 0.7
    m = make("bib_jac_diff", estimator="logdet", eval_n_t=32, bound_samples=4000)
    use_networks(m, nn.Linear(2, 2, bias=False), ExactTimeEnergy(s))
    m.G.weight.data.copy_(s * torch.eye(2))
    ds = SimpleNamespace(test=torch.randn(4000, 2, generator=torch.Generator().manual_seed(6)) * s)
    out = m.evaluate_extra(ds)
    # E(·, t_min) is normalised, so the exact NLL is its test mean; the bound exceeds it by KL(p_1 ‖ N(0, I)) ≈ 0
    nll = float(m.energy(ds.test).mean())
    assert abs(out["nll_upper_diffusion"] - nll) < 4 * out["nll_upper_diffusion_se"] + 1e-3
    assert out["nll_upper_diffusion_se"] < 0.05
    # the generator here is N(0, s²) but the EBM is the t_min-smoothed density: the Jacobian lower bound is below
    assert out["nll_lower"] <= nll + 4 * out["nll_lower_se"]


# --- the sandwich after training, against the exact NLL from quadrature -------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in PAIRINGS if n != "bib_onesided"])
def test_sandwich_holds_after_training(name):
    """Each pairing's lower ≤ exact NLL ≤ upper (diffusion bound for (iv), χ² bound otherwise) within 3 s.e.
    The one-sided baseline has no upper bound of its own (and its energy ended non-normalisable here)."""
    m = make(name, data="aniso3", lr_g=1e-3, lr_e=1e-3)
    ds = get_dataset("aniso3")
    g = torch.Generator().manual_seed(0)
    for s in range(600):
        m.train_step(ds.train[torch.randint(0, len(ds.train), (200,), generator=g)], s + 1)
    m.train(False)
    dens = density_metrics(m.energy, ds)
    assert dens["density_status"] == "ok", dens
    out = m.evaluate_extra(ds)
    m.train(True)
    nll = dens["nll"]
    assert out["nll_lower"] - 3 * out["nll_lower_se"] <= nll, (out, nll)
    assert nll <= out["nll_upper"] + 3 * out["nll_upper_se"], (out, nll)


def test_each_pairing_is_the_composition_of_two_bound_objects():
    from ebmlab.methods.bib import LOWER_BOUNDS, UPPER_BOUNDS, BiB, LowerBound

    for name, cls in BIB_METHODS.items():
        m = make(name)
        assert type(m.lower) is LOWER_BOUNDS[m.config.lower] and type(m.upper) is UPPER_BOUNDS[m.config.upper]
        assert set(m.networks) == {"generator", "energy", *m.lower.networks}
        assert issubclass(cls, BiB)

    class ConstantEntropy(LowerBound):  # a new bound is a new object: Ĥ = H(z) + c, no Jacobian
        key = "constant"

        def training_term(self, z, generator):
            return torch.tensor(1.25), self.G(z), {}

    m = make("bib")
    m.lower = ConstantEntropy(m.G, m.spec, m.config, m.device)
    metrics = m.train_step(batch(), 1)
    assert float(metrics["entropy"]) == 1.25
    assert float(metrics["loss_g"]) == pytest.approx(float(metrics["energy_gen"]) - 1.25, abs=1e-6)


@pytest.mark.parametrize("name", ["bib", "bib_mi_diff"])
def test_data_gradient_penalty_adds_exactly_its_weighted_term(name):
    """data_gp_weight = w adds w·mean‖∇_x E(x_data)‖² to the energy loss (the same noise draws with and without):
    the difference of the two losses is w times the logged penalty, and the penalty is the hand-computed one on
    an energy whose gradient is known (E(x) = ½‖x‖²·c → ‖∇E‖² = c²‖x‖²)."""
    x = batch()
    base, over = make(name), make(name, data_gp_weight=0.5)
    over.load_state_dict(base.state_dict())
    l0, m0 = base.energy_loss(x)
    l1, m1 = over.energy_loss(x)
    assert "data_gp" not in m0
    assert (l1 - l0).item() == pytest.approx(0.5 * m1["data_gp"].item(), rel=1e-5, abs=1e-7)
    from ebmlab.bounds.score import zero_centred_gp

    xd = x.double()
    assert zero_centred_gp(lambda v: 1.5 * 0.5 * v.square().sum(1), xd).item() == pytest.approx(
        float((1.5**2 * xd.square().sum(1)).mean()), rel=1e-12)


def test_data_gradient_penalty_is_refused_by_the_one_sided_pairing():
    from ebmlab.errors import EbmlabError

    with pytest.raises(EbmlabError, match="one-sided pairing has its own"):
        make("bib_onesided", data_gp_weight=1.0)


# --- share_jacobian: one LOBPCG estimate per step for both players (EBM-BB's image trainer) --------------------
SHARED = {"estimator": "lobpcg", "score_volume": "lobpcg", "share_jacobian": True, "z_dim": 8, "width": 8}


def test_the_shared_estimate_is_the_two_separate_ones():
    """Same latents, same random start: the shared entropy equals ``entropy`` (value and gradient to G's
    parameters) and the shared score equals ``latent_score(volume="lobpcg")``, in float64 (the same operations in
    another order: agreement to ~1e-12 relative)."""
    m = make("bib", data="digits", **SHARED)
    G = m.G.double().eval()
    z = torch.randn(16, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    start = torch.Generator().manual_seed(7)
    h, score = m.lower.entropy_and_score(z, torch.Generator().manual_seed(7))
    (g_shared,) = [torch.autograd.grad(h.entropy, list(G.parameters()))]
    h2 = m.lower.entropy(z, start, sync_free=True)
    g_sep = torch.autograd.grad(h2.entropy, list(G.parameters()))
    score2 = latent_score(G, z, volume="lobpcg", n_iter=m.config.lobpcg_iters,
                          generator=torch.Generator().manual_seed(7))
    assert bool(h.valid.all()) and torch.isfinite(h.entropy)
    torch.testing.assert_close(h.entropy, h2.entropy, rtol=1e-12, atol=0)
    torch.testing.assert_close(score, score2, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(score, z)  # a conv generator's volume varies with z: the score is not z alone
    for a, b in zip(g_shared, g_sep):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)


def clear(m):
    for mod in m.networks.values():
        for p in mod.parameters():
            p.grad = None


def test_a_shared_step_differentiates_each_player_on_its_own_loss():
    m = make("bib", data="digits", **SHARED)
    x = batch(16, data="digits")
    before = {k: [p.detach().clone() for p in mod.parameters()] for k, mod in m.networks.items()}
    out = m.train_step(x, 1)
    assert all(math.isfinite(float(v)) for v in out.values()), out
    for k, mod in m.networks.items():  # each player moved
        assert any(not torch.equal(a, p) for a, p in zip(before[k], mod.parameters())), k
    # the energy loss alone reaches no generator parameter, the generator loss with the shared entropy no energy one
    clear(m)
    h, score = m.lower.entropy_and_score(m.noise(16, 8), m.rng)
    m.energy_loss(x, z=m.noise(16, 8), score=score)[0].backward()
    assert all(g is None for g in grads(m.G)) and any(g is not None for g in grads(m.E))
    clear(m)
    m.generator_loss(16, shared=h)[0].backward()
    assert all(g is None for g in grads(m.E)) and any(g is not None and g.abs().sum() > 0 for g in grads(m.G))


@pytest.mark.parametrize("over", [{"estimator": "smin"}, {"score_volume": "logdet"}, {"lower": "mi"},
                                  {"upper": "diffusion"}])
def test_share_jacobian_needs_lobpcg_on_both_sides(over):
    from ebmlab.errors import EbmlabError
    with pytest.raises(EbmlabError, match="share_jacobian=true .* needs lower=jacobian, upper=gp"):
        make("bib", data="digits", **{**SHARED, **over})


def test_entropy_batch_puts_the_jacobian_term_at_the_first_latents_and_the_energy_term_at_all():
    m = make("bib", estimator="smin", entropy_batch=5)
    z = torch.randn(16, 2, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        m.G.eval()
        h, x, _ = m.lower.training_term(z, m.rng)
        assert x.shape[0] == 16 and torch.equal(x, m.G(z))
        assert h.item() == pytest.approx(smin_entropy_exact(m.G, z[:5]).entropy.item(), rel=1e-6)
        assert abs(h.item() - smin_entropy_exact(m.G, z).entropy.item()) > 1e-3  # the subset is what it used


@pytest.mark.parametrize("over", [{"lower": "mi"}, {**SHARED}])
def test_entropy_batch_needs_the_unshared_jacobian_bound(over):
    from ebmlab.errors import EbmlabError
    with pytest.raises(EbmlabError, match="entropy_batch subsamples bound"):
        make("bib", data="digits", **{**over, "entropy_batch": 4})


def test_a_generator_gone_non_finite_gives_non_finite_metrics_not_a_solver_error():
    """Exact s_min on a d > 2 latent goes through svdvals, which raises on a NaN; the step must instead return the
    non-finite metrics that the trainer's divergence check reports (seen: BiB at z 128, exact s_min, step ~300)."""
    m = make("bib", data="digits", z_dim=8, estimator="smin", entropy_batch=4)
    with torch.no_grad():
        next(m.G.parameters()).fill_(math.nan)
    metrics = m.train_step(batch(16, "digits"), 0)
    assert math.isnan(float(metrics["entropy"]))
