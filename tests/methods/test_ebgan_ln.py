"""Known answers for the ladder network and EBGAN-LN: the combinator, the bottom-layer cost at initialisation, the
population statistics, the objective's composition, the labelled subset, and that the ladder learns to classify."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ebmlab
from ebmlab.config import resolve_config
from ebmlab.data import get_dataset
from ebmlab.errors import EbmlabError
from ebmlab.nets.ladder import Combinator, Ladder
from ebmlab.trainer import build_method

SMALL = {"hidden": (32, 16), "g_hidden": (16,), "z_dim": 4, "labels": 50, "labelled_batch": 20, "batch_size": 32}


def make(seed=0, data="digits", **over):
    return build_method(resolve_config("ebgan_ln", data, overrides={"seed": seed, **SMALL, **over}),
                        torch.device("cpu"))


def batch(n=32, seed=0):
    ds = get_dataset("digits")
    return ds.train[torch.randint(0, len(ds.train), (n,), generator=torch.Generator().manual_seed(seed))]


# --- the ladder network ----------------------------------------------------------------------------------


def test_combinator_formula_on_chosen_parameters():
    torch.manual_seed(0)
    g = Combinator(3).double()
    a = torch.tensor([[0.5], [2.0], [-1.0], [0.3], [0.1], [1.5], [-0.5], [0.2], [0.7], [0.05]],
                     dtype=torch.float64).expand(10, 3).clone()
    with torch.no_grad():
        g.a.copy_(a)
    z = torch.tensor([[0.2, -1.0, 3.0]], dtype=torch.float64)
    u = torch.tensor([[1.0, 0.0, -2.0]], dtype=torch.float64)
    sig = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    zz, uu = z.numpy()[0], u.numpy()[0]
    mu = 0.5 * sig(2.0 * uu - 1.0) + 0.3 * uu + 0.1
    v = 1.5 * sig(-0.5 * uu + 0.2) + 0.7 * uu + 0.05
    np.testing.assert_allclose(g(z, u).detach().numpy()[0], (zz - mu) * v + mu, rtol=1e-12)


def test_at_initialisation_the_decoder_ignores_its_input_and_the_cost_is_lambda_times_mean_square():
    """a₂ = a₇ = 1, the rest 0: μ(u) = 0 and v(u) = 0, so ẑ⁽⁰⁾ = 0 and C(x) = λ₀·mean(x²) for every x, noise or not."""
    torch.manual_seed(0)
    lad = Ladder(6, (5, 4), 3, noise_std=0.3, lambda0=1000.0).double()
    x = torch.rand(7, 6, dtype=torch.float64)
    _, cost = lad.noisy(x, torch.Generator().manual_seed(1))
    torch.testing.assert_close(cost, 1000.0 * x.square().mean(1), rtol=1e-12, atol=0)


def test_noise_free_noisy_path_is_the_clean_path():
    torch.manual_seed(0)
    lad = Ladder(6, (5, 4), 3).double()
    x = torch.randn(9, 6, dtype=torch.float64)
    logits, _ = lad.noisy(x, None, noise_std=0.0, decode=False)
    torch.testing.assert_close(logits, lad(x), rtol=1e-12, atol=1e-12)


def test_population_statistics_converge_to_a_fixed_batch_and_make_evaluation_per_example():
    """Tracking one batch many times moves the population statistics onto its own, so evaluation-mode logits and
    costs on that batch equal the training-mode ones; in evaluation mode one example's cost does not depend on its
    batch."""
    torch.manual_seed(0)
    lad = Ladder(6, (5, 4), 3, momentum=0.5).double()
    with torch.no_grad():
        for c in lad.comb:  # a decoder that uses its lateral and top-down inputs
            c.a.normal_()
    x = torch.randn(16, 6, dtype=torch.float64)
    for _ in range(80):
        lad(x, track=True)
        lad.noisy(x, None, noise_std=0.0, track=True)
    train_logits, train_cost = lad(x), lad.noisy(x, None, noise_std=0.0)[1]
    lad.eval()
    torch.testing.assert_close(lad(x), train_logits, rtol=1e-5, atol=1e-5)
    eval_cost = lad.noisy(x, None, noise_std=0.0)[1]
    torch.testing.assert_close(eval_cost, train_cost, rtol=1e-5, atol=1e-5)
    one = lad.noisy(x[3:4], None, noise_std=0.0)[1]
    torch.testing.assert_close(one, eval_cost[3:4], rtol=1e-12, atol=1e-12)
    assert float(train_cost.detach().std()) > 0  # a non-trivial decoder


# --- EBGAN-LN ---------------------------------------------------------------------------------------------------


def test_labelled_subset_is_balanced_and_chosen_by_label_seed():
    a, b, c = make(), make(seed=5), make(label_seed=1)
    ds = get_dataset("digits")
    assert torch.equal(a.x_lab, b.x_lab) and not torch.equal(a.x_lab, c.x_lab)  # the run seed does not choose them
    assert np.all(np.bincount(a.y_lab.numpy(), minlength=10) == 5)
    for x, y in zip(a.x_lab[:5], a.y_lab[:5]):  # each image carries its own label
        hit = (ds.train == x).flatten(1).all(1).nonzero()[:, 0]
        assert int(ds.train_labels[hit[0]]) == int(y)


def test_objective_is_cross_entropy_plus_real_energy_plus_per_example_hinge():
    # m far above every energy: the hinge is active for every fake, so L_D = CE + mean C(x_u) + m − mean C(G(z))
    m = make(margin=1e5, margin_schedule="constant")
    out = {k: float(v) for k, v in m.train_step(batch(), 1).items()}
    assert out["hinge_active"] == 1.0
    assert out["loss_d"] == pytest.approx(out["ce"] + out["energy_real"] + 1e5 - out["energy_fake"], rel=1e-6)
    # m = 0 (constant): the ladder alone, L_D = CE + mean C(x_u), and the generator is not trained
    lad = make(margin=0.0, margin_schedule="constant")
    g0 = [p.detach().clone() for p in lad.G.parameters()]
    out = {k: float(v) for k, v in lad.train_step(batch(), 1).items()}
    assert "energy_fake" not in out and out["loss_d"] == pytest.approx(out["ce"] + out["energy_real"], rel=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(g0, lad.G.parameters()))


def test_margin_decays_linearly_to_zero():
    m = make(margin=20.0, margin_schedule="linear", margin_decay_steps=100)
    assert m.margin(1) == pytest.approx(19.8) and m.margin(50) == pytest.approx(10.0) and m.margin(100) == 0.0
    assert m.adversarial  # the generator still trains after the decay (L_G does not depend on m)


def test_the_ladder_learns_to_classify_from_few_labels():
    m = make(seed=0, labels=50, hidden=(64, 32))
    ds = get_dataset("digits")
    before = float((m.predict(ds.test) != ds.test_labels).double().mean())
    g = torch.Generator().manual_seed(0)
    for step in range(1, 121):
        m.train_step(ds.train[torch.randint(0, len(ds.train), (32,), generator=g)], step)
    err = m.evaluate_extra(ds)["test_error"]
    assert before > 0.6 and err < 0.2, (before, err)


def test_data_without_labels_is_refused_with_what_to_use(tmp_path):
    p = tmp_path / "v.npz"
    np.savez(p, x=np.random.default_rng(0).normal(size=(100, 5)).astype(np.float32))
    with pytest.raises(EbmlabError, match="no class labels.*labelled data set"):
        make(data=str(p))
    with pytest.raises(EbmlabError, match="of kind"):
        make(data="ring8")
    with pytest.raises(EbmlabError, match="multiple of 10"):
        make(labels=55)


def test_a_run_reports_test_error_and_resumes_with_the_same_labelled_set(tmp_path):
    over = {**SMALL, "steps": 4, "eval_samples": 50, "loggers": "", "plots": False, "eval_density": False}
    res = ebmlab.train("ebgan_ln", "digits", out=tmp_path / "r", progress=False, overrides=over)
    err = res.summary["metrics"]["test_error"]
    assert 0.0 <= err <= 1.0
    _, method, _ = ebmlab.load_run(tmp_path / "r")
    assert torch.equal(method.x_lab, make().x_lab)
    again = ebmlab.evaluate_run(tmp_path / "r")
    assert again["metrics"]["test_error"] == pytest.approx(err)
