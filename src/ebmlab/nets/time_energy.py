"""A time-conditioned energy E(x, t) for diffusion bounds: an MLP whose hidden layers receive a sinusoidal
embedding of t (Vaswani et al. 2017; the transformer position code, as used by DDPM for the diffusion time).

Each hidden layer computes act(W x_prev + U emb(t) + b), so the time shifts every hidden unit. The output may be
divided by a caller-supplied scale s(t) (e.g. the VP noise level σ_t): then ∇_x E(x, t) = ∇_x f(x, t)/s(t)
and the noise prediction σ_t ∇_x E = ∇_x f stays of order one at every t, while E(·, t_min) still has the
large curvature that sharp data need. Architecture only; the losses live in ``ebmlab.bounds.diffusion``.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

from .mlp import _act


def sinusoidal_embedding(t: Tensor, dim: int, *, scale: float = 1000.0, max_period: float = 10_000.0) -> Tensor:
    """[b] times → [b, dim] features (sin and cos of ``scale``·t at ``dim``/2 geometric frequencies)."""
    if dim < 2 or dim % 2:
        raise ValueError(f"the time embedding needs an even dim ≥ 2, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=t.dtype, device=t.device) / half)
    arg = scale * t.reshape(-1, 1) * freqs
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)


class TimeEnergy(nn.Module):
    """E(x, t): x [b, D], t [b] (or a scalar tensor, broadcast) → [b] nats."""

    def __init__(self, data_dim: int, hidden: tuple[int, ...] = (100, 100), *, emb_dim: int = 32,
                 act: str = "prelu", out_scale: Callable[[Tensor], Tensor] | None = None):
        super().__init__()
        if not hidden:
            raise ValueError("TimeEnergy needs at least one hidden layer")
        self.emb_dim = emb_dim
        self.out_scale = out_scale
        dims = (data_dim,) + tuple(hidden)
        self.x_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.t_layers = nn.ModuleList(nn.Linear(emb_dim, h, bias=False) for h in hidden)
        self.acts = nn.ModuleList(_act(act) for _ in hidden)
        self.out = nn.Linear(hidden[-1], 1)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        t = t.to(x.dtype).expand(x.shape[0]) if t.dim() == 0 else t.to(x.dtype)
        emb = sinusoidal_embedding(t, self.emb_dim)
        h = x
        for lin, tl, act in zip(self.x_layers, self.t_layers, self.acts):
            h = act(lin(h) + tl(emb))
        e = self.out(h).squeeze(1)
        return e if self.out_scale is None else e / self.out_scale(t)
