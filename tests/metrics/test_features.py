"""Known answers for the image metrics: Fréchet distance of Gaussians, KID of identical/equal distributions,
precision/recall/density/coverage on constructed point sets, stacked mode counting on constructed labels."""

import math

import numpy as np
import pytest

from ebmlab.errors import EbmlabError
import torch

from ebmlab.metrics.features import frechet_distance, frechet_distance_gaussians, inception_style_score, kid, prdc
from ebmlab.metrics.images import stacked_mode_counts


def test_frechet_closed_form_for_commuting_covariances():
    # diagonal covariances commute: FD = |μ1 − μ2|² + Σ (σ1_i − σ2_i)²
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert frechet_distance_gaussians(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(want, abs=1e-10)


def test_frechet_non_commuting_against_2x2_formula():
    # for 2×2 SPD A, B: tr((AB)^½) = sqrt(tr(AB) + 2 sqrt(det(AB)))
    a = np.array([[2.0, 0.5], [0.5, 1.0]])
    b = np.array([[1.0, -0.3], [-0.3, 3.0]])
    ab = a @ b
    tr_sqrt = math.sqrt(np.trace(ab) + 2 * math.sqrt(np.linalg.det(ab)))
    want = np.trace(a) + np.trace(b) - 2 * tr_sqrt
    assert frechet_distance_gaussians(np.zeros(2), a, np.zeros(2), b) == pytest.approx(want, abs=1e-10)


def test_frechet_from_samples_converges():
    rng = np.random.default_rng(0)
    n = 200_000
    x = rng.normal(size=(n, 2)) * [1.0, 2.0]
    y = rng.normal(size=(n, 2)) * [1.0, 1.0] + [0.5, 0.0]
    want = 0.25 + (2.0 - 1.0) ** 2
    # sampling error of the moments: O(1/sqrt(n)) ≈ 0.01 here
    assert frechet_distance(x, y) == pytest.approx(want, abs=0.03)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)


def test_kid_zero_for_identical_and_unbiased_for_equal_distributions():
    from ebmlab.metrics.features import _mmd2_poly

    rng = np.random.default_rng(1)
    x = rng.normal(size=(1000, 8))
    # identical sets: the unbiased estimate is (2/m)(mean off-diagonal k − mean diagonal k), O(1/m) from 0
    kxx = (x @ x.T / 8 + 1) ** 3
    off = (kxx.sum() - np.trace(kxx)) / (1000 * 999)
    want = 2 / 1000 * (off - np.trace(kxx) / 1000)
    assert _mmd2_poly(x, x) == pytest.approx(want, abs=1e-10)
    assert abs(want) < 0.05
    # two independent sets from the same law: the unbiased estimate averages to 0 (a biased one is > 0)
    vals = [kid(rng.normal(size=(600, 8)), rng.normal(size=(600, 8)), n_subsets=1, subset_size=300)[0]
            for _ in range(200)]
    m, se = np.mean(vals), np.std(vals) / math.sqrt(len(vals))
    assert abs(m) < 4 * se
    shifted = kid(rng.normal(size=(1000, 8)), rng.normal(size=(1000, 8)) + 1.0, n_subsets=10, subset_size=500)[0]
    assert shifted > 20 * se


def test_kid_error_bar_is_not_collapsed_on_small_sets():
    """With 300 points per set and the default subset size 1000, subsets of all 300 would all be the same set
    (spread ~1e-11). KID uses subsets of 150, and their spread is of the size of the real spread of estimates at
    that size (independent sets drawn afresh), within a factor of 2.5 — an estimate of a standard deviation
    from 100 correlated subsets, so a loose band, but 1e-11 is ~10 orders of magnitude outside it."""
    rng = np.random.default_rng(3)
    _, std, m = kid(rng.normal(size=(300, 8)), rng.normal(size=(300, 8)))
    assert m == 150
    fresh = [kid(rng.normal(size=(300, 8)), rng.normal(size=(300, 8)), n_subsets=1, subset_size=150)[0]
             for _ in range(300)]
    assert np.std(fresh) / 2.5 < std < 2.5 * np.std(fresh)
    with pytest.raises(EbmlabError, match="at least 4"):
        kid(rng.normal(size=(3, 8)), rng.normal(size=(30, 8)))


def test_prdc_constructed_sets():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(400, 3))
    same = prdc(real, real)
    assert same["precision"] == 1.0 and same["recall"] == 1.0 and same["coverage"] == 1.0
    assert same["density"] == pytest.approx(1 + 1 / 5 * 0, abs=0.5)  # each real point sits in ≥ 1 of its own balls
    far = prdc(real, real + 100.0)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    # fakes collapsed onto one half of the real cloud: precision high, recall and coverage about a half
    half = real[real[:, 0] > 0]
    collapsed = prdc(real, half)
    assert collapsed["precision"] == 1.0
    assert 0.3 < collapsed["recall"] < 0.75 and 0.3 < collapsed["coverage"] < 0.75


def test_inception_style_score_bounds():
    k = 10
    onehot = torch.eye(k).repeat(5, 1)  # confident and uniform over classes: score = k
    assert inception_style_score(onehot) == pytest.approx(k, rel=1e-6)
    assert inception_style_score(torch.full((50, k), 1.0 / k)) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("k", [1, 7, 250, 1000])
def test_stacked_mode_counts(k):
    ids = torch.arange(26_000) % k
    labels = torch.stack([ids % 10, (ids // 10) % 10, ids // 100], 1)
    out = stacked_mode_counts(labels)
    assert out["modes"] == k
    # counts as equal as 26,000/k allows: KL(q ‖ U_1000) = log(1000/k) up to the rounding of the counts
    assert out["mode_kl"] == pytest.approx(math.log(1000 / k), abs=0.01)


def test_stacked_confident_modes_ignore_unsure_samples():
    """Samples whose classification is unsure on any channel do not count towards modes_confident: 1000 sure
    samples of 10 modes and 5000 unsure ones spread over all 1000 give modes 1000, modes_confident 10."""
    sure_ids = torch.arange(1000) % 10
    unsure_ids = torch.arange(5000) % 1000
    ids = torch.cat([sure_ids, unsure_ids])
    labels = torch.stack([ids % 10, (ids // 10) % 10, ids // 100], 1)
    conf = torch.cat([torch.full((1000, 3), 0.95), torch.tensor([0.99, 0.5, 0.99]).expand(5000, 3)])
    out = stacked_mode_counts(labels, confidence=conf)
    assert out["modes"] == 1000 and out["modes_confident"] == 10
    assert out["frac_confident"] == pytest.approx(1000 / 6000)
    assert "modes_confident" not in stacked_mode_counts(labels)


def test_in_manifold_is_the_per_sample_precision_test():
    """Real points 0..9 on a line (3-NN radii 2, or 3 at the ends): a sample on a real point is inside, one
    between two real points is inside, one 100 or 50 away is not; the mean over samples is prdc's precision."""
    from ebmlab.metrics.features import prdc
    from ebmlab.metrics.images import in_manifold

    real = torch.arange(10, dtype=torch.float64)[:, None] * torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    fake = torch.tensor([[3.0, 0.0], [4.5, 0.0], [100.0, 0.0], [5.0, 50.0]], dtype=torch.float64)
    inside = in_manifold(fake, real)
    assert inside.tolist() == [True, True, False, False]
    rng = np.random.default_rng(0)
    a, b = torch.as_tensor(rng.normal(size=(200, 4))), torch.as_tensor(rng.normal(size=(150, 4)) + 0.7)
    assert float(in_manifold(b, a).double().mean()) == pytest.approx(prdc(a, b)["precision"], abs=1e-12)
