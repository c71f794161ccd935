"""Labelled subsets for semi-supervised protocols: k examples, balanced per class, chosen by a stated seed."""

from __future__ import annotations

import numpy as np

from ..errors import EbmlabError


def balanced_subset(labels: np.ndarray, k: int, n_classes: int, seed: int) -> np.ndarray:
    """Indices (sorted) of k training examples, k/n_classes of each class, drawn without replacement by ``seed``."""
    if k < n_classes or k % n_classes:
        raise EbmlabError(f"{k} labels do not split evenly over {n_classes} classes; use a positive multiple of "
                          f"{n_classes}")
    per = k // n_classes
    rng = np.random.default_rng(seed)
    out = []
    for c in range(n_classes):
        idx = np.flatnonzero(labels == c)
        if len(idx) < per:
            raise EbmlabError(f"class {c} has {len(idx)} training examples, fewer than the {per} asked for per class")
        out.append(rng.choice(idx, per, replace=False))
    return np.sort(np.concatenate(out))
