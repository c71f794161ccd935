"""``mse``: pixel regression min_Θ Σ‖f(y_i; Θ) − x_i‖² (the baseline of Bruna et al.), f a CNN on the
low-resolution image (:class:`~ebmlab.sr.base.UpNet`) plus the bicubic estimate as a skip connection. Its optimum
is the conditional mean E[x | y], which averages the plausible high-frequency details away: the blur that the
``stats`` model is meant to avoid. Adam, constant learning rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from . import ops
from .base import SRModel, UpNet, chunked


@dataclass(frozen=True)
class MSEConfig:
    width: int = 64
    depth: int = 6
    lr: float = 1e-3
    batch_size: int = 64
    OPTIONS: ClassVar[dict[str, tuple[str, str]]] = {  # range kind (ebmlab.options) and meaning of each option
        "width": ("int1", "channels of the low-resolution CNN"),
        "depth": ("int1", "3×3 convolutions of the low-resolution CNN"),
        "lr": ("pos", "Adam learning rate"),
        "batch_size": ("int1", "high-resolution crops per training step"),
    }


class MSE(SRModel):
    name = "mse"
    trainable = True
    Config = MSEConfig

    def __init__(self, scale: int, config: MSEConfig | None = None):
        super().__init__(scale, config)
        o = self.options
        self.net = UpNet(1, scale, o["width"], o["depth"])
        self.opt = torch.optim.Adam(self.net.parameters(), lr=o["lr"])

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt": self.opt}

    def forward(self, y: Tensor) -> Tensor:
        return ops.bicubic(y, self.scale) + self.net(y)

    def train_step(self, x: Tensor, step: int) -> dict[str, float]:
        y = ops.down(x, self.scale)
        loss = ((self(y) - x) ** 2).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"mse": float(loss.detach())}

    @torch.no_grad()
    def predict(self, y: Tensor, *, progress: bool = False) -> Tensor:
        return chunked(self, y, progress=progress, desc="MSE network").clamp(0, 1)
