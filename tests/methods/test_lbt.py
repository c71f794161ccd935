"""Known answers for LBT / LBT-GAN's unrolled look-ahead and real estimator updates (float64, tiny networks).

The generator gradient is checked against central finite differences of the method's own look-ahead loss. LBT's
differentiable Adam detaches the second moment (the released code's tf.stop_gradient), so its autograd gradient is
not the derivative of the unrolled map: it is the derivative of the same unroll with each step's second moment v_k
held at its value at the base point ψ0. The finite differences are therefore taken with v_k pinned (by substituting
``diff_adam_step`` in ``bounds.unroll`` with a version that pins v), exactly as tests/bounds/test_unroll.py does;
the unpinned finite differences (the true derivative) are shown to differ.
"""

from __future__ import annotations

import math

import pytest
import torch

import ebmlab.bounds.unroll as unroll_mod
from ebmlab.bounds.unroll import DiffAdamState, adam_state_from_torch, module_tensors, unroll
from ebmlab.methods.lbt import LBT, LBTGAN, LBTConfig, LBTGANConfig, estimator_update, lookahead_neg_elbo

DT = torch.float64
TINY = dict(z_dim=3, g_hidden=(), est_z_dim=2, est_hidden=(6,), est_decoder_var=0.1, lr_est=1e-2, unroll_steps=2,
            n_est=1, est_batch=12, clip_g=None, iwae_ks=(1, 10), iwae_points=50, elbo_samples=10)
N_GEN = 12


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tiny(cls=LBT, cfg_cls=LBTConfig, seed: int = 0, **over) -> LBT:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        m = cls(cfg_cls(**{**TINY, **over}), data_dim=2, device=torch.device("cpu"), generator=gen(seed + 1))
    for net in m.networks.values():
        net.double()
    return m


def data(n: int = 16) -> torch.Tensor:
    return torch.randn(n, 2, generator=gen(50), dtype=DT) * 0.5 + torch.tensor([1.0, -0.5], dtype=DT)


def prepared(**over) -> LBT:
    """A tiny LBT after one real estimator update, so the look-ahead starts from non-zero moments and step K."""
    m = tiny(**over)
    estimator_update(m, m.config, N_GEN)
    assert adam_state_from_torch(m.optimizers["estimator"], m.estimator.module).step == m.config.unroll_steps
    return m


def lookahead_value(m: LBT, x: torch.Tensor, rng_state: torch.Tensor) -> torch.Tensor:
    m.rng.set_state(rng_state)  # the same z for every unroll step and the same ε for every ELBO
    return lookahead_neg_elbo(m, m.config, x, N_GEN)


class PinnedSecondMoment:
    """Stand-in for ``diff_adam_step``: record each step's v_k, or replay with v_k pinned to the recorded values
    (choosing the incoming v so that β2·v_in + (1 − β2)·g² equals the pinned value)."""

    def __init__(self, original):
        self.original, self.recorded, self.mode, self.k = original, [], "record", 0

    def __call__(self, params, grads, state, **kw):
        if self.mode == "record":
            new_params, new_state = self.original(params, grads, state, **kw)
            self.recorded.append(new_state.v)
            return new_params, new_state
        beta2 = kw.get("betas", (0.5, 0.999))[1]
        pinned = self.recorded[self.k]
        self.k += 1
        v_in = {n: (pinned[n] - (1 - beta2) * grads[n].detach().square()) / beta2 for n in params}
        return self.original(params, grads, DiffAdamState(state.step, state.m, v_in), **kw)


def central_differences(f, module: torch.nn.Module, h: float = 1e-6) -> list[torch.Tensor]:
    out = []
    for p in module.parameters():
        fd = torch.zeros_like(p)
        for i in range(p.numel()):
            with torch.no_grad():
                p.view(-1)[i] += h
            up = f()
            with torch.no_grad():
                p.view(-1)[i] -= 2 * h
            down = f()
            with torch.no_grad():
                p.view(-1)[i] += h
            fd.view(-1)[i] = (up - down) / (2 * h)
        out.append(fd)
    return out


