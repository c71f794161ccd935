"""The semi-supervised protocol: balanced label subsets by seed, the ρ-weighted augmentation actually used."""

import numpy as np
import pytest
import torch

from ebmlab.data import get_dataset
from ebmlab.errors import EbmlabError
from ebmlab.semisup import balanced_subset, semisup_table, train_and_test


def test_balanced_subsets_are_balanced_distinct_and_reproducible():
    y = np.repeat(np.arange(10), 50)
    a, b, c = balanced_subset(y, 100, 10, 0), balanced_subset(y, 100, 10, 0), balanced_subset(y, 100, 10, 1)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert len(set(a)) == 100 and np.all(np.bincount(y[a]) == 10)
    with pytest.raises(EbmlabError, match="multiple of 10"):
        balanced_subset(y, 105, 10, 0)
    with pytest.raises(EbmlabError, match="fewer than"):
        balanced_subset(y, 1000, 10, 0)


def test_augmentation_enters_the_loss_only_with_rho():
    ds = get_dataset("digits")
    x, y = ds.train[:200].float(), torch.as_tensor(np.asarray(ds.arrays.train_y)[:200], dtype=torch.long)
    xt, yt = ds.test[:300].float(), torch.as_tensor(np.asarray(ds.arrays.test_y)[:300], dtype=torch.long)
    calls = []

    def noise(xb, g):  # an "augmentation" that swaps images within the batch (wrong labels): with weight it hurts
        calls.append(len(xb))
        return xb.roll(1, 0)
    base = train_and_test(x, y, xt, yt, 10, steps=100, seed=0)
    assert not calls
    same = train_and_test(x, y, xt, yt, 10, steps=100, seed=0, rho=0.0, augment=noise)
    assert same == base and not calls  # ρ = 0 is exactly the baseline
    hurt = train_and_test(x, y, xt, yt, 10, steps=100, seed=0, rho=5.0, augment=noise)
    assert len(calls) == 100 and hurt > base + 0.05
    assert base < 0.3  # the baseline learns (digits, 200 labels)


def test_rho_without_an_augmenting_run_is_refused():
    with pytest.raises(EbmlabError, match="needs --run"):
        semisup_table(get_dataset("digits"), labels=100, rhos=(0.0, 0.1), seeds=1, steps=1)
    with pytest.raises(EbmlabError, match="labelled images"):
        semisup_table(get_dataset("ring8"), labels=100, rhos=(0.0,), seeds=1, steps=1)
