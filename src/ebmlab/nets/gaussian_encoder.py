"""A diagonal-Gaussian encoder q(z | x) = N(mu(x), diag exp(logvar(x))): a critic network with 2·d outputs
(an MLP for vectors, the small conv critic for images; chosen by ``nets.build``).

Architecture only; it is the ``encoder`` callable of ``ebmlab.bounds.mi`` (x → (mu, logvar)).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..data.base import DataSpec


def _last_linear(m: nn.Module) -> nn.Linear:
    last = [mod for mod in m.modules() if isinstance(mod, nn.Linear)]
    return last[-1]


class GaussianEncoder(nn.Module):
    """``data``: the data's :class:`DataSpec`, or an int D for vectors of shape (D,)."""

    def __init__(self, data: DataSpec | int, z_dim: int, hidden: tuple[int, ...] = (100, 100), *, act: str = "prelu",
                 init_logvar: float = 0.0, net: str = "auto", width: int = 32):
        from .build import critic

        super().__init__()
        spec = data if isinstance(data, DataSpec) else DataSpec("vectors", (int(data),))
        self.z_dim = z_dim
        self.net = critic(spec, 2 * z_dim, net=net, hidden=hidden, act=act, width=width)
        with torch.no_grad():  # start from a chosen posterior width (the weights add a small spread)
            _last_linear(self.net).bias[z_dim:].fill_(init_logvar)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = self.net(x)
        return out[:, : self.z_dim], out[:, self.z_dim:]
