"""VGAN and VGAN-VCD: the bounded energy and the batch entropy against hand-computed values, each method's losses
recomputed from the networks around one step, and the VCD transition's output depending on its input."""

import copy
import math

import pytest
import torch

from ebmlab.data.base import DataSpec
from ebmlab.methods.vgan import VGAN
from ebmlab.methods.vgan_vcd import VCD
from ebmlab.nets.mlp import BoundedExpertHead


def _h(p: float) -> float:
    return -p * math.log(p) - (1 - p) * math.log(1 - p)


def test_bounded_energy_and_batch_entropy_by_hand():
    p = torch.tensor([[0.5, 0.5], [0.1, 0.9]], dtype=torch.float64)
    # E = Σ_j H_b(p_j): two fair experts give 2 log 2 (the maximum); (0.1, 0.9) gives 2 H(0.1) = 0.650166
    e = BoundedExpertHead.energy_from_probs(p)
    assert e.tolist() == pytest.approx([2 * math.log(2), 2 * _h(0.1)], abs=1e-12)
    assert 2 * _h(0.1) == pytest.approx(0.6501659, abs=1e-7)
    # H̃ = Σ_j H_b(mean_i p_ij): means (0.3, 0.7), so 2 H(0.3) = 1.221729
    assert float(BoundedExpertHead.batch_entropy(p)) == pytest.approx(2 * _h(0.3), abs=1e-12)
    # the logit form of the forward pass gives the same energy, and stays finite at saturated logits
    head = BoundedExpertHead(torch.nn.Identity(), 2, n_experts=2).double()
    with torch.no_grad():
        head.experts.weight.copy_(torch.eye(2))
        head.experts.bias.zero_()
    logits = torch.log(p / (1 - p))
    with torch.no_grad():
        assert head(logits).tolist() == pytest.approx(e.tolist(), abs=1e-12)
        big = head(torch.tensor([[1e4, -1e4]], dtype=torch.float64))
    assert torch.isfinite(big).all() and float(big) == pytest.approx(2 * _h(1e-4), rel=1e-6)


SPEC = DataSpec("vectors", (3,))


def _batch(n=16, seed=0):
    return torch.randn(n, 3, generator=torch.Generator().manual_seed(seed))


def test_vgan_losses_are_the_papers():
    """loss_g = mean E(G(z)) − H̃(G(z)) with the energy before the step; loss_e = mean E(x) − mean E(G(z')) − H̃(x)
    with the generator after its step and the energy before its own."""
    m = VGAN(VGAN.Config(z_dim=2, g_hidden=(16,), e_hidden=(16,), n_experts=5), spec=SPEC, device=torch.device("cpu"),
             generator=torch.Generator().manual_seed(0))
    x = _batch()
    E0, G0 = copy.deepcopy(m.E), copy.deepcopy(m.G)
    state = m.rng.get_state()
    out = m.train_step(x, 1)
    # replay the method's noise: z for the generator's step, then z' for the energy step
    g = torch.Generator()
    g.set_state(state)
    z1, z2 = m.noise(16, 2, g), m.noise(16, 2, g)
    with torch.no_grad():
        p1 = E0.probs(G0(z1))
        want_g = BoundedExpertHead.energy_from_probs(p1).mean() - BoundedExpertHead.batch_entropy(p1)
    assert float(out["loss_g"]) == pytest.approx(float(want_g), rel=1e-5)
    with torch.no_grad():
        want_e = E0(x).mean() - E0(m.G(z2)).mean() - BoundedExpertHead.batch_entropy(E0.probs(x))
    assert float(out["loss_e"]) == pytest.approx(float(want_e), rel=1e-5)
    with torch.no_grad():
        assert float(out["energy_real"]) == pytest.approx(float(E0(x).mean()), rel=1e-5)
    assert 0 <= float(out["energy_real"]) <= 5 * math.log(2)


