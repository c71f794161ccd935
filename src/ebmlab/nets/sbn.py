"""Sigmoid belief networks: layers of binary stochastic units, a top-down model p(x, h) and a bottom-up q(h | x).

Architecture only; the Helmholtz-machine objectives live in ``bounds/helmholtz.py`` and ``methods/bihm.py``.

Layers are numbered bottom-up: h_0 = x (the D visible units, flattened), h_1, …, h_L. The top-down model is

    p(x, h) = p(h_L) Π_{l<L} p(h_l | h_{l+1}),     p(h_L) = Π_i Bern(σ(b_i)),  p(h_l | h_{l+1}) = Bern(σ(W h_{l+1} + b))

and the bottom-up model q(h | x) = Π_{l≥1} q(h_l | h_{l−1}) with the same conditional form. Every log-probability is
a sum over the units of a layer (nats per example) computed from logits, x·log σ(a) + (1 − x)·log σ(−a), which is
exact for any logit. The original code (jbornschein/bihm) clips σ to [1e−6, 1 − 1e−6] instead; the logit form gives
the same values wherever the clip is inactive and finite, exact values where it is not.

Initialisation as in that code: weights uniform in ±√6/√(fan_in + fan_out)/fan_in, all biases −1 (the prior's too).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..rng import Noise, rand

# The 12 stochastic layers of the BiHM paper's binarised-MNIST model (above the 784 visible units).
BIHM_MNIST_LAYERS = (300, 200, 100, 75, 50, 35, 30, 25, 20, 15, 10, 10)


def bernoulli_log_prob(logits: Tensor, x: Tensor) -> Tensor:
    """log Bern(x; σ(logits)) summed over the last dimension: [..., n] → [...], nats."""
    return (x * F.logsigmoid(logits) + (1.0 - x) * F.logsigmoid(-logits)).sum(-1)


def _bernoulli(logits: Tensor, generator: Noise | None) -> Tensor:
    u = rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    return (u < torch.sigmoid(logits)).to(logits.dtype)


class Conditional(nn.Module):
    """A layer of independent binary units given the layer beside it: logits = W y + b."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        bound = math.sqrt(6.0) / math.sqrt(n_in + n_out) / n_in
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound)
            self.linear.bias.fill_(-1.0)

    def log_prob(self, x: Tensor, y: Tensor) -> Tensor:
        """log p(x | y): x [n, n_out], y [n, n_in] → [n]."""
        return bernoulli_log_prob(self.linear(y), x)

    def sample(self, y: Tensor, generator: Noise | None = None) -> Tensor:
        return _bernoulli(self.linear(y), generator)


class Prior(nn.Module):
    """The top layer's factorial Bernoulli prior p(h_L)."""

    def __init__(self, n: int):
        super().__init__()
        self.bias = nn.Parameter(torch.full((n,), -1.0))

    def log_prob(self, h: Tensor) -> Tensor:
        return bernoulli_log_prob(self.bias.expand_as(h), h)

    def sample(self, n: int, generator: Noise | None = None) -> Tensor:
        return _bernoulli(self.bias.expand(n, -1), generator)


class HelmholtzPair(nn.Module):
    """The top-down model p(x, h) (``p``) and the bottom-up model q(h | x) (``q``) of a Helmholtz machine.

    ``sizes`` = (D, n_1, …, n_L): visible units first. A state is a list [x, h_1, …, h_L] of [n, n_l] tensors.
    """

    def __init__(self, sizes: tuple[int, ...]):
        super().__init__()
        if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
            raise ValueError(f"a Helmholtz machine needs the visible size and at least one hidden layer, each ≥ 1 "
                             f"unit; got sizes {tuple(sizes)}")
        self.sizes = tuple(int(s) for s in sizes)
        self.p = nn.ModuleList([Conditional(self.sizes[l + 1], self.sizes[l]) for l in range(len(sizes) - 1)])
        self.p_top = Prior(self.sizes[-1])
        self.q = nn.ModuleList([Conditional(self.sizes[l], self.sizes[l + 1]) for l in range(len(sizes) - 1)])

    @property
    def n_layers(self) -> int:
        """L, the number of hidden layers."""
        return len(self.sizes) - 1

    def p_layer(self, l: int) -> Conditional:
        """p's layer l: p(h_l | h_{l+1}), with h_0 = x."""
        layer = self.p[l]
        assert isinstance(layer, Conditional)
        return layer

    def log_p(self, state: list[Tensor]) -> Tensor:
        """log p(x, h) [n] of a state [x, h_1, …, h_L]."""
        out = self.p_top.log_prob(state[-1])
        for l, layer in enumerate(self.p):
            out = out + layer.log_prob(state[l], state[l + 1])
        return out

    def log_q(self, state: list[Tensor]) -> Tensor:
        """log q(h | x) [n] of a state [x, h_1, …, h_L]."""
        out = torch.zeros(state[0].shape[0], dtype=state[0].dtype, device=state[0].device)
        for l, layer in enumerate(self.q):
            out = out + layer.log_prob(state[l + 1], state[l])
        return out

    def sample_q(self, x: Tensor, generator: Noise | None = None) -> tuple[list[Tensor], Tensor]:
        """h ~ q(h | x) bottom-up: x [n, D] → (the state [x, h_1, …, h_L], log q(h | x) [n]).

        The log-probability comes from the logits that drew the samples (one forward per layer, not two); it
        carries the gradient into q's parameters, the samples carry none."""
        state, log_q = [x], torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for layer in self.q:
            logits = layer.linear(state[-1])
            h = _bernoulli(logits.detach(), generator)
            log_q = log_q + bernoulli_log_prob(logits, h)
            state.append(h)
        return state, log_q

    def sample_p(self, n: int, generator: Noise | None = None) -> tuple[list[Tensor], Tensor]:
        """(x, h) ~ p(x, h) top-down (ancestral): (the state [x, h_1, …, h_L], log p(x, h) [n])."""
        top = self.p_top.sample(n, generator).detach()
        state, log_p = [top], self.p_top.log_prob(top)
        for layer in reversed(self.p):
            logits = layer.linear(state[0])
            x = _bernoulli(logits.detach(), generator)
            log_p = log_p + bernoulli_log_prob(logits, x)
            state.insert(0, x)
        return state, log_p

    def mean_x(self, h1: Tensor) -> Tensor:
        """E[x | h_1] = σ(W h_1 + b) [n, D] (for pictures of samples)."""
        return torch.sigmoid(self.p_layer(0).linear(h1))
