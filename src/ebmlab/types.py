"""The function types the shared maths passes around, in one place (every layer may import it).

An *energy* maps a batch of samples ``x [b, *shape]`` to their unnormalised −log densities ``[b]`` in nats; a
*generator* maps latents ``z [b, d]`` to samples ``[b, *shape]``; a *log-density* is the negative of an energy, in
nats; a *sampler of a distribution* draws ``n`` samples with a given generator. Time-dependent energies
(``bounds.diffusion``) take ``(x, t)``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

EnergyFn = Callable[[Tensor], Tensor]
GeneratorFn = Callable[[Tensor], Tensor]
LogDensityFn = Callable[[Tensor], Tensor]
SampleFn = Callable[[int, torch.Generator], Tensor]
TimeEnergyFn = Callable[[Tensor, Tensor], Tensor]

__all__ = ["EnergyFn", "GeneratorFn", "LogDensityFn", "SampleFn", "TimeEnergyFn"]
