"""``tv``: the regularised inverse problem x̂ = argmin_x ½‖Dx − y‖² + λ TV(x) (the baseline in Bruna et al.'s
slides), D the box down-sampling of :mod:`ebmlab.sr.ops`, TV isotropic.

Solved by the primal-dual method of Chambolle & Pock (2011) with K = ∇ and F(x) = ½‖Dx − y‖², whose proximal map
is closed-form because DᵀD = A/s² with A = D⁺D a projection: (I + τDᵀD)⁻¹ = I − c/(1 + c)·A, c = τ/s².
Steps τ = σ = 1/√8 (‖∇‖² ≤ 8), θ = 1, ``iters`` iterations from the bicubic estimate. λ is chosen by ``fit`` on
validation images (the best mean PSNR over a log grid), so nothing is learned from the test split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from . import ops
from .base import SRModel, chunked

LAMBDA_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


def tv_solve(y: Tensor, s: int, lam: float, iters: int = 300, x0: Tensor | None = None) -> Tensor:
    """argmin_x ½‖Dx − y‖² + λ TV(x) by Chambolle-Pock (module docstring)."""
    x = ops.bicubic(y, s) if x0 is None else x0.clone()
    xbar = x.clone()
    ph, pw = torch.zeros_like(x), torch.zeros_like(x)
    tau = sigma = 1.0 / math.sqrt(8.0)
    c = tau / (s * s)
    dty = ops.down_adjoint(y, s)
    for _ in range(iters):
        gh, gw = ops.grad2d(xbar)
        ph, pw = ph + sigma * gh, pw + sigma * gw
        norm = (ph * ph + pw * pw).sqrt().clamp_min(lam) / lam  # project onto {|p| ≤ λ} pixel-wise
        ph, pw = ph / norm, pw / norm
        v = x + tau * ops.div2d(ph, pw) + tau * dty
        x_new = v - (c / (1 + c)) * ops.up_nearest(ops.down(v, s), s)
        xbar = 2 * x_new - x
        x = x_new
    return x


@dataclass(frozen=True)
class TVConfig:
    lam: float = 0.0  # 0: chosen by fit on validation images
    iters: int = 300
    OPTIONS: ClassVar[dict[str, tuple[str, str]]] = {  # range kind (ebmlab.options) and meaning of each option
        "lam": ("nonneg", "weight λ of the total variation (0: chosen by PSNR on validation images)"),
        "iters": ("int1", "Chambolle–Pock iterations of the inference"),
    }


class TV(SRModel):
    name = "tv"
    Config = TVConfig

    def __init__(self, scale: int, config: TVConfig | None = None):
        super().__init__(scale, config)
        self.register_buffer("lam", torch.tensor(float(self.options["lam"])))

    def fit(self, data, progress: bool = False) -> dict[str, Any]:
        if float(self.lam) > 0:
            return {"lam": float(self.lam), "lam_source": "given"}
        from .metrics import psnr

        x = data.val[:64]
        y = ops.down(x, self.scale)
        scores = {}
        for lam in LAMBDA_GRID:
            scores[lam] = psnr(tv_solve(y, self.scale, lam, self.options["iters"]).clamp(0, 1), x)
        best = max(scores, key=scores.get)
        self.lam.fill_(best)
        return {"lam": best, "lam_source": "validation PSNR over " + ", ".join(f"{k:g}: {v:.2f}"
                                                                                for k, v in scores.items())}

    def predict(self, y: Tensor, *, progress: bool = False) -> Tensor:
        lam = float(self.lam) or 1e-2
        return chunked(lambda t: tv_solve(t, self.scale, lam, self.options["iters"]), y, progress=progress,
                       desc="TV inversion").clamp(0, 1)
