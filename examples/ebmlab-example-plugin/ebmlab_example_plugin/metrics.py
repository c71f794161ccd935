"""mean_dist — the distance between the mean of the samples and the mean of the test data: a metric of every kind
of data, declared with its metadata (a group, a unit, a direction, a meaning) and the function that computes it."""

from __future__ import annotations

import torch
from torch import Tensor

from ebmlab.metadata import Metric


def mean_dist(samples: Tensor, test: Tensor) -> float:
    """‖mean(samples) − mean(test)‖₂ over the flattened samples [n, ...] and test data [m, ...]."""
    a = samples.reshape(len(samples), -1).to(torch.float64).mean(0)
    b = test.reshape(len(test), -1).to(torch.float64).mean(0)
    return float((a - b).norm())


MEAN_DIST = (Metric("samples", "", "↓", "distance between the mean of the samples and that of the test data"),
             mean_dist)
