"""The shared training recipe (ebmlab.recipe): learning-rate schedules, gradient clipping, EMA of the sampling
networks — known values in float64, exact resume, and evaluation on the averages."""

import json
import math
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import ebmlab
from ebmlab.errors import EbmlabError
from ebmlab.recipe import Recipe, lr_factor
from ebmlab.config import RunConfig
from ebmlab.api import load_run

FAST = {"eval_samples": 300, "plots": "false", "loggers": "", "log_every": 5, "ckpt_every": 10,
        "eval_density": "false"}


def rc(**kw):
    return replace(RunConfig(), **kw)


def test_schedules_take_their_defining_values():
    c = rc(steps=101, lr_schedule="linear", lr_end_factor=0.1)
    assert lr_factor(1, c) == 1.0 and lr_factor(101, c) == pytest.approx(0.1, abs=1e-15)
    assert lr_factor(51, c) == pytest.approx(0.55, abs=1e-15)  # halfway: t = 50/100
    c = rc(steps=101, lr_schedule="cosine", lr_end_factor=0.0)
    assert lr_factor(1, c) == 1.0 and lr_factor(51, c) == pytest.approx(0.5, abs=1e-15)
    assert lr_factor(101, c) == pytest.approx(0.0, abs=1e-15)
    assert lr_factor(26, c) == pytest.approx((1 + math.cos(math.pi / 4)) / 2, abs=1e-15)
    # the decay starts at lr_decay_start: flat before, then the same shape over the rest
    c = rc(steps=201, lr_schedule="linear", lr_end_factor=0.0, lr_decay_start=100)
    assert [lr_factor(s, c) for s in (1, 50, 101)] == [1.0, 1.0, 1.0]
    assert lr_factor(151, c) == pytest.approx(0.5, abs=1e-15)
    c = rc(steps=100, lr_schedule="step", lr_step_every=30, lr_step_factor=0.5)
    assert [lr_factor(s, c) for s in (1, 30, 31, 60, 61, 91)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.125]
    assert lr_factor(77, rc(steps=100)) == 1.0


def fake_method(opt_kind="sgd", lr=0.1):
    net = nn.Linear(3, 2).double()
    net.register_buffer("count", torch.zeros((), dtype=torch.float64))
    opt = (torch.optim.SGD if opt_kind == "sgd" else torch.optim.Adam)(net.parameters(), lr=lr)
    return SimpleNamespace(optimizers={"g": opt}, networks={"generator": net}, sampling_networks=("generator",)), net, opt


def test_the_schedule_sets_every_optimizers_rate_from_its_configured_value():
    m, net, opt = fake_method(lr=0.2)
    r = Recipe(m, rc(steps=11, lr_schedule="linear", lr_end_factor=0.5))
    r.before_step(11)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1, abs=1e-15)
    r.before_step(1)  # from the configured 0.2, not compounded on the last value
    assert opt.param_groups[0]["lr"] == 0.2


def test_gradient_clipping_caps_the_global_norm_of_each_optimizer_step():
    from ebmlab.methods.base import optimizer_step

    m, net, opt = fake_method(lr=1.0)
    recipe = Recipe(m, rc(grad_clip=0.5))
    before = [p.detach().clone() for p in net.parameters()]
    loss = 1000.0 * net(torch.ones(4, 3, dtype=torch.float64)).sum()  # a gradient of norm ~ 10⁴
    optimizer_step(opt, loss, recipe)  # the clip happens here, at the call, not in a hidden hook
    moved = torch.sqrt(sum(((p - b) ** 2).sum() for p, b in zip(net.parameters(), before)))
    assert moved.item() == pytest.approx(0.5, rel=1e-6)  # SGD with lr 1: the step is the clipped gradient
    # below the cap nothing changes
    m2, net2, opt2 = fake_method(lr=1.0)
    recipe2 = Recipe(m2, rc(grad_clip=1e6))
    before = [p.detach().clone() for p in net2.parameters()]
    net2(torch.ones(1, 3, dtype=torch.float64)).sum().backward()
    grads = [p.grad.clone() for p in net2.parameters()]
    recipe2.average(opt2)
    recipe2.clip(opt2)
    opt2.step()
    for p, b, g in zip(net2.parameters(), before, grads):
        assert torch.equal(p, b - g)


