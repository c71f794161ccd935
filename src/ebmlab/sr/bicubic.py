"""``bicubic``: bicubic interpolation, the no-learning baseline (PyTorch's kernel, a = −0.75, half-pixel centres),
clamped to [0, 1]. Its output does not down-sample back to y exactly (the kernel is not the box average's
pseudo-inverse); the benchmark reports that violation beside the other models'."""

from __future__ import annotations

from torch import Tensor

from . import ops
from .base import SRModel


class Bicubic(SRModel):
    """Bicubic interpolation (PyTorch's kernel, a = −0.75), clamped to [0, 1]; no training."""

    name = "bicubic"

    def predict(self, y: Tensor, *, progress: bool = False) -> Tensor:
        return ops.bicubic(y, self.scale)
