"""Linear operators of super-resolution: the down-sampling D, its adjoint, the projection onto {x : Dx = y},
bicubic up-sampling, total variation and tiling.

The degradation is the **s×s box average** D (each low-resolution pixel is the mean of an s×s block). Bruna et al.
write the constraint as "down-sampling x̂ gives y back"; we take the box average because then D Dᵀ = I/s², so the
pseudo-inverse is D⁺ = s² Dᵀ = nearest-neighbour up-sampling and the projection P_y(x) = x + D⁺(y − Dx) is exact,
cheap and idempotent. An anti-aliased bicubic down-sampler would need an iterative solve for every projection.
All functions work on [b, c, H, W] tensors of any float dtype; H and W must be multiples of s.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import EbmlabError


def _check(x: Tensor, s: int) -> None:
    if x.dim() != 4:
        raise EbmlabError(f"expected images as [batch, channels, height, width], got shape {tuple(x.shape)}")
    if x.shape[-1] % s or x.shape[-2] % s:
        raise EbmlabError(f"image size {x.shape[-2]}x{x.shape[-1]} is not a multiple of the scale {s}")


def down(x: Tensor, s: int) -> Tensor:
    """D x: the s×s block means, [b, c, H, W] → [b, c, H/s, W/s]."""
    _check(x, s)
    return F.avg_pool2d(x, s)


def down_adjoint(y: Tensor, s: int) -> Tensor:
    """Dᵀ y: every low-resolution value spread over its block with weight 1/s² (so ⟨Dx, y⟩ = ⟨x, Dᵀy⟩)."""
    return up_nearest(y, s) / (s * s)


def up_nearest(y: Tensor, s: int) -> Tensor:
    """D⁺ y = s² Dᵀ y: nearest-neighbour up-sampling, the right inverse of D (D D⁺ = I)."""
    return y.repeat_interleave(s, dim=-2).repeat_interleave(s, dim=-1)


def project(x: Tensor, y: Tensor, s: int) -> Tensor:
    """The Euclidean projection of x onto {x : Dx = y}: x + D⁺(y − Dx) (exact, since D D⁺ = I)."""
    return x + up_nearest(y - down(x, s), s)


def project_null(v: Tensor, s: int) -> Tensor:
    """The projection onto the null space of D: v − D⁺ D v (block means removed)."""
    return v - up_nearest(down(v, s), s)


def bicubic(y: Tensor, s: int) -> Tensor:
    """Bicubic up-sampling by s (PyTorch's, a = −0.75, half-pixel centres), clamped to [0, 1]."""
    return F.interpolate(y, scale_factor=s, mode="bicubic", align_corners=False).clamp(0.0, 1.0)


def grad2d(x: Tensor) -> tuple[Tensor, Tensor]:
    """Forward differences with a zero last row/column (Neumann boundary): (∂_h x, ∂_w x)."""
    gh = torch.zeros_like(x)
    gw = torch.zeros_like(x)
    gh[..., :-1, :] = x[..., 1:, :] - x[..., :-1, :]
    gw[..., :, :-1] = x[..., :, 1:] - x[..., :, :-1]
    return gh, gw


def div2d(ph: Tensor, pw: Tensor) -> Tensor:
    """The negative adjoint of :func:`grad2d`: ⟨grad x, p⟩ = −⟨x, div p⟩."""
    d = torch.zeros_like(ph)
    d[..., 0, :] += ph[..., 0, :]
    d[..., 1:-1, :] += ph[..., 1:-1, :] - ph[..., :-2, :]
    d[..., -1, :] -= ph[..., -2, :]
    d[..., :, 0] += pw[..., :, 0]
    d[..., :, 1:-1] += pw[..., :, 1:-1] - pw[..., :, :-2]
    d[..., :, -1] -= pw[..., :, -2]
    return d


def tv(x: Tensor) -> Tensor:
    """Isotropic total variation Σ_pixels √((∂_h x)² + (∂_w x)²), one value per image ([b])."""
    gh, gw = grad2d(x)
    return (gh * gh + gw * gw).sqrt().flatten(1).sum(1)


def tiles(h: int, w: int, tile: int, margin: int) -> list[tuple[slice, slice, slice, slice]]:
    """Cover an h×w low-resolution image with tiles of side ``tile`` read with ``margin`` extra pixels on each side.

    Returns (read_rows, read_cols, keep_rows, keep_cols): the window to process and, inside its result, the part
    that is kept (in low-resolution pixels; multiply by s for the output). Kept parts partition the image.
    """
    out = []
    for r0 in range(0, h, tile):
        for c0 in range(0, w, tile):
            r1, c1 = min(r0 + tile, h), min(c0 + tile, w)
            a, b = max(0, r0 - margin), min(h, r1 + margin)
            c, d = max(0, c0 - margin), min(w, c1 + margin)
            out.append((slice(a, b), slice(c, d), slice(r0 - a, r0 - a + (r1 - r0)), slice(c0 - c, c0 - c + (c1 - c0))))
    return out


def project_box(x: Tensor, y: Tensor, s: int, iters: int = 60) -> Tensor:
    """The Euclidean projection of x onto {x : Dx = y, 0 ≤ x ≤ 1} (y in [0, 1]).

    The set is a product over s×s blocks of {block mean = y_b, 0 ≤ x ≤ 1}, whose projection is
    clip(x + c_b, 0, 1) with the scalar c_b for which the block mean equals y_b (KKT conditions); the mean is
    monotone in c_b, which is found by bisection (``iters`` halvings of an interval of width ≤ 3).
    """
    _check(x, s)
    b, c, H, W = x.shape
    v = x.reshape(b, c, H // s, s, W // s, s).permute(0, 1, 2, 4, 3, 5).reshape(b, c, H // s, W // s, s * s)
    t = y.clamp(0, 1)[..., None]
    lo = -v.amax(-1, keepdim=True)  # clip(v + lo) = 0 everywhere: mean 0 ≤ y
    hi = 1 - v.amin(-1, keepdim=True)  # clip(v + hi) = 1 everywhere: mean 1 ≥ y
    for _ in range(iters):
        mid = (lo + hi) / 2
        above = (v + mid).clamp(0, 1).mean(-1, keepdim=True) > t
        hi = torch.where(above, mid, hi)
        lo = torch.where(above, lo, mid)
    out = (v + (lo + hi) / 2).clamp(0, 1)
    return out.reshape(b, c, H // s, W // s, s, s).permute(0, 1, 2, 4, 3, 5).reshape(b, c, H, W)
