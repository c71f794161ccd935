"""Image results beside reference sets scored at the same count — uniform noise and a collapsed set (one training
image repeated) — and the warning when a set scores above the real data on precision or density with recall near
zero (all-black images on Fashion-MNIST got precision 100 % and density 1.2, above the real data, unflagged)."""

import numpy as np
import pytest
import torch

import ebmlab
from ebmlab.data import get_dataset
from ebmlab.metrics.images import reference_set
from ebmlab.present import collapse_warnings, text_table


def test_reference_sets_are_what_they_say():
    ds = get_dataset("digits")
    noise = reference_set(ds, 300, "noise")
    lo, hi = ds.spec.value_range
    assert noise.shape == (300, *ds.shape) and lo <= noise.min() and noise.max() <= hi
    assert noise.std() > 0.3 * (hi - lo) / 2  # spread over the range, not a constant
    assert torch.equal(noise, reference_set(ds, 300, "noise"))  # fixed seed: one reference for every model
    col = reference_set(ds, 300, "collapsed")
    assert torch.equal(col, ds.train[:1].expand(300, *ds.shape))
    binary = reference_set(get_dataset("digits_bin"), 1000, "noise")
    assert set(binary.unique().tolist()) == {0.0, 1.0} and abs(binary.mean().item() - 0.5) < 0.02
    with pytest.raises(ValueError, match="noise or collapsed"):
        reference_set(ds, 3, "black")


def test_the_warning_rule():
    real = {"clf_precision": 0.835, "clf_density": 0.95, "clf_recall": 0.8}
    black = {"clf_precision": 1.0, "clf_density": 1.2, "clf_recall": 0.0}
    w = collapse_warnings(black, real)
    assert len(w) == 2 and "clf_precision" in w[0] and "clf_density" in w[1] and "collapsed" in w[0]
    assert collapse_warnings({**black, "clf_recall": 0.3}, real) == []  # recall not near zero: a model, not collapse
    assert collapse_warnings({**black, "clf_precision": 0.5, "clf_density": 0.5}, real) == []  # not above the data
    assert len(collapse_warnings({"precision": 1.0, "density": 2.0, "recall": 0.01}, {"precision": 0.9,
                                                                                      "density": 1.0})) == 2


def test_an_all_black_set_is_scored_beside_noise_and_collapse_at_the_same_count():
    ds = get_dataset("digits")
    lo = ds.spec.value_range[0]
    black = np.full((400, *ds.shape), lo, np.float32)
    s = ebmlab.score_samples(black, "digits")
    real, noise, col = s["real_vs_real"], s["noise_floor"], s["collapse_floor"]
    # every set scored at the same count (the test split has 297 images)
    counts = {s["metrics"]["n_feature_samples"], real.get("n_feature_samples"), noise["n_feature_samples"],
              col["n_feature_samples"]}
    assert counts == {297}, counts
    lines = "\n".join(text_table(s))
    assert "noise" in lines and "collapsed" in lines
    # the collapsed reference beats the real data on precision while its recall is 0: the rule flags it
    assert col["clf_precision"] > real["clf_precision"] and col["clf_recall"] < 0.05
    assert collapse_warnings(col, real)
    # the black set: never above the real data without a warning
    for name in ("clf_precision", "clf_density"):
        if s["metrics"][name] > real[name]:
            assert f"WARNING — {name}" in lines
    assert s["metrics"]["clf_recall"] < 0.05 and s["metrics"]["clf_fd"] > 10 * real["clf_fd"]


def test_stacked_references_count_modes_over_the_evaluations_draw():
    """A model's stacked modes are counted over 26,000 samples: so are the references'; a set scored at another
    count is told that its mode count is not comparable."""
    ds = get_dataset("stacked_digits")
    black = np.full((26000, *ds.shape), ds.spec.value_range[0], np.float32)
    s = ebmlab.score_samples(black, "stacked_digits", n_compared=500)
    counts = {s["metrics"]["n_mode_samples"], s["noise_floor"]["n_mode_samples"],
              s["collapse_floor"]["n_mode_samples"]}
    assert counts == {26000} and "unequal_counts" not in s["protocol"]
    assert s["collapse_floor"]["modes"] == 1 and s["metrics"]["modes"] == 1
    few = ebmlab.score_samples(black[:3000], "stacked_digits", n_compared=500)
    assert "over 3000" in few["protocol"]["unequal_counts"]
