"""No method's training step reads a tensor's value on the host: on a GPU each such read waits for the device and
stops a step from being captured in a CUDA graph. Counted on the CPU, in CI, with a TorchFunctionMode that sees every
call that needs a value or a data-dependent shape (``ebmlab.syncs``)."""

from __future__ import annotations

import pytest
import torch

from ebmlab.config import resolve_config
from ebmlab.data import get_dataset
from ebmlab.methods import METHODS
from ebmlab.syncs import CountHostReads
from ebmlab.trainer import build_method

SMALL = {"ebgan_ln": {"hidden": (16, 8), "g_hidden": (16,), "labels": 20, "labelled_batch": 16}}


def test_the_counter_sees_a_host_read():
    with CountHostReads() as c:
        x = torch.ones(3)
        if (x > 0).any():
            float(x.sum())
        x.nonzero()
        torch.linalg.svdvals(torch.eye(2))  # no wait on the CPU; on CUDA the solver's status is read on the host
        torch.linalg.slogdet(torch.eye(2))  # LU without a status check: not counted
    assert sum(c.where.values()) == 4, c.where


def _data(name: str) -> list[str]:
    cls = METHODS[name]
    if cls.needs_labels:
        return ["digits"]
    if cls.data_kinds == ("binary",):
        return ["digits_bin"]
    return ["ring8", "digits"]  # 2D (exact Jacobians) and images (LOBPCG, conv nets)


# options that take another path through a step
VARIANTS = [("bib", "digits", {"share_jacobian": True})]


@pytest.mark.parametrize("name, data, over", [(n, d, {}) for n in METHODS for d in _data(n)] + VARIANTS)
def test_training_steps_make_no_host_synchronisation(name, data, over):
    cfg = resolve_config(name, data, overrides={"batch_size": 16, "seed": 0, **SMALL.get(name, {}), **over})
    m = build_method(cfg, torch.device("cpu"))
    ds = get_dataset(data)
    g = torch.Generator().manual_seed(0)
    m.train_step(ds.train[torch.randint(0, len(ds.train), (16,), generator=g)], 1)  # lazy set-up outside the count
    with CountHostReads() as c:
        for step in (2, 3):
            m.train_step(ds.train[torch.randint(0, len(ds.train), (16,), generator=g)], step)
    assert not c.where, f"{name} on {data}: {dict(c.where)}"
