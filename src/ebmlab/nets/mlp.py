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


class Maxout(nn.Module):
    """max over ``pieces`` groups of a layer's outputs: [b, h·k] → [b, h] (Goodfellow et al. 2013; the PacGAN 2D
    discriminator's LinearMaxout with 5 pieces)."""

    def __init__(self, pieces: int):
        super().__init__()
        self.pieces = pieces

    def forward(self, x: Tensor) -> Tensor:
        return x.unflatten(-1, (-1, self.pieces)).amax(-1)


class LearnedScale(nn.Module):
    """x ↦ s·x with one learned scalar s drawn from U(−1, 1) — the bias-free Linear(1, 1) that EBM-BB's toy energy
    puts after its MLP (so the energy's scale, and its sign at the start, are learned)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.empty(1).uniform_(-1.0, 1.0))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


BNPosition = Literal["pre", "post"]
Init = Literal["default", "normal", "xavier"]


def init_linear(lin: nn.Linear, init: str) -> nn.Linear:
    """``lin`` initialised by the rule ``init`` (``mlp``'s): ``default`` leaves torch's, ``normal`` draws weights from
    N(0, 0.02²), ``xavier`` Glorot-uniform (TensorFlow's default kernel initialiser); both zero the bias."""
    if init == "normal":
        nn.init.normal_(lin.weight, 0.0, 0.02), nn.init.zeros_(lin.bias)
    elif init == "xavier":
        nn.init.xavier_uniform_(lin.weight), nn.init.zeros_(lin.bias)
    elif init != "default":
        raise ValueError(f"init must be 'default', 'normal' or 'xavier', got {init!r}")
    return lin


def init_linears(module: nn.Module, init: str) -> nn.Module:
    """Every ``nn.Linear`` of ``module`` (re-)initialised by ``init_linear``, in module order; returns ``module``."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            init_linear(m, init)
    return module


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, *, act: str = "relu", batchnorm: bool = False,
        out_act: str | None = None, bn_position: str = "pre", maxout: int = 1, spectral_norm: bool = False,
        init: str = "default", out_scale: bool = False) -> nn.Sequential:
    """in_dim → hidden… → out_dim with ``act`` after every hidden layer; the architecture options of the papers:

    - ``batchnorm`` with ``bn_position`` ``pre`` (Linear → BN → act, the usual order) or ``post`` (Linear → act →
      BN, EBM-BB's toy generator);
    - ``maxout`` = k > 1: each hidden layer is Linear(d, h·k) followed by the max over k pieces instead of ``act``;
    - ``spectral_norm``: every Linear layer divided by its largest singular value (one power iteration per step);
    - ``init``: ``default`` (torch's), ``normal`` (weights N(0, 0.02²), biases 0: DCGAN/PacGAN), ``xavier``
      (Glorot-uniform weights, biases 0);
    - ``out_scale``: a final learned scalar factor (:class:`LearnedScale`).
    """
    if bn_position not in ("pre", "post"):
        raise ValueError(f"bn_position must be 'pre' or 'post', got {bn_position!r}")
    if init not in ("default", "normal", "xavier"):
        raise ValueError(f"init must be 'default', 'normal' or 'xavier', got {init!r}")
    if maxout < 1:
        raise ValueError(f"maxout must be ≥ 1 (1: no maxout), got {maxout}")

    def linear(i: int, o: int) -> nn.Module:
        lin = init_linear(nn.Linear(i, o), init)
        return nn.utils.parametrizations.spectral_norm(lin) if spectral_norm else lin

    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        if maxout > 1:
            layers += [linear(d, h * maxout), Maxout(maxout)]
            if batchnorm:
                layers.append(nn.BatchNorm1d(h))
        else:
            layers.append(linear(d, h))
            if batchnorm and bn_position == "pre":
                layers.append(nn.BatchNorm1d(h))
            layers.append(_act(act))
            if batchnorm and bn_position == "post":
                layers.append(nn.BatchNorm1d(h))
        d = h
    layers.append(linear(d, out_dim))
    if out_act is not None:
        layers.append(_act(out_act))
    if out_scale:
        layers.append(LearnedScale())
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
