"""Whole-step graphs (ebmlab.graphs): the kinds, schedules and state a replay must carry (every method's replayed
steps against its eager ones: tests/methods/test_capture.py); the trainer's ``graphs`` option resumes exactly,
writes checkpoints an eager run reads, and refuses what it cannot do. The CUDA tests run only where CUDA is.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ebmlab import graphs
from ebmlab.data import get_dataset
from ebmlab.errors import EbmlabError
from ebmlab.methods import METHODS
from ebmlab.testing import REPLAY_RECIPE, assert_same_state, build, case, replay_pair
from ebmlab.trainer import train


def run_both(name, data, steps, **over):
    """The same steps eagerly and replayed from the emulated capture (``ebmlab.testing.replay_pair``)."""
    return replay_pair(name, data, steps, **over)


def _pair(name, data, over):
    return [build(name, data, **{**REPLAY_RECIPE, **over}) for _ in range(2)]


def graphs_state(m):
    return graphs.portable_method_state(m.state_dict())


def test_kale_replays_both_kinds_and_keeps_its_count():
    eager, replayed, runner, _ = run_both("kale", "ring8", 16)
    assert {k[0] for k in runner.graphs} == {"burst", "step"}
    assert all(g.replays >= 2 for g in runner.graphs.values())
    assert replayed.base_steps == eager.base_steps == 16


def test_a_schedule_reaches_replayed_steps_through_tensor_learning_rates():
    eager, replayed, runner, _ = run_both("gan", "ring8", 12, lr_schedule="linear")
    assert runner.replayed_steps >= 8
    lr = replayed.optimizers["generator"].param_groups[0]["lr"]
    assert isinstance(lr, torch.Tensor) and float(lr) == pytest.approx(eager.optimizers["generator"].param_groups[0]["lr"])
    assert_same_state(eager.state_dict(), replayed.state_dict(), rtol=1e-5)
    # and the schedule moved the weights: the same run at a constant rate ends elsewhere
    const, _, _, _ = run_both("gan", "ring8", 12)
    w = "networks", "generator", "0.weight"
    assert not torch.allclose(const.state_dict()[w[0]][w[1]][w[2]], replayed.state_dict()[w[0]][w[1]][w[2]])


def test_the_emulated_capture_refuses_a_host_read():
    """A step that reads the device on the host (here a mask's indices by nonzero, as zuko's coupling layers did at
    each call before KALE's flow base kept them as buffers) cannot be replayed: the emulated capture finds it
    (HostReadInCapture), where CUDA would fail or replay stale indices. KALE with a flow base is now captured."""
    m, _ = _pair("kale", "ring8", {"base": "flow", "flow_layers": 2, "flow_hidden": (8,)})
    assert graphs.blocker(m) is None
    gan, _ = _pair("gan", "ring8", {})
    step = gan.train_step

    def reads_indices(batch, s):
        (batch[:, 0] > 0).nonzero()  # a host read inside the step
        return step(batch, s)

    runner = graphs.StepGraphs(gan, "emulate", reads_indices)
    batch = get_dataset("ring8").train[:16]
    with pytest.raises(graphs.HostReadInCapture, match="nonzero"):
        for s in range(1, graphs.WARMUP + 2):
            runner.step(batch, s)


def test_vcd_reservoir_rolls_under_replay():
    eager, replayed, runner, _ = run_both("vgan_vcd", "ring8", 10, reservoir=32)
    assert runner.replayed_steps >= 2
    assert torch.equal(eager.pool, replayed.pool)


def test_a_decaying_margin_reaches_replayed_steps():
    """EBGAN's margin schedule through a device tensor filled before each step (Method.prepare_step)."""
    over = {"margin_schedule": "linear", "margin_decay_steps": 8, "margin": 2.0}
    eager, replayed, runner, _ = run_both("ebgan", "ring8", 12, **over)
    assert runner.replayed_steps >= 8
    assert_same_state(eager.state_dict(), graphs_state(replayed))
    assert float(replayed.margin(12)) == 0.0 and float(replayed.margin(3)) == pytest.approx(2.0 * (1 - 3 / 8))


def test_a_host_read_in_a_captured_step_is_refused():
    m, _ = _pair("gan", "ring8", {})

    def step_with_item(batch, step):
        out = m.train_step(batch, step)
        return {"loss": float(out["loss_d"])}  # a value read on the host: a CUDA capture refuses it

    runner = graphs.StepGraphs(m, "emulate", step_with_item)
    batch = get_dataset("ring8").train[:16]
    for step in range(1, graphs.WARMUP + 1):
        runner.step(batch, step)
    with pytest.raises(graphs.HostReadInCapture, match="host"):
        runner.step(batch, graphs.WARMUP + 1)


@pytest.mark.parametrize("bad, match", [
    (lambda x: x[x > 0].sum(), "boolean mask"),
    (lambda x: torch.masked_select(x, x > 0).sum(), "masked_select"),
    (lambda x: torch.unique(x).sum(), "unique"),
    (lambda x: x.sum() * (1.0 if bool(x.sum() > 0) else 2.0), "on the host"),
    (lambda x: x.sum().cpu() * 2.0, "on the host"),
    # tensors made from host data: on CUDA a host → device copy that waits for the stream
    (lambda x: x * torch.tensor(0.5, dtype=x.dtype, device=x.device), "from host data"),
    (lambda x: x * torch.as_tensor(0.5, dtype=x.dtype, device=x.device), "from host data"),
    (lambda x: x * torch.from_numpy(np.full(8, 0.5, dtype=np.float32)).to(x.device), "from host data"),
    # solvers that read their status on the host on CUDA (svdvals failed a capture on an H100)
    (lambda x: torch.linalg.svdvals(x.reshape(2, 2, 2)).sum(), "linalg_svdvals"),
    (lambda x: torch.linalg.eigvalsh(x.reshape(2, 2, 2)).sum(), "linalg_eigvalsh"),
])
def test_the_emulated_capture_refuses_what_cuda_refuses(bad, match):
    g = graphs._EmulatedGraph()
    x = torch.randn(8)
    with pytest.raises(graphs.HostReadInCapture, match=match):
        with g.capture():
            bad(x)
    with g.capture():  # the same arithmetic kept on the device is fine: masks, fills, Python numbers, as_tensor
        torch.where(x > 0, x, torch.zeros_like(x)).sum()  # of a tensor (no copy)
        x * torch.full((), 0.5, dtype=x.dtype, device=x.device) * 0.5 + torch.as_tensor(x)


def test_portable_optimizer_state_is_what_an_eager_run_writes():
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([p], lr=torch.tensor(0.5), fused=True)
    p.grad = torch.ones(3)
    opt.step()
    state = graphs.portable_optimizer_state(opt.state_dict())
    assert state["param_groups"][0]["lr"] == 0.5 and isinstance(state["param_groups"][0]["lr"], float)
    assert opt.param_groups[0]["lr"].item() == 0.5  # the live optimizer is untouched


def _trained(tmp_path, name, mode, stop_after=None, out="run", **over):
    o = {"steps": 12, "batch_size": 32, "seed": 0, "eval_samples": 100, "plots": False, "loggers": "",
         "graphs": mode, "lr_schedule": "cosine", "ema": 0.8, "log_every": 4, "eval_density": False, **over}
    return train(name, "ring8", out=tmp_path / out, overrides=o, progress=False, stop_after=stop_after)


def _checkpoint(path):
    return torch.load(path / "checkpoint.pt", weights_only=True)


@pytest.mark.parametrize("name", ["gan", "kale"])
def test_trainer_graphs_emulate_resumes_exactly_and_matches_eager(tmp_path, name):
    over = {"burst_every": 3, "n_critic_burst": 2} if name == "kale" else {}
    _trained(tmp_path, name, "off", out="eager", **over)
    _trained(tmp_path, name, "emulate", stop_after=7, out="graphs", **over)  # a stop between replays
    res = _trained(tmp_path, name, "emulate", out="graphs", **over)
    a, b = _checkpoint(tmp_path / "eager"), _checkpoint(tmp_path / "graphs")
    assert_same_state(a["method_state"], b["method_state"], rtol=1e-5)
    assert a["budget"] == b["budget"]
    assert (tmp_path / "eager" / "metrics.jsonl").read_text().count('"train"') == \
        (tmp_path / "graphs" / "metrics.jsonl").read_text().count('"train"')
    assert res.summary  # finished and evaluated
    import json

    sessions = json.loads((tmp_path / "graphs" / "run.json").read_text())["sessions"]
    assert [s["graphs"]["backend"] for s in sessions] == ["emulate", "emulate"]
    # the second session warms each kind up again before capturing it
    assert sum(s["graphs"]["replayed_steps"] + s["graphs"]["eager_steps"] for s in sessions) == 12
    assert "graphs" not in json.loads((tmp_path / "eager" / "run.json").read_text())["sessions"][0]


def test_graphs_on_without_cuda_is_refused_before_writing(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(EbmlabError, match="graphs=on captures CUDA graphs"):
        _trained(tmp_path, "gan", "on")
    assert not (tmp_path / "run").exists()


def test_auto_is_eager_on_the_cpu():
    assert graphs.backend("auto", torch.device("cpu")) is None
    assert graphs.backend("emulate", torch.device("cpu")) == "emulate"
    assert graphs.backend("off", torch.device("cpu")) is None


# --- on a GPU -------------------------------------------------------------------------------------------------
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@cuda
@pytest.mark.parametrize("name", ["gan", "vae", "kale", "bib"])
def test_cuda_graphs_train_like_eager(tmp_path, name):
    """On CUDA, captured and eager steps run the same kernels on the same random streams (the method's generator
    is registered with the graph): the trained weights agree to float tolerance (kernel choices may differ)."""
    kw = dict(device="cuda", lr_schedule="constant", ema=0.0, steps=20)
    _trained(tmp_path, name, "off", out="eager", **kw)
    _trained(tmp_path, name, "on", out="graphs", **kw)
    a, b = _checkpoint(tmp_path / "eager")["method_state"], _checkpoint(tmp_path / "graphs")["method_state"]
    for net in a["networks"]:
        for k, v in a["networks"][net].items():
            torch.testing.assert_close(v, b["networks"][net][k], rtol=1e-4, atol=1e-5, msg=f"{net}.{k}")


@cuda
@pytest.mark.parametrize("name", [n for n in METHODS if case(n).data == "ring8"])
def test_cuda_capture_succeeds_for_every_method(tmp_path, name):
    """graphs=on (strict: a failed capture or a replay that leaves the generator still is an error) captures and
    replays every method that trains on 2D data, with finite metrics."""
    res = _trained(tmp_path, name, "on", device="cuda", **case(name).settings,
                   steps=max(12, case(name).replay_steps))
    g = json.loads((res.run_dir / "run.json").read_text())["sessions"][-1]["graphs"]
    assert g["replayed_steps"] > 0 and not g.get("eager_because"), g


def _broken_replays(monkeypatch):
    """Replays that run nothing: a graph that lost its random-number registration would look like this to the
    generator (it does not move)."""
    def replay(self):
        self._pending_first = False
    monkeypatch.setattr(graphs._EmulatedGraph, "replay", replay)


def test_a_replay_that_leaves_the_generator_still_is_caught(monkeypatch):
    _broken_replays(monkeypatch)
    m, _ = _pair("gan", "ring8", {})
    runner = graphs.StepGraphs(m, "emulate", lambda b, s: m.train_step(b, s))
    batch = get_dataset("ring8").train[:16]
    with pytest.raises(graphs.ReplayCheckFailed, match="random-number generator"):
        for step in range(1, graphs.WARMUP + 3):
            runner.step(batch, step)


def test_graphs_auto_falls_back_to_eager_steps_when_a_check_fails(monkeypatch):
    _broken_replays(monkeypatch)
    m, _ = _pair("gan", "ring8", {})
    told: list[str] = []
    runner = graphs.StepGraphs(m, "emulate", lambda b, s: m.train_step(b, s), strict=False, on_fallback=told.append)
    batch = get_dataset("ring8").train[:16]
    for step in range(1, 9):
        before = m.rng.get_state()
        runner.step(batch, step)
        if runner.fallback and step > graphs.WARMUP + 2:
            assert not torch.equal(before, m.rng.get_state())  # the eager steps after it draw again
    assert "random-number generator" in runner.fallback and not runner.graphs
    assert told == [runner.fallback] and runner.summary()["eager_because"] == runner.fallback
    assert runner.eager_steps == 8 - 2  # the capture's step and the one checked were replays; the rest eager


@cuda
def test_cuda_graph_of_a_deterministic_step_equals_eager_to_float_tolerance():
    """A step without random numbers (least squares with fused Adam, a learning-rate tensor, an EMA-like lerp):
    replayed from a CUDA graph it must give the eager weights to float tolerance."""
    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(0)
    x, y = torch.randn(256, 16, device=dev, generator=g), torch.randn(256, 1, device=dev, generator=g)

    def build():
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1)).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=1e-2, fused=True)
        avg = [p.detach().clone() for p in net.parameters()]
        return net, opt, avg

    class Tiny:
        name, rng, device = "tiny", None, dev
        optimizers: dict = {}

        def __init__(self, net, opt, avg):
            self.net, self.opt, self.avg = net, opt, avg
            self.optimizers = {"net": opt}

        def step_kind(self, step):
            return "step"

        def replayed(self, kind):
            pass

        def extra_state(self):
            return {}

        def train_step(self, batch, step):
            self.opt.zero_grad(set_to_none=True)
            loss = (self.net(batch) - y).square().mean()
            loss.backward()
            self.opt.step()
            with torch.no_grad():
                for a, p in zip(self.avg, self.net.parameters()):
                    a.lerp_(p, 0.1)
            return {"loss": loss.detach()}

    eager, graphed = Tiny(*build()), Tiny(*build())
    graphs.prepare(graphed, "cuda", tensor_lrs=True)
    runner = graphs.StepGraphs(graphed, "cuda", graphed.train_step)
    for step in range(1, 51):
        eager.train_step(x, step)
        runner.step(x, step)
    assert runner.replayed_steps >= 45
    for a, b in zip(list(eager.net.parameters()) + eager.avg, list(graphed.net.parameters()) + graphed.avg):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@cuda
def test_cuda_graphs_train_gan_as_well_as_eager(tmp_path):
    """In distribution: a GAN on ring8 trained with graphs covers the modes an eager one does."""
    kw = dict(device="cuda", steps=1500, eval_samples=2000, lr_schedule="constant", ema=0.0)
    a = _trained(tmp_path, "gan", "off", out="eager", **kw).summary["metrics"]
    b = _trained(tmp_path, "gan", "on", out="graphs", **kw).summary["metrics"]
    assert b["modes"] >= a["modes"] - 1 and b["hq"] >= 0.5 * a["hq"]
