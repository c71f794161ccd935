"""The training split held on the device (run option data_on_device): the same batches, in the same order, with the
same exact resume, as the host path — checked on the CPU device, where every scheme must agree bit for bit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import ebmlab
from ebmlab.data import get_dataset
from ebmlab.data.batches import make_batches
from ebmlab.errors import EbmlabError


@pytest.fixture
def float_vectors(tmp_path):
    p = tmp_path / "v.npz"
    np.savez(p, x=np.random.default_rng(0).normal(size=(300, 5)).astype(np.float32) * 3 + 1)
    return str(p)


@pytest.mark.parametrize("data, scheme", [("digits", "epochs"), ("digits_dynbin", "epochs"), ("digits_bin", "epochs"),
                                          ("vectors", "epochs"), ("ring8", "iid"), ("ring8", "balanced")])
def test_device_batches_equal_host_batches_across_epochs_and_after_a_resume(data, scheme, float_vectors):
    ds = get_dataset(float_vectors if data == "vectors" else data)
    b = 64
    steps = 2 * (ds.n_train // b) + 3 if scheme == "epochs" else 40  # across two epoch boundaries
    host = make_batches(ds, scheme, b, 7)
    dev = make_batches(ds, scheme, b, 7)
    dev.on_device(torch.device("cpu"))
    a = list(host.stream(0, steps))
    d = list(dev.stream(0, steps))
    assert len(a) == len(d) == steps
    assert all(torch.equal(x, y) for x, y in zip(a, d))
    if data.startswith("digits") and data != "digits_bin":
        assert dev._raw is not None and dev._raw.dtype == (torch.uint8 if scheme == "epochs" else torch.float32)
    # exact resume: a new object, started at step 10 (with the saved state of the stateful schemes)
    again = make_batches(ds, scheme, b, 7)
    again.on_device(torch.device("cpu"))
    if scheme != "epochs":
        first = make_batches(ds, scheme, b, 7)
        first.on_device(torch.device("cpu"))
        for _ in first.stream(0, 10):
            pass
        again.load_state_dict(first.state_dict())
    assert all(torch.equal(x, y) for x, y in zip(again.stream(10, steps), d[10:]))


def test_uint8_images_are_held_as_uint8_and_counted_so():
    ds = get_dataset("digits")
    raw, enc = ds.device_split(torch.device("cpu"))
    assert raw.dtype == torch.uint8 and ds.device_bytes() == raw.numel()
    assert torch.equal(enc(raw[:5]), ds.train[:5])


def test_a_run_on_the_device_trains_exactly_as_one_from_the_host(tmp_path):
    over = {"steps": 6, "batch_size": 32, "eval_samples": 50, "loggers": "", "plots": False, "width": 8,
            "log_every": 1, "eval_density": False}
    runs = {}
    for mode in ("off", "on", "auto", "off2"):
        ebmlab.train("gan", "digits", out=tmp_path / mode, progress=False, overrides={**over, "data_on_device": mode.rstrip("2")})
        lines = [json.loads(ln) for ln in (tmp_path / mode / "metrics.jsonl").read_text().splitlines()]
        runs[mode] = [{k: v for k, v in r.items() if k != "steps_per_s"} for r in lines if r["kind"] == "train"]
        rec = json.loads((tmp_path / mode / "run.json").read_text())["sessions"][-1]
        assert rec["data_on_device"] is (mode == "on")  # auto: off on a CPU (the arrays are in memory already)
    assert runs["on"] == runs["off"] == runs["auto"]


def test_data_on_device_with_worker_processes_is_refused(tmp_path):
    with pytest.raises(EbmlabError, match="num_workers=0"):
        ebmlab.train("gan", "digits", out=tmp_path / "r", progress=False,
                     overrides={"steps": 2, "data_on_device": "on", "num_workers": 2})


def test_the_cuda_device_is_named_with_its_index(monkeypatch):
    """Batches held on the GPU are on "cuda:0", and torch.device("cuda") != torch.device("cuda", 0): the trainer,
    seeing them "elsewhere", tried to pin them in host memory and every GPU run with data on the device failed
    (seen on an H100). The trainer's device now carries the index, as the tensors made on it do."""
    from ebmlab import placement

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert torch.device("cuda") != torch.device("cuda", 0)
    assert placement.pick_device("cuda") == torch.device("cuda", 0)
    assert placement.pick_device("auto") == torch.device("cuda", 0)
    assert placement.pick_device("cpu") == torch.device("cpu")
