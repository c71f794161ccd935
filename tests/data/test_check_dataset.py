"""ebmlab.testing.check_dataset: the data interface checked on the built-in sets a test can afford, and failing on
a data set that breaks it."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ebmlab import data
from ebmlab.data import DATASETS
from ebmlab.data.toy import ToyDataset
from ebmlab.testing import check_dataset


@pytest.mark.parametrize("name", [*DATASETS.own(), "digits", "digits_bin", "stacked_digits"])
def test_built_in_sets_keep_the_interface(name):
    check_dataset(name)


def test_a_broken_data_set_fails(monkeypatch):
    ring = DATASETS["ring8"]

    @dataclasses.dataclass(frozen=True, eq=False)
    class Halves(ToyDataset):  # its training points in float64: not what the methods are given
        @property
        def train(self):
            return super().train.double()

    broken = Halves(*(getattr(ring, f.name) for f in dataclasses.fields(ring)))
    data.register_dataset("broken_ring", broken, source="a test")  # forgotten after the test (tests/conftest.py)
    with pytest.raises(AssertionError, match="broken_ring: train split .*float64"):
        check_dataset("broken_ring")
    assert broken.train.dtype == torch.float64