def test_vcd_losses_are_the_papers():
    """With no code noise (drop_prob=0) the transition is deterministic given its BatchNorm statistics, so both
    losses can be recomputed from copies of the networks taken around the step:
    loss_g = ρ(mean E(T(x⁰)) − H̃(T(x⁰))) + (1 − ρ) BCE(T(x⁰), x⁰), loss_e = mean E(x⁺) − mean E(T'(x⁰)) − H̃(x⁺)."""
    rho = 0.3
    m = VCD(
        VCD.Config(code_dim=4, t_hidden=(16,), e_hidden=(16,), n_experts=5, drop_prob=0.0, rho=rho, net="mlp"),
        spec=DataSpec("image", (1, 4, 4), (-1.0, 1.0)), device=torch.device("cpu"),
        generator=torch.Generator().manual_seed(0))
    x = torch.rand(16, 1, 4, 4, generator=torch.Generator().manual_seed(1)) * 2 - 1
    x_pos, x0 = x[:8], x[8:]
    T0, E0 = copy.deepcopy(m.T), copy.deepcopy(m.E)
    out = m.train_step(x, 1)
    gen = torch.Generator()
    with torch.no_grad():
        xt = T0(x0, gen)
        p = E0.probs(xt)
        t = (x0 + 1) / 2
        q = ((xt + 1) / 2).clamp(1e-6, 1 - 1e-6)
        bce = -(t * q.log() + (1 - t) * (1 - q).log()).flatten(1).sum(1).mean()
        want_g = rho * (BoundedExpertHead.energy_from_probs(p).mean() - BoundedExpertHead.batch_entropy(p)) \
            + (1 - rho) * bce
    assert float(out["loss_g"]) == pytest.approx(float(want_g), rel=1e-4)
    assert float(out["recon"]) == pytest.approx(float(bce), rel=1e-4)
    T1 = copy.deepcopy(m.T)  # after its step; the energy step used it in training mode
    with torch.no_grad():
        want_e = E0(x_pos).mean() - E0(T1(x0, gen)).mean() - BoundedExpertHead.batch_entropy(E0.probs(x_pos))
    assert float(out["loss_e"]) == pytest.approx(float(want_e), rel=1e-4)


def test_vcd_transition_depends_on_its_input():
    """The failure this guards against: the encoder's pre-activations grow in training until every tanh unit of
    the bottleneck saturates at the same sign, the code is the same for every x, and T(x) is one image (1 mode of
    1000 on stacked digits). Simulated here by scaling the encoder's output by 1000 and shifting it by 50: the
    BatchNorm before the tanh keeps the code informative (without it every unit is +1 and the outputs agree)."""
    torch.manual_seed(0)  # the networks' initialisation draws from the global generator
    m = VCD(VCD.Config(code_dim=8, t_hidden=(32,), e_hidden=(32,), n_experts=10, net="mlp"),
            spec=DataSpec("image", (1, 6, 6), (-1.0, 1.0)), device=torch.device("cpu"),
            generator=torch.Generator().manual_seed(0))
    last = [mod for mod in m.T.enc.modules() if isinstance(mod, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.mul_(1000.0)
        last.bias.add_(50.0)
    g = torch.Generator().manual_seed(1)
    data = (torch.rand(64, 1, 6, 6, generator=g) > 0.5).float() * 2 - 1
    with torch.no_grad():
        pre = m.T.enc(data)
        assert float((torch.tanh(pre).abs() > 0.99).float().mean()) > 0.95  # the raw code would be saturated
        h = m.T.code(data)  # training mode: batch statistics
        assert float((h.abs() > 0.99).float().mean()) < 0.5
        out = m.T(data, torch.Generator(), noise=False)
    assert float(out.flatten(1).std(0).mean()) > 1e-3  # different inputs, different outputs
    assert float((out[0] - out[1]).abs().max()) > 1e-3


def test_vcd_reports_transitions_of_noise_apart_at_the_same_count():
    """VCD's samples are transitions of real images (coverage partly the data's own); its evaluation also scores
    noise_chain transitions of uniform noise, as many, under noise_*, beside the main set's precision and modes."""
    from ebmlab.config import resolve_config
    from ebmlab.data import get_dataset
    from ebmlab.metrics import evaluate_method
    from ebmlab.placement import build_method

    ds = get_dataset("digits")
    m = build_method(resolve_config("vgan_vcd", "digits", overrides={"noise_chain": 2}), torch.device("cpu"))
    for step, i in enumerate(range(0, 64, 16), 1):
        m.train_step(ds.train[i:i + 16], step)
    x = m.evaluate_extra(ds, 37)["samples"]["noise"]
    lo, hi = ds.spec.value_range
    assert x.shape == (37, *ds.shape) and lo - 1e-6 <= x.min() and x.max() <= hi + 1e-6
    out = evaluate_method(m, ds, n_samples=200, density=False)
    assert {"clf_precision", "clf_recall", "noise_clf_precision", "noise_clf_recall"} <= set(out)
    assert "noise_note" not in out  # scored at the main set's count
    m2 = build_method(resolve_config("vgan_vcd", "digits", overrides={"noise_chain": 0}), torch.device("cpu"))
    assert m2.evaluate_extra(ds) == {}
