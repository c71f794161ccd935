"""A diagonal-Gaussian encoder q(z | x) = N(mu(x), diag exp(logvar(x))): an MLP with 2·d outputs.

Architecture only; it is the ``encoder`` callable of ``ebmlab.bounds.mi`` (x → (mu, logvar)).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .mlp import mlp


class GaussianEncoder(nn.Module):
    def __init__(self, data_dim: int, z_dim: int, hidden: tuple[int, ...] = (100, 100), *, act: str = "prelu",
                 init_logvar: float = 0.0):
        super().__init__()
        self.z_dim = z_dim
        self.net = mlp(data_dim, hidden, 2 * z_dim, act=act)
        with torch.no_grad():  # start from a chosen posterior width (the weights add a small spread)
            self.net[-1].bias[z_dim:].fill_(init_logvar)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = self.net(x.reshape(x.shape[0], -1))
        return out[:, : self.z_dim], out[:, self.z_dim:]
