"""Counting host reads of tensor values: calls that need a value on the host (item, bool, float, int, index, tolist,
numpy, a copy to the CPU), a data-dependent shape (nonzero) or, on CUDA, a solver's status (``CUDA_STATUS_CHECKS``).
On a GPU each is a device → host wait, and none may happen inside a step that is to be captured in a CUDA graph.
Used by the tests and the benchmarks that check training steps for them. ``scalar_like`` makes a number a device
tensor without the other kind of wait, a host → device copy."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

HOST_READS = frozenset({"item", "__bool__", "__float__", "__int__", "__index__", "tolist", "numpy", "nonzero", "cpu"})
# Linear algebra whose CUDA implementation reads the solver's status (info) on the host to raise its errors — a wait
# for the stream on a GPU, though not on the CPU (`torch.linalg.svdvals` failed a CUDA graph capture so on an H100).
# Their `_ex` forms and LU-based det/slogdet do not check, so they are not listed.
CUDA_STATUS_CHECKS = frozenset({"linalg_svd", "linalg_svdvals", "svd", "linalg_eigh", "linalg_eigvalsh", "linalg_eig",
                                "linalg_eigvals", "linalg_cholesky", "cholesky", "linalg_inv", "inverse",
                                "linalg_solve"})


class CountHostReads(TorchFunctionMode):
    """``with CountHostReads() as c: ...`` counts host reads by "name at file:line" in ``c.where``. torch.optim's
    reads of its per-parameter step counters are not counted: they live on the CPU even for GPU parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.where: Counter[str] = Counter()

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = getattr(func, "__name__", "")
        if name in HOST_READS or name in CUDA_STATUS_CHECKS:
            frame = sys._getframe(1)
            code = frame.f_code
            if "torch/optim" not in code.co_filename:
                self.where[f"{name} at {code.co_filename.split('ebmlab/')[-1]}:{frame.f_lineno}"] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.where.values())


def scalar_like(value: float | Tensor, like: Tensor) -> Tensor:
    """``value`` with ``like``'s dtype and device: a number as a 0-d tensor filled on the device (``torch.tensor`` or
    ``torch.as_tensor`` of a number copies it from the host and waits for the stream, which a training step
    captured in a CUDA graph cannot do), a tensor converted where it is."""
    if isinstance(value, Tensor):
        return value.to(dtype=like.dtype, device=like.device)
    return torch.full((), float(value), dtype=like.dtype, device=like.device)
