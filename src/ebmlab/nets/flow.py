"""Fixed base distributions with a density, for KALE's contrastive (fixed-base) setting: a normalising flow and a
Gaussian.

Both are modules with the generator's interface — ``forward(z)`` maps latent noise z ~ N(0, I_D) to a sample x — and
an exact ``log_prob(x)`` [b] in nats, so the energy-guided latent samplers run on them unchanged and the model
exp(−E(x))·base(x) has a density known up to its normaliser.

The flow is a RealNVP (Dinh, Sohl-Dickstein & Bengio, ICLR 2017) of ``layers`` affine coupling layers with
alternating masks (half the coordinates transformed per layer, conditioned on the other half through an MLP), built
with the maintained library zuko (``zuko.flows.RealNVP``): a coupling flow, so both directions — density
evaluation and sampling — are one pass. The GEBM paper's density experiments use a flow base trained by maximum
likelihood and then held fixed; which flow is not essential to the method, and a coupling flow is the simplest that
is fast both ways.

Deviation from zuko, same numbers: zuko's coupling layer finds its mask's indices with ``mask.nonzero()`` every time
the flow is called (a host read, which a captured CUDA graph cannot replay); here each coupling layer keeps those
indices as (non-persistent) buffers computed once, and builds the same transformation from them
(:class:`_IndexedCoupling`), so the flow runs without reading the device and KALE with a flow base is captured like
every other method. The parameters, their names and every operation on them are zuko's.
"""

from __future__ import annotations

import math

from functools import partial

import zuko
from torch import Tensor, nn
from zuko.flows.coupling import GeneralCouplingTransform
from zuko.transforms import CouplingTransform



class _PresplitCoupling(CouplingTransform):
    """zuko's coupling transform with its split indices given (no ``nonzero`` at construction)."""

    def __init__(self, meta, idx_a: Tensor, idx_b: Tensor) -> None:  # type: ignore[no-untyped-def]
        super(CouplingTransform, self).__init__()  # torch's Transform.__init__: CouplingTransform's computes indices
        self.meta = meta
        self.idx_a, self.idx_b = idx_a, idx_b


class _IndexedCoupling(GeneralCouplingTransform):
    """A zuko coupling layer that keeps its mask's indices as buffers (module docstring)."""

    def forward(self, c: Tensor | None = None) -> CouplingTransform:  # type: ignore[override]
        return _PresplitCoupling(partial(self.meta, c), self.idx_a, self.idx_b)


def _index_couplings(flow: nn.Module) -> None:
    for m in flow.modules():
        if type(m) is GeneralCouplingTransform:
            m.register_buffer("idx_a", m.mask.nonzero().squeeze(-1), persistent=False)  # once, at construction
            m.register_buffer("idx_b", (~m.mask).nonzero().squeeze(-1), persistent=False)
            m.__class__ = _IndexedCoupling


class FlowBase(nn.Module):
    """RealNVP on R^D: ``log_prob(x)`` exact, ``forward(z)`` = T⁻¹(z) (a sample when z ~ N(0, I))."""

    def __init__(self, dim: int, layers: int = 6, hidden: tuple[int, ...] = (64, 64)):
        super().__init__()
        if dim < 2:
            raise ValueError(f"a coupling flow needs at least 2 coordinates to split; got dim={dim}")
        self.dim = dim
        self.flow = zuko.flows.RealNVP(features=dim, context=0, transforms=layers, randmask=False,
                                       hidden_features=tuple(hidden))
        _index_couplings(self.flow)

    def log_prob(self, x: Tensor) -> Tensor:
        return self.flow().log_prob(x)

    def forward(self, z: Tensor) -> Tensor:
        # the flow's transform maps data to noise; its inverse maps the base noise to data
        return self.flow().transform.inv(z)


class GaussianBase(nn.Module):
    """N(0, std² I_D), fixed: ``forward(z)`` = std·z."""

    def __init__(self, dim: int, std: float = 1.0):
        super().__init__()
        if std <= 0:
            raise ValueError(f"std must be positive; got {std}")
        self.dim, self.std = dim, float(std)

    def log_prob(self, x: Tensor) -> Tensor:
        return -0.5 * (x / self.std).square().sum(1) - self.dim * (math.log(self.std) + 0.5 * math.log(2 * math.pi))

    def forward(self, z: Tensor) -> Tensor:
        return self.std * z

    def extra_repr(self) -> str:
        return f"dim={self.dim}, std={self.std}"


__all__ = ["FlowBase", "GaussianBase"]
