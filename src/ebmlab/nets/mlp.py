"""Multi-layer perceptrons and the bounded product-of-experts energy head of VGAN."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

Activation = Literal["relu", "leaky_relu", "tanh", "prelu", "elu", "softplus"]


def _act(name: str) -> nn.Module:
    return {
        "relu": nn.ReLU,
        "leaky_relu": lambda: nn.LeakyReLU(0.2),
        "tanh": nn.Tanh,
        "prelu": nn.PReLU,
        "elu": nn.ELU,
        "softplus": nn.Softplus,
    }[name]()


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, *, act: str = "relu", batchnorm: bool = False,
        out_act: str | None = None) -> nn.Sequential:
    """in_dim → hidden… → out_dim with ``act`` after every hidden layer (and BatchNorm before it if asked)."""
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers.append(nn.Linear(d, h))
        if batchnorm:
            layers.append(nn.BatchNorm1d(h))
        layers.append(_act(act))
        d = h
    layers.append(nn.Linear(d, out_dim))
    if out_act is not None:
        layers.append(_act(out_act))
    return nn.Sequential(*layers)


class ScaledTanh(nn.Module):
    """x ↦ s·tanh(x): confines a generator's output to the box [−s, s]^D."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        return self.scale * torch.tanh(x)


def binary_entropy(p: Tensor) -> Tensor:
    """H_b(p) = −p log p − (1 − p) log(1 − p), elementwise, nats."""
    return -(p * p.log() + (1 - p) * (1 - p).log())


class BoundedExpertHead(nn.Module):
    """VGAN's bounded multi-modal energy E(x) = Σ_j H_b(σ(w_jᵀφ(x) + b_j)) with range [0, K log 2].

    Each expert is a sigmoid unit; its binary entropy is low when the unit is confidently on or off, so the
    energy is low where the features give a confident binary code (one of up to 2^K modes). σ is clipped to
    [eps, 1 − eps] (eps = 1e-4 as in the original code) so the log stays finite.
    """

    def __init__(self, features: nn.Module, feat_dim: int, n_experts: int = 128, eps: float = 1e-4):
        super().__init__()
        self.features = features
        self.experts = nn.Linear(feat_dim, n_experts)
        self.eps = eps

    def probs(self, x: Tensor) -> Tensor:
        """Expert activations σ_j(x), shape [b, K], clipped to [eps, 1 − eps]."""
        return torch.sigmoid(self.experts(self.features(x))).clamp(self.eps, 1 - self.eps)

    @staticmethod
    def energy_from_probs(p: Tensor) -> Tensor:
        return binary_entropy(p).sum(dim=1)

    @staticmethod
    def batch_entropy(p: Tensor) -> Tensor:
        """VGAN's entropy surrogate H̃ = Σ_j H_b(mean_i σ_j(x_i)) over the batch (a batch statistic, not a bound)."""
        return binary_entropy(p.mean(dim=0)).sum()

    def forward(self, x: Tensor) -> Tensor:
        # Same value as energy_from_probs(probs(x)), from the logits: clamping σ to [eps, 1 − eps] is clamping the
        # logit to [−L, L] with L = log((1 − eps)/eps), and H_b(σ(l)) = softplus(l) − l·σ(l). Five elementwise
        # ops instead of nine: this head dominates the cost of evaluating the energy on a quadrature grid.
        lim = math.log((1 - self.eps) / self.eps)
        logit = self.experts(self.features(x)).clamp(-lim, lim)
        return (torch.nn.functional.softplus(logit) - logit * torch.sigmoid(logit)).sum(dim=1)

    @property
    def max_energy(self) -> float:
        return self.experts.out_features * math.log(2)
