"""Placement resolved once (ebmlab.placement): the rules for device, threads, data on the device, precision and
capture, what the run record states, and the refusals that come before anything is written."""

import json

import pytest
import torch

import ebmlab
from ebmlab.config import RunConfig, resolve_config
from ebmlab.data import get_dataset
from ebmlab.errors import EbmlabError
from ebmlab.placement import Placement, device_name
from ebmlab.testing import build


def test_a_toy_run_on_the_cpu():
    keep = torch.get_num_threads()
    try:
        p = Placement.resolve(RunConfig(device="cpu"), get_dataset("ring8"))
        assert p.device == torch.device("cpu") and p.threads == 1 == torch.get_num_threads()  # 1 thread on 2D toys
        assert (p.processes, p.rank, p.main, p.data_on_device, p.pin, p.graphs) == (1, 0, True, False, False, None)
        assert not p.captured
        # threads=N is applied; an image set keeps torch's setting when threads=0
        assert Placement.resolve(RunConfig(device="cpu", threads=2), get_dataset("digits")).threads == 2
    finally:
        torch.set_num_threads(keep)


def test_auto_is_one_rule_for_training_and_inference():
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert device_name("auto") == want
    assert Placement.for_inference(None).device.type == want == Placement.for_inference("auto").device.type


def test_channels_last_applies_to_images_only():
    rc = RunConfig(device="cpu", channels_last=True, precision="bf16")
    assert Placement.resolve(rc, get_dataset("digits")).channels_last
    assert not Placement.resolve(rc, get_dataset("ring8")).channels_last


def test_a_cpu_run_flushes_subnormals_unless_told_not_to(tmp_path):
    """flush_denormal (default on): during a CPU run a subnormal float is zero (x86's FTZ/DAZ), the placement line
    and the run record say so; off keeps IEEE subnormals, even after a run that flushed them in this process."""
    tiny = torch.tensor([1e-39])  # subnormal in float32 (the smallest normal is 1.18e-38)
    assert float(tiny * 1.0) > 0  # PyTorch's default (conftest resets it after each test)
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU has no flush-to-zero (torch.set_flush_denormal returns False)")
    p = Placement.resolve(RunConfig(device="cpu"), get_dataset("ring8"))
    assert p.flush_denormal and float(tiny * 1.0) == 0 and "subnormals flushed" in p.describe()
    off = Placement.resolve(RunConfig(device="cpu", flush_denormal=False), get_dataset("ring8"))
    assert not off.flush_denormal and float(tiny * 1.0) > 0 and "subnormals" not in off.describe()
    ebmlab.train("gan", "ring8", out=tmp_path / "r", progress=False,
                 overrides={"steps": 2, "eval": "none", "loggers": "", "plots": False})
    assert json.loads((tmp_path / "r" / "run.json").read_text())["sessions"][-1]["flush_denormal"] is True
    # a run loaded for sampling or evaluation computes in its own mode, whatever the process had
    ebmlab.train("gan", "ring8", out=tmp_path / "kept", progress=False,
                 overrides={"steps": 2, "eval": "none", "loggers": "", "plots": False, "flush_denormal": False})
    for run, flushed in (("r", True), ("kept", False)):
        torch.set_flush_denormal(not flushed)
        ebmlab.load_run(tmp_path / run, device="cpu")
        assert (float(tiny * 1.0) == 0) is flushed


def test_emulated_capture_and_the_methods_word_on_it():
    p = Placement.resolve(RunConfig(device="cpu", graphs="emulate"), get_dataset("ring8"))
    gan = p.for_method(build("gan"))
    assert gan.graphs == "emulate" and gan.captured and gan.eager_because is None
    flow = p.for_method(build("kale", base="flow", flow_layers=2, flow_hidden=(8,)))
    assert flow.captured  # every method and setting is capturable
    blocked = build("gan")
    blocked.capture_blocker = lambda: "its step reads a tensor on the host"  # a method that says why it cannot be
    eager = p.for_method(blocked)
    assert not eager.captured and "reads a tensor" in eager.eager_because
    assert "eager (" in eager.describe() and "graphs=emulate" in gan.describe()


def test_bf16_autocasts_the_step_and_fp32_does_not():
    x = torch.randn(4, 4)
    p = Placement(device=torch.device("cpu"), threads=1, precision="bf16")
    with p.autocast():
        assert (x @ x).dtype == torch.bfloat16
    with Placement(device=torch.device("cpu"), threads=1).autocast():
        assert (x @ x).dtype == torch.float32


def test_refusals_come_before_anything_is_written(tmp_path, monkeypatch):
    if not torch.cuda.is_available():
        with pytest.raises(EbmlabError, match="CUDA is not available"):
            ebmlab.train("gan", "ring8", out=tmp_path / "a", overrides={"device": "cuda", "steps": 2},
                         progress=False)
        assert not (tmp_path / "a").exists()
    with pytest.raises(EbmlabError, match="DataLoader workers"):
        Placement.resolve(RunConfig(device="cpu", data_on_device="on", num_workers=2), get_dataset("digits"))


def test_the_run_record_states_the_placement(tmp_path):
    res = ebmlab.train("gan", "ring8", out=tmp_path / "r", progress=False,
                       overrides={"steps": 3, "eval_samples": 50, "plots": False, "tensorboard": False,
                                  "eval_density": False, "graphs": "emulate"})
    s = json.loads((res.run_dir / "run.json").read_text())["sessions"][-1]
    assert {k: s[k] for k in ("device", "threads", "processes", "data_on_device", "precision", "channels_last",
                              "pinned")} == {"device": "cpu", "threads": 1, "processes": 1, "data_on_device": False,
                                             "precision": "fp32", "channels_last": False, "pinned": False}
    assert s["graphs"]["backend"] == "emulate" and s["graphs"]["replayed_steps"] + s["graphs"]["eager_steps"] == 3
    cfg = resolve_config("gan", "ring8")
    assert cfg.run.device == "auto"  # the option as given; the record says where it ran