# Central differences with h = 1e-6 in float64: truncation ~1e-12, rounding ~1e-16·|L|/h ~ 1e-9 (see test_unroll.py).
FD_RTOL, FD_ATOL = 1e-6, 1e-8


@pytest.mark.parametrize("flat", [True, False])
def test_generator_gradient_through_the_k_step_unroll_matches_finite_differences(monkeypatch, flat):
    m, x = prepared(flat_unroll=flat), data()
    rng = m.rng.get_state()
    loss = lookahead_value(m, x, rng)
    grads = torch.autograd.grad(loss, list(m.G.parameters()))
    assert max(g.abs().max().item() for g in grads) > 1e-3  # reaches ψ only via the inner gradients: not trivially 0

    # LBT's gradient = finite differences of the same unroll with the second moments pinned at ψ0.
    pin = PinnedSecondMoment(unroll_mod.diff_adam_step)
    monkeypatch.setattr(unroll_mod, "diff_adam_step", pin)
    recorded_loss = lookahead_value(m, x, rng)
    assert len(pin.recorded) == m.config.unroll_steps and recorded_loss.item() == loss.item()
    pin.mode = "pinned"

    def pinned_value() -> float:
        pin.k = 0
        return lookahead_value(m, x, rng).item()

    assert pinned_value() == pytest.approx(loss.item(), rel=1e-14)
    fds = central_differences(pinned_value, m.G)
    for g, fd in zip(grads, fds):
        torch.testing.assert_close(g, fd, rtol=FD_RTOL, atol=FD_ATOL)

    # With v free the finite differences give the true derivative of the unrolled map, which LBT's is not.
    monkeypatch.setattr(unroll_mod, "diff_adam_step", pin.original)
    true = central_differences(lambda: lookahead_value(m, x, rng).item(), m.G)
    assert max((a - b).abs().max().item() for a, b in zip(grads, true)) > 1e-4


def test_train_step_applies_exactly_the_lookahead_gradient():
    # n_est = 0 and no clipping: the generator's .grad after a train step is the look-ahead gradient, and the step is
    # one torch Adam step with it.
    m, x = prepared(n_est=0), data()
    rng = m.rng.get_state()
    expected = torch.autograd.grad(lookahead_value(m, x, rng), list(m.G.parameters()))
    m.rng.set_state(rng)
    m.train_step(x, 1)
    for p, g in zip(m.G.parameters(), expected):
        torch.testing.assert_close(p.grad, g, rtol=1e-12, atol=1e-14)


def test_lookahead_leaves_the_estimator_and_its_optimizer_untouched():
    m, x = prepared(), data()
    est, opt = m.estimator.module, m.optimizers["estimator"]
    params = {n: p.detach().clone() for n, p in est.named_parameters()}
    state = {n: {k: v.clone() for k, v in opt.state[p].items()} for n, p in est.named_parameters()}
    lookahead_neg_elbo(m, m.config, x, N_GEN).backward()
    for n, p in est.named_parameters():
        assert torch.equal(p, params[n]) and p.grad is None, n
        for k, v in opt.state[p].items():
            assert torch.equal(v, state[n][k]), (n, k)
    # A whole training step without real updates moves the generator only.
    m2 = prepared(n_est=0)
    before = {n: p.detach().clone() for n, p in m2.estimator.module.named_parameters()}
    g_before = [p.detach().clone() for p in m2.G.parameters()]
    m2.train_step(x, 1)
    assert all(torch.equal(p, before[n]) for n, p in m2.estimator.module.named_parameters())
    assert any(not torch.equal(p, q) for p, q in zip(m2.G.parameters(), g_before))


