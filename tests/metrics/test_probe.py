"""The linear probe on constructed features: separable features give zero error, pure noise gives chance."""

import pytest
import torch

from ebmlab.data import get_dataset
from ebmlab.metrics.probe import linear_probe


class FakeMethod:
    device = torch.device("cpu")

    def __init__(self, fn):
        self.fn = fn

    def features(self, x):
        return self.fn(x)

    def train(self, mode=True):
        pass


def test_probe_on_label_encoding_and_on_noise():
    ds = get_dataset("digits")
    lookup = {}
    for x, y in zip(torch.cat([ds.train, ds.test]), torch.cat([ds.train_labels, ds.test_labels])):
        lookup[x.numpy().tobytes()] = int(y)

    def onehot(x):
        return torch.nn.functional.one_hot(torch.tensor([lookup[r.numpy().tobytes()] for r in x]), 10).float()

    assert linear_probe(FakeMethod(onehot), ds)["probe_test_error"] == 0.0
    g = torch.Generator().manual_seed(0)
    noise = linear_probe(FakeMethod(lambda x: torch.randn(len(x), 16, generator=g)), ds)["probe_test_error"]
    # chance is 0.9; with 297 test points the binomial s.e. is 0.017
    assert noise == pytest.approx(0.9, abs=0.08)
    pixels = linear_probe(FakeMethod(lambda x: x.flatten(1)), ds)["probe_test_error"]
    assert pixels < 0.1  # raw 8×8 digits are nearly linearly separable
