"""2D toy data sets with exact log-densities, fixed train/test splits and their true entropy.

Mode-coverage sets follow the VEEGAN/PacGAN protocol (EVALUATION.md):
- ``ring8``: 8 isotropic Gaussians, means (cos 2πk/8, sin 2πk/8) for k = 0..7, σ = 0.01. The widely copied
  ``linspace(0, 2π, 8)`` helper repeats the first angle and makes only 7 distinct modes; we take
  ``2πk/8`` for k = 0..7 (tested).
- ``grid25``: 25 isotropic Gaussians, means {−4, −2, 0, 2, 4}², σ = 0.05.
Broader sets:
- ``ring8_wide``: ring of radius 2, σ = 0.2 (its unnormalised log Z = log(8·2πσ²) is the AIS check case).
- ``checkerboard``: uniform on the 8 black unit squares of a 4×4 board on [−2, 2]² (entropy log 8).
- ``banana``: x₁ ~ N(0, 1), x₂ | x₁ ~ N(0.5 x₁² − 1, 0.3²) (unit-Jacobian shear, entropy log(2πe·1·0.3)).
- ``aniso3``: three anisotropic Gaussians with unequal weights (0.5, 0.3, 0.2) and rotated covariances.

Every set is deterministic: the train split (``n_train`` points) and the test split (``n_test`` points) are
drawn from fixed seeds that do not depend on a run's seed, so every run and every method sees the same data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

import torch
from torch import Tensor

from .base import DataSpec, Kind

TRAIN_SEED = 1234
TEST_SEED = 4321
LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True, eq=False)
class ToyDataset:
    """A 2D distribution with an exact sampler and log-density.

    ``box`` is a square that holds essentially all of the mass; plots and quadrature start from it.
    ``modes``/``mode_std`` are set for equal-weight isotropic mixtures, where the mode-coverage metrics apply.
    """

    name: str
    description: str
    box: tuple[float, float]
    _sample: Callable[[int, torch.Generator], Tensor] = field(repr=False)
    _log_prob: Callable[[Tensor], Tensor] = field(repr=False)
    modes: Tensor | None = None
    mode_std: float | None = None
    closed_form_entropy: float | None = None
    n_train: int = 100_000
    n_test: int = 10_000
    dim: int = 2

    def sample(self, n: int, *, generator: torch.Generator) -> Tensor:
        """Draw ``n`` exact samples, shape [n, 2], float64."""
        return self._sample(n, generator)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log-density (nats) of x [n, 2]; −inf outside the support. Returns [n] in x's dtype."""
        return self._log_prob(x.to(torch.float64)).to(x.dtype)

    @cached_property
    def train(self) -> Tensor:
        return self.sample(self.n_train, generator=torch.Generator().manual_seed(TRAIN_SEED)).float()

    @cached_property
    def test(self) -> Tensor:
        return self.sample(self.n_test, generator=torch.Generator().manual_seed(TEST_SEED)).float()

    @cached_property
    def entropy(self) -> float:
        """True differential entropy (nats): the floor of any model's test NLL.

        Closed form where one exists; otherwise grid quadrature of −∫ p log p (see ``metrics.density``).
        """
        if self.closed_form_entropy is not None:
            return self.closed_form_entropy
        from ..quadrature import entropy_by_quadrature

        return entropy_by_quadrature(self.log_prob, self.box)

    @property
    def has_modes(self) -> bool:
        return self.modes is not None

    # --- the common data interface (``ebmlab.data.base``) ---
    @property
    def spec(self) -> DataSpec:
        return DataSpec("toy2d", (self.dim,))

    @property
    def kind(self) -> Kind:
        return "toy2d"

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.dim,)

    # the rest of the data interface (``ebmlab.data.base.Dataset``): no labels, files or stacking
    n_classes = None
    train_labels = None
    test_labels = None
    binarize = None
    stacked = False
    base = None
    data_dir = None
    standardisation = None

    def read(self) -> None:
        """Nothing to read: the points are generated."""

    def train_batch(self, idx: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        return self.train[idx]

    def device_split(self, device: Any) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
        """The training points on ``device`` (already encoded) and the identity encoding."""
        return self.train.to(device), lambda t: t

    def device_bytes(self) -> int:
        return int(self.train.numel()) * self.train.element_size()


def _mixture(means: Tensor, std: float) -> tuple[Callable, Callable]:
    means = means.to(torch.float64)
    k = means.shape[0]

    def sample(n: int, generator: torch.Generator) -> Tensor:
        idx = torch.randint(0, k, (n,), generator=generator)
        return means[idx] + std * torch.randn(n, 2, generator=generator, dtype=torch.float64)

    def log_prob(x: Tensor) -> Tensor:
        d2 = torch.cdist(x, means) ** 2
        comp = -0.5 * d2 / std**2 - LOG_2PI - 2 * math.log(std)
        return torch.logsumexp(comp, dim=1) - math.log(k)

    return sample, log_prob


def ring_means(k: int, radius: float) -> Tensor:
    angles = 2 * math.pi * torch.arange(k, dtype=torch.float64) / k  # not linspace(0, 2π, k): that repeats 0 ≡ 2π
    return radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)


def grid_means(side: int, spacing: float) -> Tensor:
    c = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    gx, gy = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)


