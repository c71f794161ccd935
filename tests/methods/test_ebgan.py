"""Known answers for EBGAN / EBGAN-PT: the per-example hinge, the pull-away term as the method uses it, the margin
schedule, the reconstruction energy and its gradient, and the temperature report."""

from __future__ import annotations

import math

import pytest

from ebmlab.metrics.temperature import tau_report
import torch
from torch import nn

from ebmlab.data import get_dataset
from ebmlab.methods.ebgan import margin_at, margin_loss, reconstruction_error
from ebmlab.trainer import build_method
from ebmlab.config import resolve_config

SMALL = {"g_hidden": (16, 16), "d_hidden": (16,), "code_dim": 4}


def make(name="ebgan", seed=0, **over):
    return build_method(resolve_config(name, "ring8", overrides={"seed": seed, **SMALL, **over}), torch.device("cpu"))


def real_batch(n=64, seed=0):
    ds = get_dataset("ring8")
    return ds.train[torch.randint(0, len(ds.train), (n,), generator=torch.Generator().manual_seed(seed))]


class Fixed(nn.Module):
    """A generator that ignores z and returns the given points (so the codes of the fakes are known)."""

    def __init__(self, points):
        super().__init__()
        self.points = nn.Parameter(points.clone())

    def forward(self, z):
        return self.points[: z.shape[0]]


# --- reconstruction energy --------------------------------------------------------------------------------


@pytest.mark.parametrize("norm, reduction, expected", [
    ("l2", "sum", 5.0), ("l2", "mean", 5.0 / math.sqrt(2)), ("l2sq", "sum", 25.0), ("l2sq", "mean", 12.5),
    ("l1", "sum", 7.0), ("l1", "mean", 3.5)])
def test_reconstruction_error_norms(norm, reduction, expected):
    x = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    recon = torch.tensor([[4.0, -3.0], [0.0, 0.0]])  # residual (3, −4), then 0
    e = reconstruction_error(x, recon, norm, reduction)
    torch.testing.assert_close(e, torch.tensor([expected, 0.0]))


def test_generator_gradient_flows_through_the_reconstruction_target():
    # Zero the decoder's output layer: Dec(Enc(x)) = 0, so D(x) = ‖x‖ and ∇ₓD = x/‖x‖. A detached target
    # (D = ‖Dec(Enc(x)) − x.detach()‖) would give a zero gradient.
    m = make(recon_norm="l2")
    last = m.AE.decoder[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    x = torch.tensor([[3.0, 4.0], [-1.0, 0.0]], requires_grad=True)
    e, _ = m.energy_and_code(x)
    torch.testing.assert_close(e.detach(), torch.tensor([5.0, 1.0]))
    e.sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([[0.6, 0.8], [-1.0, 0.0]]))
    torch.testing.assert_close(m.energy(x.detach()), e.detach())  # tau = 1


# --- the hinge is per example -------------------------------------------------------------------------------


def test_margin_loss_hinges_each_example_not_the_batch_mean():
    # fakes at energies 0 and 2 with m = 1: per example mean([1, 0]) = 0.5; hinging the mean gives [1 − 1]⁺ = 0.
    loss = margin_loss(torch.tensor([0.1, 0.3]), torch.tensor([0.0, 2.0]), 1.0)
    assert loss.item() == pytest.approx(0.2 + 0.5)


def test_train_step_discriminator_loss_is_the_per_example_hinge():
    seed, b = 3, 64
    x = real_batch(b)
    probe = make(seed=seed)
    z = torch.randn(b, probe.config.z_dim, generator=torch.Generator().set_state(probe.rng.get_state()))
    with torch.no_grad():
        e_fake = probe.energy_and_code(probe.G(z))[0]
        e_real = probe.energy_and_code(x)[0]
    margin = float(e_fake.median())  # half the fakes inside the margin, half outside
    per_example = float(e_real.mean() + (margin - e_fake).clamp_min(0).mean())
    batch_mean = float(e_real.mean() + max(margin - float(e_fake.mean()), 0.0))
    assert abs(per_example - batch_mean) > 1e-3  # the batch separates the two versions
    m = make(seed=seed, margin=margin)  # same seed: same initialisation and the same z as the probe
    metrics = m.train_step(x, 1)
    assert metrics["loss_d"] == pytest.approx(per_example, rel=1e-5)
    assert metrics["hinge_active"] == pytest.approx(float((e_fake < margin).float().mean()))


# --- pull-away term as the method uses it ---------------------------------------------------------------------