def test_ema_is_the_closed_form_average_and_buffers_are_copied():
    m, net, _ = fake_method()
    beta = 0.9
    r = Recipe(m, rc(ema=beta))
    theta0 = net.weight.detach().clone()
    values = [torch.full_like(theta0, float(t)) for t in range(1, 6)]
    for t, v in enumerate(values, 1):
        with torch.no_grad():
            net.weight.copy_(v)
            net.count.fill_(t)
        r.after_step()
    k = len(values)
    expected = beta ** k * theta0 + sum((1 - beta) * beta ** (k - t) * v for t, v in enumerate(values, 1))
    assert torch.allclose(r.shadow["generator"]["weight"], expected, rtol=0, atol=1e-14)
    assert r.shadow["generator"]["count"].item() == 5.0
    live = net.weight.detach().clone()
    with r.averaged():
        assert torch.allclose(net.weight, expected, rtol=0, atol=1e-14)
        with r.averaged():  # nested: stays averaged, and the outer block still restores
            pass
        assert torch.allclose(net.weight, expected, rtol=0, atol=1e-14)
    assert torch.equal(net.weight, live)


def test_without_ema_the_recipe_keeps_nothing():
    m, net, _ = fake_method()
    r = Recipe(m, rc())
    assert not r.active and r.state_dict() == {"ema": {}}
    w = net.weight.detach().clone()
    with r.averaged():
        assert torch.equal(net.weight, w)


def test_a_run_with_the_full_recipe_resumes_exactly_and_evaluates_the_averages(tmp_path):
    over = {**FAST, "steps": 40, "lr_schedule": "cosine", "lr_end_factor": 0.1, "grad_clip": 1.0, "ema": 0.9}
    full = ebmlab.train("gan", "ring8", out=tmp_path / "full", overrides=over, progress=False)
    ebmlab.train("gan", "ring8", out=tmp_path / "part", overrides=over, progress=False, stop_after=23)
    resumed = ebmlab.train("gan", "ring8", out=tmp_path / "part", overrides=over, progress=False)
    assert resumed.resumed_from == 23
    ck_full = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    ck_part = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)
    for key in ("networks", "recipe"):
        flat = lambda d: {k: v for k, v in _flatten(d["method_state"][key])}
        a, b = flat(ck_full), flat(ck_part)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert full.summary["metrics"] == resumed.summary["metrics"]
    # the optimizers ran at the scheduled rate: the last step's lr is stored in the checkpoint
    lr = ck_full["method_state"]["optimizers"]["generator"]["param_groups"][0]["lr"]
    assert lr == pytest.approx(1e-3 * lr_factor(40, replace(RunConfig(), steps=40, lr_schedule="cosine",
                                                              lr_end_factor=0.1)), rel=1e-12)
    # evaluation and sampling use the averaged generator, and the averages differ from the trained weights
    _, method, _ = load_run(tmp_path / "full")
    avg = ck_full["method_state"]["recipe"]["ema"]["generator"]
    raw = ck_full["method_state"]["networks"]["generator"]
    for k, v in method.networks["generator"].state_dict().items():
        assert torch.equal(v, avg[k])
    assert any(not torch.equal(avg[k], raw[k]) for k in raw)
    # without EMA, the same command's checkpoint holds no averages
    plain = ebmlab.train("gan", "ring8", out=tmp_path / "plain", overrides={**FAST, "steps": 5}, progress=False)
    assert plain.method.recipe.state_dict() == {"ema": {}}


def _flatten(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


@pytest.mark.parametrize("over, msg", [
    ({"lr_schedule": "step"}, "needs lr_step_every"),
    ({"lr_schedule": "cosine", "lr_decay_start": 50}, "would never decay"),
    ({"ema": 1.0}, "ema=1.0"),
    ({"grad_clip": -1}, "grad_clip=-1"),
    ({"lr_schedule": "exponential"}, "lr_schedule"),
])
def test_bad_recipe_options_are_refused_before_any_work(tmp_path, over, msg):
    with pytest.raises(EbmlabError, match=msg):
        ebmlab.train("gan", "ring8", out=tmp_path / "r", overrides={**FAST, "steps": 50, **over}, progress=False)
    assert not (tmp_path / "r").exists()


def test_a_checkpoint_without_the_averages_its_run_keeps_is_refused(tmp_path):
    over = {**FAST, "steps": 10}
    ebmlab.train("gan", "ring8", out=tmp_path / "r", overrides=over, progress=False)
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    cfg["run"]["ema"] = 0.5  # as if the configuration had been edited after training
    (tmp_path / "r" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(EbmlabError, match="moving averages"):
        load_run(tmp_path / "r")


def test_a_presets_schedule_does_not_refuse_a_short_run(tmp_path):
    """kale_ring8's preset decays the lr from step 0; a one-step run with it must still train (nothing to decay)."""
    from ebmlab.cli import main

    assert main(["train", "kale", "--data", "ring8", "--steps", "1", "--out", str(tmp_path / "k"), "--no-progress",
                 "mcmc_steps=2", "eval_samples=100", "eval_density=false", "plots=false", "loggers="]) == 0
