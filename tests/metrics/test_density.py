import math

import pytest
import torch

from ebmlab.data import get_dataset
from ebmlab.data.toy import ring_means
from ebmlab.errors import NonNormalisableError
from ebmlab.metrics.density import density_metrics, entropy_by_quadrature, log_partition


def mixture_energy(means, std):
    def energy(x):
        d2 = torch.cdist(x.double(), means) ** 2
        return -torch.logsumexp(-0.5 * d2 / std**2, dim=1)
    return energy


def test_log_z_of_unnormalised_mixture_matches_closed_form():
    # ring of 8, radius 2, sigma 0.2: Z = 8 * 2*pi*sigma^2  -> log Z = 0.6984 (EVALUATION.md's checked case)
    means, std = ring_means(8, 2.0), 0.2
    q = log_partition(mixture_energy(means, std), (-3.5, 3.5), dtype=torch.float64)
    exact = math.log(8 * 2 * math.pi * std**2)
    assert abs(exact - 0.6984) < 1e-4
    assert abs(q.log_z - exact) < 1e-3
    # sharp modes (sigma 0.01) force refinement of the grid
    q = log_partition(mixture_energy(ring_means(8, 1.0), 0.01), (-1.5, 1.5), dtype=torch.float64)
    assert abs(q.log_z - math.log(8 * 2 * math.pi * 0.01**2)) < 1e-3
    assert q.n >= 512


def test_log_z_counts_mass_outside_the_box():
    # a broad Gaussian (std 1.5) mostly outside a small box [-1, 1]^2: Z = 2*pi*1.5^2
    q = log_partition(lambda x: 0.5 * (x.double() ** 2).sum(1) / 1.5**2, (-2.0, 2.0), dtype=torch.float64)
    assert abs(q.log_z - math.log(2 * math.pi * 1.5**2)) < 1e-3


@pytest.mark.parametrize("energy", [
    lambda x: torch.zeros(len(x), dtype=x.dtype),                 # flat
    lambda x: 0.5 * torch.log1p((x**2).sum(1)),                    # ~ |x|^-1: decays too slowly
    lambda x: -0.1 * (x**2).sum(1),                                # growing density
])
def test_non_normalisable_energies_are_reported(energy):
    with pytest.raises(NonNormalisableError, match="not normalisable"):
        log_partition(energy, (-2.0, 2.0))


def test_non_normalisable_density_metrics_are_labelled_as_restricted_to_the_box():
    ds = get_dataset("ring8")
    out = density_metrics(lambda x: torch.zeros(len(x)), ds)
    assert out["density_status"] == "non_normalisable"
    assert "nll" not in out
    # uniform on the box: log Z = log(area) exactly
    assert abs(out["log_z_box"] - math.log(3.0**2)) < 1e-9


def test_density_metrics_of_the_true_energy_give_zero_kl():
    ds = get_dataset("ring8_wide")
    out = density_metrics(lambda x: -ds.log_prob(x.double()), ds)
    assert out["density_status"] == "ok"
    assert abs(out["log_z"]) < 1e-3
    # test NLL of the true density = entropy up to Monte-Carlo error of 10k test points
    se = float((-ds.log_prob(ds.test.double())).std()) / math.sqrt(len(ds.test))
    assert abs(out["kl"]) < 4 * se + 1e-3
    assert out["tv"] < 1e-3


def test_entropy_quadrature_matches_closed_forms():
    # (the checkerboard's entropy log 8 is exact by construction; its discontinuous edges make the
    # midpoint rule converge only at O(h), so it is left out here)
    for name in ("ring8", "grid25", "banana"):
        ds = get_dataset(name)
        h = entropy_by_quadrature(ds.log_prob, ds.box)
        assert abs(h - ds.entropy) < 1e-4, (name, h, ds.entropy)
