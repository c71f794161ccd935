"""How many images to give a convolutional network in one call when thousands are evaluated at once (an
evaluation's classifier features and energies, energy-guided latent chains).

On the CPU a call on thousands of 28×28 images at once makes activations of ~200 MB (2048 × 32 × 28 × 28 floats),
which the allocator maps afresh on every call: the page faults took as much CPU time as the convolutions. Blocks of
128 images keep every activation in memory the allocator reuses — 2–2.5× faster, and the same values, since the
rows of a network in eval mode are independent. Smaller images (8×8 digits) gained nothing and lost a little, and
an accelerator wants large calls; both keep the caller's own size. Measured by ``benchmarks/eval_time_images.py``.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

CPU_IMAGE_ROWS = 128  # images per call on the CPU, for images of MIN_VALUES values or more
MIN_VALUES = 28 * 28


def rows_per_call(values_per_image: int, device: Any) -> int | None:
    """CPU_IMAGE_ROWS for images of at least MIN_VALUES values on the CPU; None (the caller's own size) otherwise."""
    if values_per_image >= MIN_VALUES and torch.device(device).type == "cpu":
        return CPU_IMAGE_ROWS
    return None


def in_blocks(fn: Callable[[Tensor], Tensor], x: Tensor, rows: int | None) -> Tensor:
    """``fn(x)`` computed on blocks of at most ``rows`` rows (None: one call) and concatenated: the same values for
    a row-wise ``fn`` (a network in eval mode)."""
    if rows is None or len(x) <= rows:
        return fn(x)
    return torch.cat([fn(x[i : i + rows]) for i in range(0, len(x), rows)])
