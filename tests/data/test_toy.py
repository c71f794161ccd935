import math

import pytest
import torch

from ebmlab.data import DATASETS, get_dataset
from ebmlab.errors import EbmlabError
from ebmlab.quadrature import grid


@pytest.mark.parametrize("name", list(DATASETS.own()))
def test_log_prob_is_normalised_and_matches_the_sampler(name):
    ds = DATASETS[name]
    # a Riemann sum on the box: for the smooth densities it is within 1e-9 of the integral at 512 points a side
    # (1e-13 at 1024 and 2048, measured: what is left of 1 is the mass outside the box), for the checkerboard, whose
    # squares' edges cut grid cells, its error is of the order of the spacing (4.9e-4 at 2048, 2e-3 at 1024)
    n = 2048 if name == "checkerboard" else 512
    pts, area = grid(ds.box, n, dtype=torch.float64)
    mass = float(ds.log_prob(pts).exp().sum() * area)
    assert abs(mass - 1) < 2e-3, mass
    # E_p[-log p] = H: the sampler and the density agree
    x = ds.sample(20000, generator=torch.Generator().manual_seed(3))
    nll = -ds.log_prob(x)
    assert torch.isfinite(nll).all()
    assert abs(nll.mean().item() - ds.entropy) < 5 * nll.std().item() / math.sqrt(len(x)) + 1e-6


def test_splits_are_fixed_and_disjoint_draws():
    ds = get_dataset("grid25")
    assert ds.train.shape == (100_000, 2) and ds.test.shape == (10_000, 2)
    again = ds.sample(10_000, generator=torch.Generator().manual_seed(4321)).float()
    assert torch.equal(again, ds.test)
    assert not torch.equal(ds.train[:10_000], ds.test)


def test_unknown_data_set_lists_the_valid_ones():
    with pytest.raises(EbmlabError, match="valid data sets: ring8, grid25"):
        get_dataset("ring9")
