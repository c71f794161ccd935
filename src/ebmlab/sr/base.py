"""The interface every super-resolution model implements, and the up-sampling CNN shared by ``mse`` and ``stats``.

A model is an ``nn.Module`` holding its scale and its options — a frozen ``Config`` dataclass beside the class,
with each option's range and meaning in the Config's ``OPTIONS`` table, coerced and checked by the same machinery
as every method's options (``ebmlab.config.apply_overrides``, ``ebmlab.options.validate``; :func:`make_config`):
``fit(data)`` does whatever needs no gradient steps
(λ search, feature normalisation), ``train_step(x, step)`` one optimisation step on a batch of high-resolution
images (only ``trainable`` models), ``predict(y)`` the estimate for low-resolution images ``y``. The run
directory, resume, progress and evaluation live in :mod:`ebmlab.sr.api` and know nothing about the losses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..config import apply_overrides, to_dict
from ..options import validate


@dataclass(frozen=True)
class NoOptions:
    OPTIONS: ClassVar[dict[str, tuple[str, str]]] = {}


class SRModel(nn.Module):
    name = "base"
    trainable = False
    Config: ClassVar[type] = NoOptions

    def __init__(self, scale: int, config: Any = None):
        super().__init__()
        self.scale = scale
        self.config = config if config is not None else self.Config()
        self.options: dict[str, Any] = to_dict(self.config)  # the values, as saved in the run's config.json

    def fit(self, data, progress: bool = False) -> dict[str, Any]:
        return {}

    def train_step(self, x: Tensor, step: int) -> dict[str, float]:
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {}

    def predict(self, y: Tensor, *, progress: bool = False) -> Tensor:
        """The high-resolution estimate of every low-resolution image of ``y`` [n, 1, h, w]; ``progress``: a bar
        with the time left on standard error."""
        raise NotImplementedError


def make_config(cls: type[SRModel], options: dict[str, Any] | None) -> Any:
    """The model's Config from ``key=value`` strings or saved values: unknown names, wrong types and values out of
    range are refused with the same messages as a method's options."""
    cfg = apply_overrides(cls.Config(), dict(options or {}), what=f"super-resolution model {cls.name}")
    validate(cfg, method=cls, what=f"{cls.name} options")
    return cfg


class UpNet(nn.Module):
    """Low-resolution trunk (``depth`` 3×3 convolutions of ``width`` channels, ReLU) followed by a 3×3 convolution
    to ``out_channels · r²`` channels and a pixel shuffle by r: [b, 1, h, w] → [b, out_channels, r·h, r·w].
    Working at the low resolution keeps it cheap (ESPCN, Shi et al. 2016); the caller adds a skip connection."""

    def __init__(self, out_channels: int, r: int, width: int = 64, depth: int = 6):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, width, 3, padding=1, padding_mode="replicate"), nn.ReLU()]
        for _ in range(depth - 1):
            layers += [nn.Conv2d(width, width, 3, padding=1, padding_mode="replicate"), nn.ReLU()]
        layers += [nn.Conv2d(width, out_channels * r * r, 3, padding=1, padding_mode="replicate"), nn.PixelShuffle(r)]
        self.net = nn.Sequential(*layers)
        nn.init.zeros_(layers[-2].weight)  # start at the skip connection's estimate
        nn.init.zeros_(layers[-2].bias)

    def forward(self, y: Tensor) -> Tensor:
        return self.net(y * 2 - 1)


def chunked(fn, y: Tensor, chunk: int = 256, *, progress: bool = False, desc: str = "images") -> Tensor:
    """``fn`` on blocks of ``chunk`` images, concatenated; ``progress``: a bar over the images."""
    import sys

    from tqdm.auto import tqdm

    out = []
    with tqdm(total=len(y), disable=not progress, desc=desc, unit="image", file=sys.stderr, leave=False) as bar:
        for i in range(0, len(y), chunk):
            out.append(fn(y[i:i + chunk]))
            bar.update(len(out[-1]))
    return torch.cat(out)
