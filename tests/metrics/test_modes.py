import math

import pytest
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


# --- the noise floor: what uniform noise on the box scores under the same protocol --------------------------------
@pytest.mark.parametrize("name", ["ring8", "grid25", "grid100", "ring8_lbt"])
def test_noise_floor_is_the_covered_area_of_the_box(name):
    """Known answer: a uniform point on the box [lo, hi]² is high quality with probability p = K·π(3σ)²/(hi − lo)²
    (every 3σ disc lies inside the box and none overlap), and a mode is missed by n points with probability
    (1 − p/K)^n, so noise captures K(1 − (1 − p/K)^n) modes on average. The floor averages 5 draws of n = 2500:
    HQ within 4 binomial standard errors of p; modes within 4 standard errors (the occupancy count's variance is
    at most the binomial K·q(1 − q), q the chance a mode is hit). These are large — 67–74 of grid100's 100 modes,
    all 8 of ring8_lbt's — which is why the floor is shown beside every mode count."""
    from ebmlab.metrics import noise_floor

    ds = get_dataset(name)
    n, draws = 2500, 5
    lo, hi = ds.box
    k, r = ds.modes.shape[0], 3 * ds.mode_std
    assert bool(((ds.modes.abs() + r) < hi).all()) and -lo == hi  # discs inside the box
    gaps = torch.cdist(ds.modes.double(), ds.modes.double()) + 1e9 * torch.eye(k, dtype=torch.float64)
    assert float(gaps.min()) > 2 * r  # and disjoint
    p = k * math.pi * r * r / (hi - lo) ** 2
    q = 1 - (1 - p / k) ** n
    f = noise_floor(ds, n)["noise_floor"]
    assert abs(f["hq"] - p) < 4 * math.sqrt(p * (1 - p) / (n * draws))
    assert abs(f["modes"] - k * q) < 4 * math.sqrt(k * q * (1 - q) / draws) + 1e-9
    assert f["n_modes_total"] == k and 0 < f["w1"] and f["mode_kl"] >= 0


def test_noise_floor_beside_the_results_of_2d_data():
    """A 2D summary carries the floor and `ebmlab eval` prints it as a column with its meaning; vector data have none
    (images have theirs: tests/metrics/test_references.py)."""
    from ebmlab.metrics import noise_floor, real_reference, sample_metrics
    from ebmlab.metrics.evaluators import Vectors
    from ebmlab.present import text_table

    ds = get_dataset("ring8_lbt")
    x = ds.sample(500, generator=torch.Generator().manual_seed(0))
    summary = {"metrics": sample_metrics(x, ds), "real_vs_real": real_reference(ds, 500), **noise_floor(ds, 500)}
    lines = text_table(summary)
    head = next(line for line in lines if "real data" in line)
    assert head.split()[:4] == ["metric", "model", "real", "data"] and "noise" in head.split()
    row = next(line for line in lines if line.split()[0] == "modes")
    assert row.split()[1:4] == ["8", "8", "8"]  # model, real data, and noise: all 8 of ring8_lbt's broad modes
    assert any("uniformly on the data set's box" in line for line in lines)
    assert Vectors().floor(ds, 10) is None and Vectors().collapsed(ds, 10) is None
