"""EBGAN's pull-away term (Zhao, Mathieu & LeCun, arXiv 1609.03126, Sec. 2.4):

    f_PT(S) = 1/(N(N−1)) Σ_{i≠j} cos²(S_i, S_j),     cos(a, b) = aᵀb / (‖a‖ ‖b‖)

on the encoder codes S of a batch of N generated samples, added to the generator loss (weight 0.1 in the
paper) to push the codes apart, i.e. against mode collapse. The cosine is *squared* — one public version
forgets the square, which lets anti-parallel codes lower the term — and the diagonal i = j is excluded.
Range [0, 1]: 0 for mutually orthogonal codes, 1 when all codes are parallel or anti-parallel.
"""

from __future__ import annotations

import torch
from torch import Tensor



def pullaway_term(codes: Tensor, *, eps: float = 1e-12) -> Tensor:
    """Mean squared cosine similarity over ordered pairs of distinct codes.

    Args:
        codes: [N, k] codes (or [N, *code_shape], flattened to [N, k], e.g. a convolutional encoder's maps).
            N ≥ 2.
        eps: lower clamp on each norm before dividing, so an all-zero code counts as orthogonal to everything
            instead of producing NaN (it does not change codes with norm above eps).

    Returns:
        0-d tensor, dimensionless, differentiable in ``codes``.

    The N×N Gram matrix of the unit-normalised codes has ones on its diagonal; the term is the sum of its squared
    off-diagonal entries, computed as ‖Ĝ‖_F² − Σ_i Ĝ_ii² so the diagonal is removed exactly (including codes
    clamped by eps, whose diagonal entry is not 1).
    """
    if codes.dim() < 2:
        raise ValueError(f"codes must have shape [N, k]; got {tuple(codes.shape)}")
    n = codes.shape[0]
    if n < 2:
        raise ValueError(
            f"the pull-away term needs at least N = 2 codes (pairs i ≠ j); got N = {n}. Use a batch of 2 or more."
        )
    flat = codes.reshape(n, -1)
    unit = flat / flat.norm(dim=1, keepdim=True).clamp_min(eps)
    gram = unit @ unit.T
    off_diagonal = gram.square().sum() - torch.diagonal(gram).square().sum()
    out: Tensor = off_diagonal / (n * (n - 1))
    return out


__all__ = ["pullaway_term"]