@pytest.mark.parametrize("flat", [True, False])
def test_real_update_is_the_k_step_unroll_at_three_times_the_rate(flat):
    # Reproduce the real update by hand with bounds.unroll on the same generator batches and noise; the written-back
    # parameters and Adam state must be that unroll's end point, and the step counter advance by K.
    m = tiny(n_est=1, unroll_steps=3, flat_unroll=flat)
    est, opt, c = m.estimator.module, m.optimizers["estimator"], m.config
    params, buffers = module_tensors(est)
    state = adam_state_from_torch(opt, est)
    rng = m.rng.get_state()
    ref_gen = torch.Generator().manual_seed(0)
    ref_gen.set_state(rng)

    def batch(k):
        with torch.no_grad():
            return m.G(torch.randn(N_GEN, c.z_dim, generator=ref_gen, dtype=DT))

    ref = unroll(est, params, buffers, lambda model, xb: m.estimator.loss(model, xb, generator=ref_gen), batch, 3,
                 lr=3 * c.lr_est, state=state, betas=(c.beta1, c.beta2), eps=c.eps, create_graph=False)
    elbo_gen = estimator_update(m, c, N_GEN)
    assert elbo_gen == pytest.approx(-ref.losses[-1].item(), rel=1e-12)
    for n, p in est.named_parameters():
        torch.testing.assert_close(p.detach(), ref.params[n].detach(), rtol=1e-12, atol=1e-15)
    back = adam_state_from_torch(opt, est)
    assert back.step == 3
    for n in back.m:
        torch.testing.assert_close(back.m[n], ref.state.m[n], rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(back.v[n], ref.state.v[n], rtol=1e-12, atol=1e-18)
    assert torch.equal(m.rng.get_state(), ref_gen.get_state())  # the same noise was consumed


def test_two_real_updates_per_step_advance_adam_by_2k_and_fit_the_generator():
    # lr_g = 0 holds the generator fixed, so the estimator's ELBO on its samples must rise (mean of 5 noisy batches
    # of 12 at the start and after 40 steps).
    m = tiny(n_est=2, unroll_steps=2, lr_g=0.0)
    x = data()
    elbo_gen = [m.train_step(x, 1)["elbo_gen"]]
    assert adam_state_from_torch(m.optimizers["estimator"], m.estimator.module).step == 4
    elbo_gen += [m.train_step(x, s)["elbo_gen"] for s in range(2, 41)]
    assert adam_state_from_torch(m.optimizers["estimator"], m.estimator.module).step == 160
    assert sum(elbo_gen[-5:]) / 5 > sum(elbo_gen[:5]) / 5 + 0.3


def test_lbt_gan_warm_up_trains_the_gan_part_only():
    m = tiny(LBTGAN, LBTGANConfig, warmup_steps=2, lambda_gan=0.1)
    x = data()
    est_before = [p.detach().clone() for p in m.estimator.module.parameters()]
    out1 = {k: float(v) for k, v in m.train_step(x, 1).items()}
    assert "elbo_data_lookahead" not in out1 and "elbo_gen" not in out1
    assert out1["loss_g"] == pytest.approx(0.1 * out1["loss_gan_g"], rel=1e-12)
    assert all(torch.equal(a, b) for a, b in zip(m.estimator.module.parameters(), est_before))
    m.train_step(x, 2)
    out3 = {k: float(v) for k, v in m.train_step(x, 3).items()}  # teaching starts after warmup_steps
    assert out3["loss_g"] == pytest.approx(0.1 * out3["loss_gan_g"] - out3["elbo_data_lookahead"], rel=1e-12)
    assert any(not torch.equal(a, b) for a, b in zip(m.estimator.module.parameters(), est_before))


def test_clipping_bounds_the_generator_step():
    # With clip_g the applied gradient has global norm ≤ clip_g while the reported norm is the unclipped one.
    m = prepared(n_est=0, clip_g=1e-3)
    out = m.train_step(data(), 1)
    applied = math.sqrt(sum(float(p.grad.square().sum()) for p in m.G.parameters()))
    assert out["grad_norm_g"] > 1e-3 and applied == pytest.approx(1e-3, rel=1e-6)


def test_estimator_report_has_both_models_numbers():
    from ebmlab.data import get_dataset

    m = tiny()
    rep = m.evaluate_extra(get_dataset("ring8"))
    assert rep["est_elbo"] <= rep["est_iwae_10"] + 3 * rep["est_nll_iwae_se"]
    assert rep["est_nll_iwae"] == pytest.approx(-rep["est_iwae_10"])
    # KL(p_data ‖ p_est) bound = mean log p_data − mean L_k; the data entropy of ring8 is −4.3 nats.
    ds = get_dataset("ring8")
    mean_log_p = float(ds.log_prob(ds.test[:50].double()).mean())
    assert rep["est_kl_iwae"] == pytest.approx(mean_log_p + rep["est_nll_iwae"], rel=1e-9)
    # the estimator's samples go to the evaluator, which scores them as the estimator's mode metrics
    assert set(rep["samples"]) == {"est"} and rep["samples"]["est"].shape == (2500, 2)
    from ebmlab.metrics import evaluate_method

    full = evaluate_method(m, ds, n_samples=200)  # the estimator's 2500 samples scored at the main set's 200
    assert {"est_modes", "est_hq"} <= set(full) and "samples" not in full
    assert ("est_mode_kl" in full) == (full["est_hq"] > 0)  # no high-quality sample: no mode histogram


def test_estimator_likelihood_on_8_bit_images_is_one_of_the_discrete_data():
    """On 8-bit images the estimator's Gaussian density is evaluated at dequantised test images and shifted by
    −D·log w: est_nll_iwae is then an upper bound on the NLL of the 8-bit values (≥ 0), reported in bits per
    dimension too and labelled; it is the shared estimator report's dequantised bound (the VAE's), shift > 0."""
    import torch

    from ebmlab.bounds.discrete import dequantisation_offset
    from ebmlab.config import resolve_config
    from ebmlab.data import get_dataset
    from ebmlab.methods.estimators import estimator_report
    from ebmlab.trainer import build_method

    ds = get_dataset("digits")
    cfg = resolve_config("lbt", "digits", overrides=dict(iwae_ks=(1, 5), iwae_points=20, z_dim=4, est_z_dim=4,
                                                          width=4))
    m = build_method(cfg, torch.device("cpu"))
    rep = m.evaluate_extra(ds)
    assert rep["est_nll_iwae"] > 0
    assert rep["est_bpd_iwae"] == pytest.approx(rep["est_nll_iwae"] / (64 * math.log(2)))
    assert "8-bit" in rep["est_likelihood_note"]
    c = m.config
    raw = estimator_report(m.estimator, ds, ks=c.iwae_ks, n_points=c.iwae_points, seed=c.eval_seed, prefix="",
                           with_modes=False, quantised="dequantised")
    shift = dequantisation_offset(64, ds.spec.value_range, ds.spec.levels)
    assert raw["nll_iwae"] == pytest.approx(rep["est_nll_iwae"]) and shift > 0


def test_init_xavier_gives_every_linear_layer_of_every_network_glorot_uniform_weights_and_zero_biases():
    # The released code's networks use TensorFlow's default kernel initialiser (Glorot uniform) and zero biases:
    # U(−a, a), a = √(6 / (fan_in + fan_out)), variance a²/3. The released sizes, so that the variance is checked on
    # thousands of weights: 256 → 128 holds 32,768 (relative s.e. of a uniform's sample variance √(0.8/n) = 0.5 %).
    sizes = dict(z_dim=256, g_hidden=(128, 128), est_z_dim=32, est_hidden=(128, 128))
    for cls, cfg in ((LBT, LBTConfig), (LBTGAN, LBTGANConfig)):
        m = tiny(cls, cfg, init="xavier", **sizes)
        names = {"generator", "estimator"} | ({"discriminator"} if cls is LBTGAN else set())
        assert set(m.networks) == names
        for net in m.networks.values():
            linears = [mod for mod in net.modules() if isinstance(mod, torch.nn.Linear)]
            assert linears
            for lin in linears:
                a = math.sqrt(6 / (lin.in_features + lin.out_features))
                assert lin.bias.abs().max() == 0 and lin.weight.abs().max() <= a
                if lin.weight.numel() >= 16384:
                    assert lin.weight.var().item() == pytest.approx(a * a / 3, rel=0.03)  # 6 s.e.
    default = tiny(init="default", **sizes)  # torch's rule: U(±1/√fan_in) weights, non-zero biases
    first = default.G[0] if isinstance(default.G, torch.nn.Sequential) else next(
        mod for mod in default.G.modules() if isinstance(mod, torch.nn.Linear))
    assert first.bias.abs().max() > 0 and first.weight.abs().max() <= 1 / math.sqrt(256)


def test_init_xavier_is_refused_for_conv_networks():
    from ebmlab.data.base import DataSpec
    from ebmlab.errors import EbmlabError

    spec = DataSpec("image", (1, 8, 8), (-1.0, 1.0), 256)
    with pytest.raises(EbmlabError, match="init=xavier shapes MLP networks"):
        LBT(LBTConfig(init="xavier"), spec=spec, device=torch.device("cpu"), generator=gen(0))


def test_the_release_estimator_on_images_is_a_mirrored_mlp_with_a_bernoulli_decoder_of_the_data_in_unit_range():
    """est_net=mlp, est_decoder=bernoulli: the release's stacked-MNIST estimator (LBT-GAN_smnist.py: encoder
    D → 1000 → 400 → z, decoder z → 400 → 1000 → D, sigmoid cross-entropy of pixels in [0, 1]). ebmlab's images lie
    in (−1, 1), so the log-likelihood is the cross-entropy of (x + 1) / 2 — checked against torch's Bernoulli at a
    decoder whose logits do not depend on z and an encoder equal to the prior (KL 0): the bound is then exact —
    and the samples come back in the data's range. The cross-entropy of grey levels is no likelihood of 8-bit
    images, so the report says so and gives no est_nll."""
    from torch.distributions import Bernoulli

    from ebmlab.data.base import DataSpec

    spec = DataSpec("image", (3, 4, 4), (-1.0, 1.0), 256)
    m = LBT(LBTConfig(est_net="mlp", est_hidden=(10, 4), est_act="relu", est_decoder="bernoulli", est_z_dim=3,
                      net="conv", width=4, z_dim=8), spec=spec, device=torch.device("cpu"), generator=gen(0))
    vae = m.estimator.module.double()
    widths = [lin.out_features for lin in vae.modules() if isinstance(lin, torch.nn.Linear)]
    assert widths == [10, 4, 3, 3, 4, 10, 48]  # encoder 48 → 10 → 4, heads μ and log σ², decoder 3 → 4 → 10 → 48
    logits = torch.linspace(-3, 2, 48, dtype=DT)
    with torch.no_grad():
        for lin in (vae.enc_mu, vae.enc_logvar):
            lin.weight.zero_()
            lin.bias.zero_()
        last = [lin for lin in vae.decoder_net.modules() if isinstance(lin, torch.nn.Linear)][-1]
        last.weight.zero_()
        last.bias.copy_(logits)
    x = torch.randint(0, 256, (20, 3, 4, 4), generator=gen(1)).to(DT) / 255 * 2 - 1
    exact = -torch.nn.functional.binary_cross_entropy_with_logits(
        logits.expand(20, 48), ((x + 1) / 2).reshape(20, 48), reduction="none").sum(1)
    bounds = m.estimator.log_density_bounds(x, generator=gen(2), ks=(1, 5))
    for name, b in bounds.items():
        torch.testing.assert_close(b, exact, rtol=0, atol=1e-10, msg=name)
    mean = m.estimator.sample(3, generator=gen(3))
    torch.testing.assert_close(mean, (2 * torch.sigmoid(logits) - 1).reshape(3, 4, 4).expand(3, 3, 4, 4),
                               rtol=0, atol=1e-12)
    m.estimator.sample_mode = "sample"
    assert set(m.estimator.sample(50, generator=gen(4)).unique().tolist()) == {-1.0, 1.0}
    torch.testing.assert_close(Bernoulli(logits=logits).log_prob(((x + 1) / 2).round().reshape(20, 48)).sum(1),
                               m.estimator.log_lik(logits.expand(20, 48).reshape(20, 3, 4, 4),
                                                   x.sign()).to(DT), rtol=0, atol=1e-10)

    class Images:  # what the report reads of a data set
        pass

    ds = Images()
    ds.spec = spec
    rep = m.evaluate_extra(ds)
    assert not any(k.startswith("est_nll") or k.startswith("est_iwae") for k in rep)
    assert "no likelihood" in rep["est_likelihood_note"]