def _checkerboard() -> tuple[Callable, Callable]:
    # Black squares: cells (i, j) of a 4×4 board on [−2, 2]² with i + j even; each has area 1, total 8.
    cells = torch.tensor([(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 0], dtype=torch.float64)

    def sample(n: int, generator: torch.Generator) -> Tensor:
        idx = torch.randint(0, len(cells), (n,), generator=generator)
        u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
        return cells[idx] + u - 2.0

    def log_prob(x: Tensor) -> Tensor:
        inside = (x.abs() < 2).all(dim=1)
        ij = torch.floor(x + 2.0)
        black = ((ij[:, 0] + ij[:, 1]) % 2 == 0) & inside
        out = torch.full((x.shape[0],), -math.inf, dtype=x.dtype)
        out[black] = -math.log(8.0)
        return out

    return sample, log_prob


def _banana(s1: float = 1.0, s2: float = 0.3, b: float = 0.5, c: float = 1.0) -> tuple[Callable, Callable]:
    def sample(n: int, generator: torch.Generator) -> Tensor:
        e = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        x1 = s1 * e[:, 0]
        return torch.stack([x1, b * x1**2 - c + s2 * e[:, 1]], dim=1)

    def log_prob(x: Tensor) -> Tensor:
        x1, x2 = x[:, 0], x[:, 1]
        l1 = -0.5 * (x1 / s1) ** 2 - 0.5 * LOG_2PI - math.log(s1)
        l2 = -0.5 * ((x2 - b * x1**2 + c) / s2) ** 2 - 0.5 * LOG_2PI - math.log(s2)
        return l1 + l2

    return sample, log_prob


def _aniso3() -> tuple[Callable, Callable]:
    weights = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    means = torch.tensor([[-1.5, 0.0], [1.5, 1.0], [0.5, -1.8]], dtype=torch.float64)

    def rot(a: float) -> Tensor:
        return torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64)

    scales = [(0.8, 0.15), (0.5, 0.1), (0.3, 0.3)]
    chols = torch.stack([rot(a) @ torch.diag(torch.tensor(s, dtype=torch.float64)) for a, s in zip((0.6, -0.9, 0.0), scales)])
    logdets = torch.tensor([2 * math.log(s[0] * s[1]) for s in scales], dtype=torch.float64)
    # the inverse of R(a)·diag(s) in closed form, diag(1/s)·R(a)ᵀ: exact, and no LAPACK call when the module is
    # imported (one would start a thread pool, which a process forked after the import could not use)
    inv = torch.stack([torch.diag(1 / torch.tensor(s, dtype=torch.float64)) @ rot(a).T
                       for a, s in zip((0.6, -0.9, 0.0), scales)])

    def sample(n: int, generator: torch.Generator) -> Tensor:
        idx = torch.multinomial(weights, n, replacement=True, generator=generator)
        e = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        return means[idx] + torch.einsum("nij,nj->ni", chols[idx], e)

    def log_prob(x: Tensor) -> Tensor:
        d = x[:, None, :] - means[None]  # [n, 3, 2]
        w = torch.einsum("kij,nkj->nki", inv, d)
        comp = -0.5 * (w**2).sum(-1) - LOG_2PI - 0.5 * logdets + weights.log()
        return torch.logsumexp(comp, dim=1)

    return sample, log_prob


def _separated_mixture_entropy(k: int, std: float) -> float:
    """log K + log(2πeσ²): exact up to terms of order exp(−(d/2σ)²/2) for modes d apart — below 1e-100 for
    ring8 (d/σ = 77) and grid25 (d/σ = 40); the tests check it against quadrature."""
    return math.log(k) + math.log(2 * math.pi * math.e * std**2)


def _build() -> dict[str, ToyDataset]:
    sets: dict[str, ToyDataset] = {}
    m = ring_means(8, 1.0)
    s, lp = _mixture(m, 0.01)
    sets["ring8"] = ToyDataset("ring8", "ring of 8 Gaussians, radius 1, std 0.01 (PacGAN protocol)", (-1.5, 1.5), s, lp, m, 0.01,
                              closed_form_entropy=_separated_mixture_entropy(8, 0.01))
    m = grid_means(5, 2.0)
    s, lp = _mixture(m, 0.05)
    sets["grid25"] = ToyDataset("grid25", "5x5 grid of Gaussians at {-4,...,4}^2, std 0.05 (PacGAN protocol)", (-6.0, 6.0), s, lp, m, 0.05,
                               closed_form_entropy=_separated_mixture_entropy(25, 0.05))
    m = ring_means(8, 2.0)
    s, lp = _mixture(m, 0.2)
    sets["ring8_wide"] = ToyDataset("ring8_wide", "ring of 8 Gaussians, radius 2, std 0.2 (broad modes)", (-3.5, 3.5), s, lp, m, 0.2)
    s, lp = _checkerboard()
    sets["checkerboard"] = ToyDataset("checkerboard", "uniform on the 8 black squares of a 4x4 board on [-2,2]^2", (-2.5, 2.5), s, lp, closed_form_entropy=math.log(8.0))
    s, lp = _banana()
    sets["banana"] = ToyDataset("banana", "x1~N(0,1), x2|x1~N(0.5*x1^2-1, 0.3^2): a curved unimodal density", (-6.0, 10.0), s, lp,
                                closed_form_entropy=math.log(2 * math.pi * math.e * 1.0 * 0.3))
    s, lp = _aniso3()
    sets["aniso3"] = ToyDataset("aniso3", "3 rotated anisotropic Gaussians, weights 0.5/0.3/0.2", (-4.0, 4.0), s, lp)
    return sets


TOY_DATASETS: dict[str, ToyDataset] = _build()
