"""LBT's toy sets: the means are those of the released code's helpers (Config/toy_data.py), rebuilt here."""

import itertools
import math

import torch

from ebmlab.data import get_dataset


def as_set(points: torch.Tensor) -> set[tuple[float, float]]:
    return {(round(float(a), 9), round(float(b), 9)) for a, b in points}


def test_grid100_means_spacing_and_std():
    # grid_mog(n_mixture=100, std=0.01, space=0.2): (i, j) over range(-9, 10, 2)², times space / 2.
    ref = torch.tensor([[i * 0.1, j * 0.1] for i, j in itertools.product(range(-9, 10, 2), repeat=2)],
                       dtype=torch.float64)
    ds = get_dataset("grid100")
    assert as_set(ds.modes) == as_set(ref) and len(ds.modes) == 100
    assert ds.mode_std == 0.01
    # Every training point lies within 6σ of a mode and the closed-form entropy is log 100 + log(2πeσ²).
    assert float(torch.cdist(ds.train[:5000].double(), ds.modes).min(1).values.max()) < 0.06
    assert math.isclose(ds.entropy, math.log(100) + math.log(2 * math.pi * math.e * 1e-4), rel_tol=1e-12)


def test_ring8_lbt_means_and_std():
    # ring_mog(std=0.1, radius=1): (sin θ, cos θ) for θ = linspace(0, 2π, 8, endpoint=False).
    th = [2 * math.pi * k / 8 for k in range(8)]
    ref = torch.tensor([[math.sin(t), math.cos(t)] for t in th], dtype=torch.float64)
    ds = get_dataset("ring8_lbt")
    assert as_set(ds.modes) == as_set(ref) and ds.mode_std == 0.1
    # Neighbours are 7.7σ apart: the overlap lowers the entropy (by quadrature) slightly, by 3.8e-4 nats, below
    # the separated-mixture value log 8 + log(2πeσ²).
    separated = math.log(8) + math.log(2 * math.pi * math.e * 0.01)
    assert separated - 1e-3 < ds.entropy < separated - 1e-4
