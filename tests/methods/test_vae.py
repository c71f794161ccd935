"""Known answers for the VAE method and its IWAE evaluation (float64).

Reference model: linear-Gaussian, p(z) = N(0, I_2), p(x|z) = N(Wz + c, s² I_2) with W = U diag(λ), U a rotation,
so log p(x) = log N(x; c, WWᵀ + s² I) and the exact posterior N(Σ Wᵀ(x − c)/s², Σ), Σ = diag(1/(1 + λ²/s²)), is
diagonal: a linear encoder represents it exactly, and then log p(x, z) − log q(z|x) = log p(x) for every z, so the
evaluation's ELBO (a mean of such log-weights) and every L_k equal log p(x) for every draw, not only in expectation.
(The analytic-KL ELBO used for training equals log p(x) only in expectation over z.)
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Bernoulli, MultivariateNormal

from ebmlab.data.toy import ToyDataset
from ebmlab.methods.vae import VAE, VAEConfig

DT = torch.float64
THETA, LAM, S2 = 0.6, torch.tensor([1.5, 0.4], dtype=DT), 0.05
C = torch.tensor([0.3, -0.7], dtype=DT)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rotation(a: float) -> torch.Tensor:
    return torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=DT)


W = rotation(THETA) @ torch.diag(LAM)
MARGINAL = MultivariateNormal(C, W @ W.T + S2 * torch.eye(2, dtype=DT))
POST_VAR = 1.0 / (1.0 + LAM**2 / S2)


def linear_gaussian_dataset(n_test: int = 500) -> ToyDataset:
    chol = torch.linalg.cholesky(MARGINAL.covariance_matrix)

    def sample(n, generator):
        return C + torch.randn(n, 2, generator=generator, dtype=DT) @ chol.T

    return ToyDataset("lingauss", "linear-Gaussian marginal", (-4.0, 4.0), sample, MARGINAL.log_prob,
                      closed_form_entropy=float(MARGINAL.entropy()), n_train=10, n_test=n_test)


def linear_vae(*, logvar_shift: float = 0.0, mean_scale: float = 1.0, **over) -> VAE:
    """The VAE method with linear maps set to the model above and (shift 0, scale 1) its exact posterior."""
    cfg = VAEConfig(z_dim=2, hidden=(), decoder_var=S2, learn_decoder_var=False, **over)
    m = VAE(cfg, data_dim=2, device=torch.device("cpu"), generator=gen(0))
    m.vae.double()
    a = mean_scale * torch.diag(POST_VAR) @ W.T / S2  # posterior mean = A (x − c)
    with torch.no_grad():
        m.vae.enc_mu.weight.copy_(a)
        m.vae.enc_mu.bias.copy_(-a @ C)
        m.vae.enc_logvar.weight.zero_()
        m.vae.enc_logvar.bias.copy_(POST_VAR.log() + logvar_shift)
        m.vae.decoder_net[0].weight.copy_(W)
        m.vae.decoder_net[0].bias.copy_(C)
    return m


def test_linear_gaussian_with_exact_posterior_elbo_equals_iwae_equals_log_p():
    m = linear_vae(iwae_ks=(1, 10, 100), iwae_points=300)
    ds = linear_gaussian_dataset()
    x = ds.test[:300].to(DT)
    exact = MARGINAL.log_prob(x)
    bounds = m.log_likelihood_bounds(x, generator=gen(1))
    assert set(bounds) == {"elbo", "iwae_1", "iwae_10", "iwae_100"}
    for name, b in bounds.items():
        assert b.dtype == DT
        torch.testing.assert_close(b, exact, rtol=0, atol=1e-4, msg=name)
    # The whole evaluation path: means against the exact mean log-likelihood, and the KL bound ≈ 0.
    rep = m.evaluate_extra(ds)
    for key in ("elbo", "iwae_1", "iwae_10", "iwae_100"):
        assert rep[key] == pytest.approx(float(exact.mean()), abs=1e-4), key
    assert rep["nll_iwae"] == pytest.approx(-float(exact.mean()), abs=1e-4)
    assert abs(rep["kl_iwae"]) < 1e-4


def test_iwae_evaluation_memory_does_not_grow_with_the_test_points():
    """1000 points × K = 100 in one decoder call held 10⁵ rows (14 GB on 28×28 images, killed by the OOM killer);
    the points now go in blocks, so no call (IWAE or Monte Carlo ELBO) exceeds chunk_size · POINTS_PER_CALL rows, and the bounds are
    still exact (log p(x) for every point and draw, with the exact posterior)."""
    from ebmlab.methods.estimators import POINTS_PER_CALL

    m = linear_vae(iwae_ks=(100,), iwae_points=1000, iwae_chunk=50, elbo_samples=10)
    rows: list[int] = []
    decode = m.vae.decode

    def spy(z):
        rows.append(z.shape[0])
        return decode(z)

    m.vae.decode = spy  # the deep copy the evaluation makes keeps the instance attribute
    x = linear_gaussian_dataset(n_test=1000).test.to(DT)
    bounds = m.log_likelihood_bounds(x, generator=gen(3))
    assert max(rows) <= 50 * POINTS_PER_CALL <= 500
    torch.testing.assert_close(bounds["iwae_100"], MARGINAL.log_prob(x), rtol=0, atol=1e-4)
    torch.testing.assert_close(bounds["elbo"], MARGINAL.log_prob(x), rtol=0, atol=1e-4)


def test_bounds_are_ordered_and_below_log_p_with_a_wrong_posterior():
    # Posterior variance too large by e^1.5 and mean shrunk by 40 %: a strict gap, closed by k (Burda et al. Thm 1).
    # Each L_k has its own samples, so the k → 2k gaps (≈ 0.12 nats at k = 32) are checked on 10⁴ points, where
    # their standard errors are ≈ 0.01.
    ks = (1, 2, 4, 8, 16, 32, 64)
    m = linear_vae(logvar_shift=1.5, mean_scale=0.6, iwae_ks=ks)
    x = linear_gaussian_dataset(10_000).test.to(DT)
    exact = MARGINAL.log_prob(x)
    b = m.log_likelihood_bounds(x, generator=gen(2))
    n = len(x)

    def mean_se(t):
        return float(t.mean()), float(t.std() / math.sqrt(n))

    # The evaluation ELBO (mean of 100 log-weights) and L_1 (one log-weight) estimate the same number.
    d, se = mean_se(b["iwae_1"] - b["elbo"])
    assert abs(d) < 4 * se
    gap_elbo, _ = mean_se(exact - b["elbo"])
    assert gap_elbo > 0.1  # the wrong posterior costs something, so the orderings below are not vacuous
    for k, k2 in zip(ks, ks[1:]):
        d, se = mean_se(b[f"iwae_{k2}"] - b[f"iwae_{k}"])
        assert d > 4 * se, (k, k2, d, se)
    d, se = mean_se(exact - b[f"iwae_{ks[-1]}"])
    assert d > -4 * se and d < gap_elbo / 4  # L_64 is below log p (up to noise) and has closed most of the gap


def test_nonlinear_vae_bounds_increase_with_k_on_average():
    m = VAE(VAEConfig(z_dim=2, hidden=(16,), decoder_var=0.1, iwae_ks=(1, 10, 100)), data_dim=2,
            device=torch.device("cpu"), generator=gen(3))
    x = linear_gaussian_dataset(1000).test.to(DT)
    b = m.log_likelihood_bounds(x, generator=gen(4))
    n = len(x)
    for lo, hi in (("elbo", "iwae_10"), ("iwae_1", "iwae_10"), ("iwae_10", "iwae_100")):
        diff = b[hi] - b[lo]
        assert float(diff.mean()) > 4 * float(diff.std()) / math.sqrt(n), (lo, hi)


def test_bernoulli_decoder_known_answer_and_samples():
    # Encoder = prior (q = p(z), KL 0) and logits independent of z: log p(x) = Σ_j log Bernoulli(x_j; σ(b_j)).
    cfg = VAEConfig(z_dim=3, hidden=(), decoder="bernoulli", iwae_ks=(1, 7))
    m = VAE(cfg, data_dim=5, device=torch.device("cpu"), generator=gen(5))
    m.vae.double()
    logits = torch.tensor([-2.0, -0.5, 0.0, 1.0, 3.0], dtype=DT)
    with torch.no_grad():
        for lin in (m.vae.enc_mu, m.vae.enc_logvar):
            lin.weight.zero_()
            lin.bias.zero_()
        m.vae.decoder_net[0].weight.zero_()
        m.vae.decoder_net[0].bias.copy_(logits)
    x = (torch.rand(50, 5, generator=gen(6), dtype=DT) < 0.5).to(DT)
    exact = Bernoulli(logits=logits).log_prob(x).sum(1)
    for name, b in m.log_likelihood_bounds(x, generator=gen(7)).items():
        torch.testing.assert_close(b, exact, rtol=0, atol=1e-10, msg=name)
    mean = m.sample(4, generator=gen(8))
    torch.testing.assert_close(mean, torch.sigmoid(logits).expand(4, 5), rtol=0, atol=1e-12)
    m.estimator.sample_mode = "sample"
    draws = m.sample(20000, generator=gen(9))
    assert set(draws.unique().tolist()) == {0.0, 1.0}
    torch.testing.assert_close(draws.mean(0), torch.sigmoid(logits), rtol=0, atol=0.02)


@pytest.mark.parametrize("mode, extra_var", [("mean", 0.0), ("sample", S2)])
def test_gaussian_samples_have_the_model_covariance(mode, extra_var):
    # z ~ N(0, I): decoder means have covariance WWᵀ; draws from p(x|z) add s² I (the model's marginal).
    m = linear_vae(sample_mode=mode)
    x = m.sample(200_000, generator=gen(10))
    torch.testing.assert_close(x.mean(0), C, rtol=0, atol=0.01)
    cov = torch.cov(x.T)
    torch.testing.assert_close(cov, W @ W.T + extra_var * torch.eye(2, dtype=DT), rtol=0, atol=0.02)


def test_train_step_reports_per_example_sums_and_moves_toward_the_data():
    # The reported ELBO is log_lik − kl per example (sums over dimensions), and 200 steps on the linear-Gaussian
    # data raise the exact-posterior-free ELBO of a randomly initialised linear VAE by several nats.
    m = VAE(VAEConfig(z_dim=2, hidden=(), lr=3e-2, learn_decoder_var=True, decoder_var=1.0), data_dim=2,
            device=torch.device("cpu"), generator=gen(11))
    data = linear_gaussian_dataset().sample(4000, generator=gen(12)).float()
    first = {k: float(v) for k, v in m.train_step(data[:256], 1).items()}
    assert first["elbo"] == pytest.approx(first["log_lik"] - first["kl"], rel=1e-6)
    for s in range(2, 201):
        idx = torch.randint(0, len(data), (256,), generator=gen(100 + s))
        last = {k: float(v) for k, v in m.train_step(data[idx], s).items()}
    # The maximum of E_data ELBO over linear-Gaussian VAEs is −H(data) = the marginal's mean log-density.
    assert last["elbo"] > first["elbo"] + 1.0
    assert last["elbo"] < -float(MARGINAL.entropy()) + 0.3


@pytest.mark.parametrize("decoder", ["gaussian", "discretised"])
def test_likelihoods_of_8_bit_images_are_likelihoods(decoder, tmp_path):
    """On 8-bit images the reported NLL is one of the discrete data: a discretised decoder gives P(x) directly, a
    Gaussian decoder is trained and evaluated on dequantised data with the D·log w shift. Both are ≥ 0 (for the
    discretised decoder, surely: every bound is a log of a probability; for the dequantised one, in expectation —
    here by a wide margin), come with bits per dimension and say how they were computed."""
    import math

    import ebmlab

    res = ebmlab.train("vae", "digits", out=tmp_path / decoder, progress=False,
                       overrides=dict(steps=5, decoder=decoder, iwae_ks=(1, 10), iwae_points=20, elbo_samples=5,
                                      eval_samples=60, plots=False, loggers=""))
    m = res.summary["metrics"]
    assert m["nll_iwae"] > 0 and m["elbo"] < 0 and m["iwae_10"] < 0
    assert m["bpd_iwae"] == pytest.approx(m["nll_iwae"] / (64 * math.log(2)))
    assert "8-bit" in m["likelihood_note"]


def test_discretised_decoder_refuses_continuous_data(tmp_path):
    from ebmlab.errors import EbmlabError

    import ebmlab

    with pytest.raises(EbmlabError, match="quantised"):
        ebmlab.train("vae", "ring8", out=tmp_path / "x", progress=False, overrides=dict(decoder="discretised"))
    assert not (tmp_path / "x").exists()


def test_iwae_objective_with_the_exact_posterior_is_log_p_for_every_draw():
    # With q the exact posterior every log-weight is log p(x), so the training loss of objective=iwae is −mean log p
    # of the batch whatever the draws (float64 module: to rounding).
    m = linear_vae(objective="iwae", train_k=5)
    x = linear_gaussian_dataset().test[:64].to(DT)
    out = m.train_step(x, 1)
    assert float(out["loss"]) == pytest.approx(-float(MARGINAL.log_prob(x).mean()), abs=1e-7)
    assert float(out["iwae_5"]) == pytest.approx(-float(out["loss"]), abs=1e-12)


def test_iwae_objective_is_tighter_than_the_elbo_with_a_wrong_posterior():
    # Same wrong posterior as above: the training loss of iwae (k = 20) is below the ELBO's (train_k = 20 draws,
    # averaged) by more than 4 standard errors over 30 batches, and above −log p (a bound) — Burda et al. Thm 1 on
    # the loss the optimiser sees. A zero learning rate keeps the model fixed across the batches.
    data = linear_gaussian_dataset(64 * 30).test.to(DT)
    losses = {}
    for objective in ("iwae", "elbo"):
        m = linear_vae(logvar_shift=1.5, mean_scale=0.6, objective=objective, train_k=20, lr=0.0)
        losses[objective] = torch.tensor([float(m.train_step(data[i:i + 64], i)["loss"])
                                          for i in range(0, len(data), 64)], dtype=DT)
    diff = losses["elbo"] - losses["iwae"]
    assert float(diff.mean()) > 4 * float(diff.std()) / math.sqrt(len(diff))
    assert float(losses["iwae"].mean()) > -float(MARGINAL.log_prob(data).mean()) - 0.05


def test_iwae_training_moves_toward_the_data_and_k_1_is_refused():
    m = VAE(VAEConfig(z_dim=2, hidden=(), lr=3e-2, decoder_var=1.0, objective="iwae", train_k=5), data_dim=2,
            device=torch.device("cpu"), generator=gen(11))
    data = linear_gaussian_dataset().sample(4000, generator=gen(12)).float()
    first = float(m.train_step(data[:256], 1)["iwae_5"])
    for s in range(2, 201):
        idx = torch.randint(0, len(data), (256,), generator=gen(100 + s))
        last = float(m.train_step(data[idx], s)["iwae_5"])
    # E L_5 ≤ log p ≤ −H(data) for every model; training climbs from a nat below to within 0.3 nats of it
    h = float(MARGINAL.entropy())
    assert first + 0.5 < last and -h - 0.3 < last < -h + 0.3
    from ebmlab.errors import EbmlabError
    with pytest.raises(EbmlabError, match="train_k ≥ 2"):
        VAE(VAEConfig(objective="iwae", train_k=1), data_dim=2, device=torch.device("cpu"), generator=gen(0))


def test_wake_sleep_training_climbs_to_the_data_and_takes_one_draw():
    """Wake-sleep (AEVB's baseline) on the linear-Gaussian data: the decoder learns the data and the sleep phase
    fits q to its posterior, so the ELBO (which wake-sleep never differentiates) climbs from nats below to within
    0.3 nats of −H(data), as the ELBO-trained VAE's does (test above); from 12 initialisations: 1.1–5.5 nats below
    at the start, within 0.015 at the end."""
    torch.manual_seed(0)  # the networks' initialisation
    m = VAE(VAEConfig(z_dim=2, hidden=(), lr=3e-2, decoder_var=1.0, objective="wake_sleep"), data_dim=2,
            device=torch.device("cpu"), generator=gen(11))
    data = linear_gaussian_dataset().sample(4000, generator=gen(12)).float()

    def elbo_now():
        with torch.no_grad():
            return float(m.estimator.elbo(m.vae, data, generator=gen(5)).elbo.mean())

    first = elbo_now()
    for s in range(1, 301):
        idx = torch.randint(0, len(data), (256,), generator=gen(100 + s))
        out = m.train_step(data[idx], s)
    assert set(out) == {"loss", "wake", "sleep"} and float(out["loss"]) == pytest.approx(
        -float(out["wake"]) - float(out["sleep"]), rel=1e-6)
    h = float(MARGINAL.entropy())
    assert first < -h - 1 and -h - 0.3 < elbo_now() < -h + 0.3
    from ebmlab.errors import EbmlabError
    with pytest.raises(EbmlabError, match="one z per example"):
        VAE(VAEConfig(objective="wake_sleep", train_k=2), data_dim=2, device=torch.device("cpu"), generator=gen(0))


def test_evaluation_elbo_encodes_each_point_once_with_the_stacked_copies_numbers():
    """The evaluation's Monte Carlo ELBO averages L_1 over s draws per point. It encodes each point once and
    repeats (μ, log σ²) for the s copies: the same noise, so the same numbers (float64, to 1e-12) as encoding the
    s stacked copies, which it did before, at 1/s of the encoder rows. A non-linear VAE with a posterior that is
    not exact, so the s log-weights of a point differ and a wrong pairing of noise and copy would show."""
    from ebmlab.bounds.elbo import iwae_bound
    from ebmlab.methods.estimators import POINTS_PER_CALL

    cfg = VAEConfig(z_dim=3, hidden=(8,), decoder_var=0.3, elbo_samples=7, iwae_ks=(1,), iwae_chunk=3)
    m = VAE(cfg, data_dim=2, device=torch.device("cpu"), generator=gen(5))
    x = linear_gaussian_dataset(n_test=25).test.to(DT)  # blocks of 3·POINTS_PER_CALL // 7 = 4 points: 7 blocks
    est = m.estimator
    model = m.vae.double().eval()
    rows: list[int] = []
    encode = model.encode

    def spy(xx):
        rows.append(xx.shape[0])
        return encode(xx)

    model.encode = spy
    got = est._mc_elbo(model, x, gen(11))
    assert sum(rows) == x.shape[0] and len(rows) == 7  # one encoder row per point, not s; one call per block
    model.encode = encode
    s = cfg.elbo_samples
    per_chunk = max(1, (est.chunk_size * POINTS_PER_CALL) // s)
    g, ref = gen(11), []
    for i in range(0, x.shape[0], per_chunk):
        xi = x[i:i + per_chunk]
        lw = iwae_bound(xi.repeat(s, 1), model.encode, model.decode, 1, generator=g, log_lik=est.log_lik, dtype=DT)
        ref.append(lw.reshape(s, -1).mean(0))
    want = torch.cat(ref)
    assert got.shape == (25,)
    assert torch.allclose(got, want, rtol=0, atol=1e-12)
    # the per-point means really average different draws (not one draw repeated s times)
    g2 = gen(11)
    one = iwae_bound(x.repeat(s, 1), model.encode, model.decode, 1, generator=g2, log_lik=est.log_lik, dtype=DT)
    assert one.reshape(s, -1).std(0).min() > 1e-3


def test_active_units_count_the_posterior_means_that_vary(monkeypatch):
    """Burda et al. §5.2: unit u is active when Var_x(E_q[z_u | x]) > 10⁻². Posterior means chosen by hand over
    1000 examples: one unit with variance ≈ 1, one with 10⁻⁶, one constant, one at 0.04 (2 active), in float64."""
    from ebmlab.config import resolve_config
    from ebmlab.trainer import build_method

    m = build_method(resolve_config("vae", "ring8", overrides={"z_dim": 4}), torch.device("cpu"))
    x = torch.randn(1000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def features(xb):
        return torch.stack([xb[:, 0], 1e-3 * xb[:, 1], torch.full_like(xb[:, 0], 3.0), 0.2 * xb[:, 1]], 1)

    monkeypatch.setattr(m, "features", features)
    assert m.active_units(x) == 2
    assert m.active_units(x, threshold=1e-7) == 3 and m.active_units(x, threshold=2.0) == 0


def test_a_vae_refuses_a_bernoulli_decoder_on_8_bit_images():
    from ebmlab.data.base import DataSpec
    from ebmlab.errors import EbmlabError

    spec = DataSpec("image", (1, 8, 8), (-1.0, 1.0), 256)
    with pytest.raises(EbmlabError, match="decoder=bernoulli is the likelihood of binary data"):
        VAE(VAEConfig(decoder="bernoulli"), spec=spec, device=torch.device("cpu"), generator=gen(0))
