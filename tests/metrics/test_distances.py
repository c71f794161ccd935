import torch

from ebmlab.metrics.distances import median_bandwidth, mmd2_unbiased, wasserstein1


def test_w1_known_answers():
    x = torch.randn(300, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    shift = torch.tensor([3.0, 4.0], dtype=torch.float64)
    assert abs(wasserstein1(x, x + shift) - 5.0) < 1e-6  # translation: W1 = |shift| (Euclidean, not squared)
    assert wasserstein1(x, x) < 1e-7  # sqrt of round-off in the cost matrix


def test_mmd_unbiased_is_centred_on_zero_and_detects_a_shift():
    g = torch.Generator().manual_seed(0)
    vals = [mmd2_unbiased(torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g), 1.0) for _ in range(40)]
    mean = sum(vals) / len(vals)
    se = torch.tensor(vals).std().item() / len(vals) ** 0.5
    assert abs(mean) < 4 * se
    assert min(vals) < 0  # unbiased estimator: not clipped
    x, y = torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g) + 1.0
    assert mmd2_unbiased(x, y, median_bandwidth(x)) > 20 * se


def test_median_bandwidth_of_known_points():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    assert abs(median_bandwidth(x) - 2.0) < 1e-12
