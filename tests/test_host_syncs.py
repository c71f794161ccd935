"""No method's training step reads a tensor's value on the host: on a GPU each such read waits for the device and
stops a step from being captured in a CUDA graph. Counted on the CPU, in CI, with a TorchFunctionMode that sees every
call that needs a value (item, bool, float, int, index, tolist, numpy) or a data-dependent shape (nonzero)."""

from __future__ import annotations

import sys
from collections import Counter

import pytest
import torch
from torch.overrides import TorchFunctionMode

from ebmlab.config import resolve_config
from ebmlab.data import get_dataset
from ebmlab.methods import METHODS
from ebmlab.trainer import build_method

SYNCS = {"item", "__bool__", "__float__", "__int__", "__index__", "tolist", "numpy", "nonzero"}
SMALL = {"ebgan_ln": {"hidden": (16, 8), "g_hidden": (16,), "labels": 20, "labelled_batch": 16}}


class CountSyncs(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.where: Counter = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in SYNCS:
            frame = sys._getframe(1)
            # torch.optim's per-parameter step counters live on the CPU even for GPU parameters (no device wait)
            if "torch/optim" not in frame.f_code.co_filename and frame.f_code.co_name != "adam_state_from_torch":
                self.where[f"{name} at {frame.f_code.co_filename.split('ebmlab/')[-1]}:{frame.f_lineno}"] += 1
        return func(*args, **(kwargs or {}))


def test_the_counter_sees_a_host_read():
    with CountSyncs() as c:
        x = torch.ones(3)
        if (x > 0).any():
            float(x.sum())
        x.nonzero()
    assert sum(c.where.values()) == 3, c.where


def _data(name: str) -> list[str]:
    cls = METHODS[name]
    if cls.needs_labels:
        return ["digits"]
    if cls.data_kinds == ("binary",):
        return ["digits_bin"]
    return ["ring8", "digits"]  # 2D (exact Jacobians) and images (LOBPCG, conv nets)


@pytest.mark.parametrize("name, data", [(n, d) for n in METHODS for d in _data(n)])
def test_training_steps_make_no_host_synchronisation(name, data):
    cfg = resolve_config(name, data, overrides={"batch_size": 16, "seed": 0, **SMALL.get(name, {})})
    m = build_method(cfg, torch.device("cpu"))
    ds = get_dataset(data)
    g = torch.Generator().manual_seed(0)
    m.train_step(ds.train[torch.randint(0, len(ds.train), (16,), generator=g)], 1)  # lazy set-up outside the count
    with CountSyncs() as c:
        for step in (2, 3):
            m.train_step(ds.train[torch.randint(0, len(ds.train), (16,), generator=g)], step)
    assert not c.where, f"{name} on {data}: {dict(c.where)}"
