"""Per-example Jacobians of MLP generators by tangent propagation: the layer rules.

A generator that is an ``nn.Sequential`` of Linear layers and elementwise layers carries the d tangent columns of
its Jacobian through its layers in the forward pass: J ← W J at a Linear layer, J ← a'(u) ⊙ J at an elementwise
one (the construction of stochman's ``nnj`` layers that EBM-BB uses). This module holds the rule of each layer
type (:func:`_act_derivative`), the check that a network is such a chain (:func:`propagates`), and the
propagation itself (:func:`propagate_jacobian`); ``bounds.entropy`` and ``bounds.score`` use them for BiB's
entropy and score terms. A new elementwise layer needs its rule here.
"""

from __future__ import annotations


import torch
from torch import Tensor, nn

from .build import RangeOut
from .conv import Reshape
from .mlp import LearnedScale, ScaledTanh
from ..types import GeneratorFn



def _act_derivative(m: nn.Module, u: Tensor, y: Tensor) -> Tensor | None:
    """a'(u) of an elementwise layer y = a(u), written with ordinary ops (so it is differentiable in u and in the
    layer's parameters: the latent score needs ∇_z of the Jacobian); None for a layer not listed here."""
    if isinstance(m, (nn.Identity, nn.Dropout)) and not (isinstance(m, nn.Dropout) and m.training):
        return torch.ones_like(u)
    if isinstance(m, nn.ReLU):
        return (u > 0).to(u.dtype)
    if isinstance(m, nn.LeakyReLU):
        return torch.where(u > 0, torch.ones_like(u), torch.full_like(u, m.negative_slope))
    if isinstance(m, nn.PReLU):
        w = m.weight.reshape(1, -1) if m.weight.numel() > 1 else m.weight
        return torch.where(u > 0, torch.ones_like(u), w.to(u.dtype).expand_as(u))
    if isinstance(m, nn.Tanh):
        return 1 - y * y
    if isinstance(m, nn.Sigmoid):
        return y * (1 - y)
    if isinstance(m, nn.ELU):
        return torch.where(u > 0, torch.ones_like(u), y + m.alpha)
    if isinstance(m, nn.Softplus):
        return torch.where(u * m.beta > m.threshold, torch.ones_like(u), torch.sigmoid(m.beta * u))
    if isinstance(m, LearnedScale):
        return m.scale.to(u.dtype).expand_as(u)
    if isinstance(m, ScaledTanh):
        t = y / m.scale
        return m.scale * (1 - t * t)
    if isinstance(m, RangeOut):
        if (m.lo, m.hi) == (-1.0, 1.0):
            return 1 - y * y
        s = (y - m.lo) / (m.hi - m.lo)
        return (m.hi - m.lo) * s * (1 - s)
    if isinstance(m, nn.BatchNorm1d) and not m.training and m.track_running_stats:
        scale = torch.rsqrt(m.running_var + m.eps)
        scale = scale * m.weight if m.affine else scale
        return scale.to(u.dtype).expand_as(u)
    return None


def _layers(G: GeneratorFn) -> list[nn.Module] | None:
    """G's layers in order when G is an nn.Sequential (nested ones flattened), else None."""
    if not isinstance(G, nn.Sequential):
        return None
    out: list[nn.Module] = []
    for m in G:
        sub = _layers(m) if isinstance(m, nn.Sequential) else [m]
        if sub is None:
            return None
        out.extend(sub)
    return out


def _elementwise_types() -> tuple[type, ...]:
    """The layers ``_act_derivative`` has a rule for (BatchNorm1d and Dropout only in eval mode)."""
    return (nn.Identity, nn.Dropout, nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.Tanh, nn.Sigmoid, nn.ELU, nn.Softplus,
            ScaledTanh, RangeOut, LearnedScale, nn.BatchNorm1d)


def propagates(G: GeneratorFn) -> bool:
    """Whether :func:`propagate_jacobian` can differentiate G: a Sequential of Linear layers, the elementwise
    layers of ``_act_derivative`` (BatchNorm with running statistics and Dropout in eval mode only) and a final
    Reshape/Flatten. A type check per layer: cheap enough for every step."""
    layers = _layers(G)
    if layers is None:
        return False
    elementwise = _elementwise_types()
    for m in layers:
        if isinstance(m, (nn.Linear, Reshape, nn.Flatten)):
            continue
        if not isinstance(m, elementwise):
            return False
        if isinstance(m, nn.Dropout) and m.training:
            return False
        if isinstance(m, nn.BatchNorm1d) and (m.training or not m.track_running_stats):
            return False
    return True


def piecewise_linear(G: GeneratorFn) -> bool:
    """Whether G is a propagatable chain whose only nonlinearities are (Leaky/P)ReLUs: its Jacobian is then
    constant on each linear region, so every z-derivative of a function of J (the latent score's ∇_z log-volume)
    is exactly 0 almost everywhere — what autograd through the propagated J returns too, at a backward's cost."""
    linear = (nn.Linear, nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.BatchNorm1d, nn.Identity, nn.Dropout, Reshape,
              nn.Flatten, LearnedScale)  # propagates() has already refused BatchNorm and Dropout in training mode
    return propagates(G) and all(isinstance(m, linear) for m in _layers(G))


def propagate_jacobian(G: GeneratorFn, z: Tensor) -> tuple[Tensor, Tensor]:
    """G(z) and its per-example Jacobians [b, D, d] by carrying the d tangent columns through G's layers in the
    same forward pass: J ← W J at a Linear layer, J ← a'(u) ⊙ J at an elementwise one (the construction of
    EBM-BB's stochman ``nnj`` layers). It is plain reverse-differentiable tensor algebra, so the loss's backward
    through J is first-order (the vmapped VJPs of ``rev`` make it a double backward) — the fast route for the MLP
    generators of the 2D toys. Requires :func:`propagates`."""
    layers = _layers(G)
    if layers is None:
        raise ValueError("propagate_jacobian needs an nn.Sequential generator")
    b, d = z.shape
    # T[i, k] = J_i e_k, the k-th tangent of row i: [b, d, width] (a Linear layer is then one matrix product)
    x, T = z, torch.eye(d, dtype=z.dtype, device=z.device).expand(b, d, d)
    for m in layers:
        if isinstance(m, nn.Linear):
            x, T = m(x), torch.nn.functional.linear(T, m.weight.to(z.dtype))
        elif isinstance(m, (Reshape, nn.Flatten)):
            x = m(x)
        else:
            y = m(x)
            a = _act_derivative(m, x, y)
            if a is None:
                raise ValueError(f"propagate_jacobian: no derivative rule for {type(m).__name__}")
            x, T = y, a.unsqueeze(1) * T
    return x, T.transpose(1, 2)


__all__ = ["piecewise_linear", "propagate_jacobian", "propagates"]
