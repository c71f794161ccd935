"""AIS log Z of an energy on image-shaped data against a closed form (a Gaussian energy, D = 8)."""

import math
from types import SimpleNamespace

import pytest
import torch

from ebmlab.metrics.likelihood import ais_report


class GaussEnergy:
    has_energy = True

    def __init__(self, s: float):
        self.s = s

    def energy(self, x):
        return 0.5 * (x.flatten(1).double() ** 2).sum(1) / self.s**2

    def train(self, mode=True):
        pass


def test_ais_on_image_shaped_gaussian_energy():
    s, shape = 0.5, (2, 2, 2)
    g = torch.Generator().manual_seed(0)
    data = SimpleNamespace(shape=shape, train=torch.randn(2000, *shape, generator=g) * 0.7,
                           test=torch.randn(500, *shape, generator=g) * s)
    rep = ais_report(GaussEnergy(s), data, n_steps=100, n_chains=256)
    want = 4 * math.log(2 * math.pi * s**2)  # log Z = (D/2) log(2πs²), D = 8
    # the base N(0, 0.7²) covers the target: the estimate's spread over 256 chains is a few hundredths of a nat
    assert rep["ais_log_z_T200"] == pytest.approx(want, abs=0.1)
    assert rep["ais_log_z_T100"] == pytest.approx(want, abs=0.15)
    assert rep["nll_ais_T200"] == pytest.approx(float(GaussEnergy(s).energy(data.test).mean()) + rep["ais_log_z_T200"])
