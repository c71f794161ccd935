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


def test_ais_on_8bit_images_bounds_the_discrete_nll_of_a_cell_constant_density():
    """A Gaussian energy on 8-bit data of 256 levels in [−1, 1], D = 8. The discrete NLL of the data under the
    model P(x) = ∫_cell exp(−E)/Z is computed directly (product of normal-CDF differences per coordinate); the AIS
    report's nll_ais (energy at dequantised points, shifted by −D·log w) must lie above it by at most the Jensen
    gap, which for cells of width w = 2/255 ≪ s is about D·w²/(24 s²) ≈ 1e-4 nats, plus the AIS error (≤ 0.1, as
    above), and is never below zero on the discrete values."""
    from ebmlab.bounds.discrete import bin_width
    from ebmlab.data.base import DataSpec

    s, shape, levels = 0.5, (2, 2, 2), 256
    spec = DataSpec("image", shape, (-1.0, 1.0), levels)
    w = bin_width(spec.value_range, levels)
    g = torch.Generator().manual_seed(0)

    def quantise(v):
        k = torch.round((v.clamp(-1, 1) + 1) / w)
        return -1 + k * w

    data = SimpleNamespace(shape=shape, spec=spec, train=quantise(torch.randn(2000, *shape, generator=g) * 0.7),
                           test=quantise(torch.randn(500, *shape, generator=g) * s).double())
    rep = ais_report(GaussEnergy(s), data, n_steps=100, n_chains=256)
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(s, dtype=torch.float64))
    t = data.test.flatten(1)
    p_cell = normal.cdf(t + w / 2) - normal.cdf(t - w / 2)
    exact = float(-p_cell.log().sum(1).mean())
    assert exact > 0
    assert rep["nll_ais_T200"] == pytest.approx(exact, abs=0.1)
    assert rep["bpd_ais_T200"] == pytest.approx(rep["nll_ais_T200"] / (8 * math.log(2)))
    assert "dequantised" in rep["ais_note"]