@pytest.mark.parametrize("points, expected", [
    (torch.tensor([[1.0, 0.0], [0.0, 2.0]]), 0.0),  # orthogonal codes
    (torch.tensor([[1.0, 1.0], [1.0, 1.0]]), 1.0),  # identical codes
])
@pytest.mark.parametrize("name, weight", [("ebgan_pt", 0.1), ("ebgan", 0.0)])
def test_pullaway_on_generated_codes_and_its_weight(points, expected, name, weight):
    m = make(name, code_dim=2)
    m.AE.encoder = nn.Identity()  # codes = the generated points themselves
    m.G = Fixed(points)
    metrics = m.train_step(real_batch(2), 1)
    assert metrics["pullaway"] == pytest.approx(expected, abs=1e-6)
    with torch.no_grad():  # the generator step does not move the auto-encoder, so D(G(z)) can be recomputed
        e_gen = m.energy_and_code(points)[0].mean().item()
    assert metrics["loss_g"] == pytest.approx(e_gen + weight * expected, rel=1e-6)


def test_pt_weight_is_an_option_of_ebgan_pt_only():
    assert make("ebgan_pt").config.pt_weight == 0.1
    assert not hasattr(make("ebgan").config, "pt_weight")


# --- margin schedule --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_margin_schedule_reaches_zero_where_configured(schedule):
    at = [margin_at(s, 2.0, schedule, start=10, steps=100) for s in (1, 10, 60, 109, 110, 111, 10_000)]
    assert at[0] == at[1] == 2.0
    assert at[2] == pytest.approx(1.0)  # half way, for both shapes
    assert 0 < at[3] < 0.1
    assert at[4] == at[5] == at[6] == 0.0
    assert margin_at(10_000, 2.0, "constant", start=10, steps=100) == 2.0


def test_train_step_uses_the_scheduled_margin():
    m = make(margin=1.0, margin_schedule="linear", margin_decay_start=0, margin_decay_steps=2)
    out = [{k: float(v) for k, v in m.train_step(real_batch(32, seed=s), s).items()} for s in (1, 2, 3)]
    assert [o["margin"] for o in out] == [0.5, 0.0, 0.0]
    for o in out[1:]:  # with m = 0 the hinge [0 − D]⁺ vanishes and L_D is the real reconstruction error
        assert o["loss_d"] == pytest.approx(o["energy_real"], rel=1e-6) and o["hinge_active"] == 0.0


def test_bad_schedule_is_rejected_with_a_fix():
    with pytest.raises(Exception, match="margin_decay_steps"):
        make(margin_schedule="linear", margin_decay_steps=0)


# --- temperature report (exact quadrature) ----------------------------------------------------------------------


def test_tau_report_known_answer_for_a_radial_energy():
    # Dec(Enc(x)) = 0 gives D(x) = ‖x‖: p_τ ∝ exp(−‖x‖/τ) has Z = 2πτ², so
    # NLL(τ) = mean‖x‖/τ + log 2π + 2 log τ, minimised at τ* = mean‖x‖ / 2.
    m = make(recon_norm="l2", tau_search=True)
    with torch.no_grad():
        m.AE.decoder[-1].weight.zero_()
        m.AE.decoder[-1].bias.zero_()
    ds = get_dataset("ring8")
    r = float(ds.test.norm(dim=1).mean())
    out = tau_report(m.evaluate_extra(ds)["tempered_energy"], ds)  # what the 2D evaluator runs
    assert out["density_status_tau1"] == out["density_status_best_tau"] == "ok"
    assert out["best_tau"] == pytest.approx(r / 2, rel=0.02)
    assert out["nll_tau1"] == pytest.approx(r + math.log(2 * math.pi), abs=5e-3)
    assert out["nll_best_tau"] == pytest.approx(2 + math.log(2 * math.pi) + 2 * math.log(r / 2), abs=5e-3)
    assert out["kl_best_tau"] == pytest.approx(out["nll_best_tau"] - ds.entropy)
    assert out["nll_best_tau"] <= out["nll_tau1"]


def test_tau_report_labels_a_non_normalisable_energy():
    # An identity auto-encoder reconstructs everything: D ≡ 0, exp(−D/τ) = 1 is not normalisable on R².
    m = make(code_dim=2, tau_search=True)
    m.AE.encoder, m.AE.decoder = nn.Identity(), nn.Identity()
    ds = get_dataset("ring8")
    out = tau_report(m.evaluate_extra(ds)["tempered_energy"], ds)  # what the 2D evaluator runs
    assert out["density_status_tau1"] == out["density_status_best_tau"] == "non_normalisable"
    assert "nll_tau1" not in out and "nll_best_tau" not in out
    box_area = (ds.box[1] - ds.box[0]) ** 2  # the model restricted to the box is uniform there
    assert out["nll_tau1_box"] == pytest.approx(math.log(box_area), abs=1e-6)
    assert out["nll_best_tau_box"] == pytest.approx(math.log(box_area), abs=1e-6)


def test_tau_search_is_off_by_default():
    assert make().evaluate_extra(get_dataset("ring8")) == {}
