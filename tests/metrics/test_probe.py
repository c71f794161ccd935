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


def test_the_probe_runs_on_one_thread_and_gives_the_process_its_threads_back():
    """Features and fit on one thread (torch's pool and the BLAS/OpenMP ones): lbfgs stops at its tolerance, where the
    rounding of a thread count's reduction order decided a few test images of a real run; the process's threads are
    restored after."""
    from threadpoolctl import threadpool_info

    seen = []

    def features(x):
        seen.append((torch.get_num_threads(), max(p["num_threads"] for p in threadpool_info())))
        return x.flatten(1)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        linear_probe(FakeMethod(features), get_dataset("digits"))
        assert seen and all(s == (1, 1) for s in seen)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
