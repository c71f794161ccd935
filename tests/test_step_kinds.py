"""The step kinds each method declares (``Method.step_kind``) against what its steps actually run: every operation,
the shapes and dtypes of its tensors and its Python numbers, recorded on the CPU by a TorchDispatchMode. Steps of one
declared kind must run identical operation sequences (what one captured CUDA graph would replay); a method that
declares its steps uncapturable must say why, and its steps must indeed differ (a stale declaration fails)."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ebmlab.config import resolve_config
from ebmlab.data import get_dataset
from ebmlab.methods import METHODS
from ebmlab.trainer import build_method

# settings that make every kind of a method occur within a few steps
SETTINGS = {"kale": {"burst_every": 3, "n_critic_burst": 2}, "vgan_vcd": {"reservoir": 40},
            "ebgan_ln": {"hidden": (16, 8), "g_hidden": (16,), "labels": 20, "labelled_batch": 16},
            "lbt_gan": {"warmup_steps": 0}}


class Trace(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: list = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        flat, _ = tree_flatten((args, kwargs or {}))
        self.ops.append((str(func), tuple((tuple(a.shape), a.dtype) if isinstance(a, torch.Tensor)
                                          else repr(a) if isinstance(a, float)  # NaN == NaN as text
                                          else a if isinstance(a, (int, bool, str, type(None)))
                                          else type(a).__name__ for a in flat)))
        return func(*args, **(kwargs or {}))


def _data(name: str) -> str:
    cls = METHODS[name]
    return "digits" if cls.needs_labels else "digits_bin" if cls.data_kinds == ("binary",) else "ring8"


def traces(name: str, data: str, steps: int = 8, **over):
    m = build_method(resolve_config(name, data, overrides={"batch_size": 16, "seed": 0, **SETTINGS.get(name, {}),
                                                           **over}), torch.device("cpu"))
    ds = get_dataset(data)
    g = torch.Generator().manual_seed(0)
    out = []
    for step in range(1, steps + 1):
        kind = m.step_kind(step)
        m.prepare_step(step)  # as the trainer does, outside the step
        t = Trace()
        with t:
            m.train_step(ds.train[torch.randint(0, len(ds.train), (16,), generator=g)], step)
        out.append((kind, t.ops))
    return m, out[1:]  # the first step of a session creates optimizer state


def check(m, recorded):
    kinds = {k for k, _ in recorded}
    if m.capture_blocker() is not None:
        assert kinds == {None}, kinds
        assert len({tuple(ops) for _, ops in recorded}) > 1, f"{m.name} says {m.capture_blocker()!r}, but its steps agree"
        return
    assert None not in kinds
    for kind in kinds:
        same = {tuple(ops) for k, ops in recorded if k == kind}
        assert len(same) == 1, f"{m.name}: steps of kind {kind!r} run different operations"


@pytest.mark.parametrize("name", list(METHODS))
def test_steps_of_one_declared_kind_run_the_same_operations(name):
    m, recorded = traces(name, _data(name))
    check(m, recorded)


@pytest.mark.parametrize("name", ["gan", "kale", "bib", "bib_mi_diff", "vgan_vcd"])
def test_step_kinds_on_images(name):
    m, recorded = traces(name, "digits", steps=6)
    check(m, recorded)


def test_the_kinds_that_occur_are_the_declared_ones():
    _, kale = traces("kale", "ring8")
    assert [k for k, _ in kale] == ["step", "step", "burst", "step", "step", "burst", "step"]
    _, vcd = traces("vgan_vcd", "ring8")  # the reservoir takes 8 transition inputs a step
    assert [k for k, _ in vcd] == ["filling:8", "filling:16", "filling:24", "filling:32", "step", "step", "step"]
    # a constant margin and EBGAN-LN's default decay (a device tensor filled before each step) are both one kind
    for schedule in ("constant", "linear"):
        m, rec = traces("ebgan_ln", "digits", steps=4, margin_schedule=schedule)
        check(m, rec)
        assert {k for k, _ in rec} == {"step"} and m.capture_blocker() is None
