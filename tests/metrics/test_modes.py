import math

import torch

from ebmlab.data import get_dataset
from ebmlab.metrics.modes import HQ_CEILING, mode_metrics


def test_true_samples_capture_every_mode_with_the_chi2_hq_rate():
    assert abs(HQ_CEILING - 0.98889) < 1e-5
    for name, k in (("ring8", 8), ("grid25", 25)):
        ds = get_dataset(name)
        x = ds.sample(2500, generator=torch.Generator().manual_seed(0))
        m = mode_metrics(x, ds.modes, ds.mode_std)
        assert m["modes"] == k
        se = math.sqrt(HQ_CEILING * (1 - HQ_CEILING) / 2500)
        assert abs(m["hq"] - HQ_CEILING) < 4 * se, m
        assert m["mode_kl"] < 0.03  # finite-sample histogram noise only


def test_samples_collapsed_onto_k_modes_give_k():
    ds = get_dataset("grid25")
    g = torch.Generator().manual_seed(1)
    for k in (1, 3, 10):
        idx = torch.randint(0, k, (2500,), generator=g)
        x = ds.modes[idx] + ds.mode_std * torch.randn(2500, 2, generator=g, dtype=torch.float64)
        m = mode_metrics(x, ds.modes, ds.mode_std)
        assert m["modes"] == k
        assert abs(m["mode_kl"] - math.log(25 / k)) < 0.05


def test_far_samples_are_not_high_quality():
    ds = get_dataset("ring8")
    m = mode_metrics(torch.zeros(100, 2), ds.modes, ds.mode_std)
    assert m["modes"] == 0 and m["hq"] == 0.0 and m["mode_kl"] is None


def test_ring_has_eight_distinct_modes():
    # the widely copied linspace(0, 2*pi, 8) helper repeats angle 0 == 2*pi and yields only 7 modes
    modes = get_dataset("ring8").modes
    d = torch.cdist(modes, modes) + torch.eye(8) * 10
    assert d.min() > 0.7
