"""ring4 — four isotropic Gaussians on the unit circle, σ = 0.05: a 2D data set with an exact density, so every
2D metric of ebmlab (mode coverage, exact NLL by quadrature, the noise floor) applies to it."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ebmlab.data.toy import ToyDataset

STD = 0.05


def _means() -> Tensor:
    k = torch.arange(4, dtype=torch.float64)
    return torch.stack([torch.cos(2 * math.pi * k / 4), torch.sin(2 * math.pi * k / 4)], 1)


def _sample(n: int, generator: torch.Generator) -> Tensor:
    means = _means()
    idx = torch.randint(0, len(means), (n,), generator=generator)
    return means[idx] + STD * torch.randn(n, 2, generator=generator, dtype=torch.float64)


def _log_prob(x: Tensor) -> Tensor:
    d2 = ((x[:, None, :] - _means().to(x)[None]) ** 2).sum(-1)
    return torch.logsumexp(-d2 / (2 * STD**2), 1) - math.log(4 * 2 * math.pi * STD**2)


def ring4() -> ToyDataset:
    """The data set (built when ebmlab first asks for it)."""
    return ToyDataset("ring4", "ring of 4 Gaussians, radius 1, std 0.05 (example plugin)", (-1.5, 1.5), _sample,
                      _log_prob, _means().float(), STD,
                      closed_form_entropy=math.log(4) + math.log(2 * math.pi * math.e * STD**2))
