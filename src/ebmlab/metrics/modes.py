"""Mode coverage on 2D mixtures (VEEGAN/PacGAN protocol, EVALUATION.md).

A sample is high quality (HQ) if its distance to the nearest mean is < 3σ; a mode is captured if it is
the nearest mean of at least one HQ sample; the mode KL is KL(histogram of HQ samples over modes ‖ uniform)
= Σ q log(K q). With σ isotropic the HQ fraction of exact samples is P(χ²₂ < 9) = 1 − e^{−4.5} = 98.89 %.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..metadata import Metric

METRICS = {
    "modes": Metric("samples", "", "↑", "modes covered by the samples", True),
    "hq": Metric("samples", "%", "↑", "high-quality samples (within 3σ of a mode)", True),
    "mode_kl": Metric("samples", "nats", "↓", "KL(mode frequencies ‖ uniform)", True),
}
BOOKKEEPING = {"n_modes_total"}

HQ_CEILING = 1 - math.exp(-4.5)  # P(χ²₂ < 9)


def mode_metrics(samples: Tensor, modes: Tensor, std: float, *, n_sigma: float = 3.0) -> dict[str, float | None]:
    """Modes captured, % HQ and mode-histogram KL for samples [n, 2] against means [K, 2].

    ``mode_kl`` is None (JSON null) when no sample is high quality: the histogram is then undefined.
    """
    x = samples.detach().to("cpu", torch.float64)
    if x.ndim != 2 or x.shape[1] != modes.shape[1]:
        raise ValueError(f"samples must have shape [n, {modes.shape[1]}], got {tuple(x.shape)}")
    finite = torch.isfinite(x).all(dim=1)
    d = torch.cdist(x[finite], modes.to(torch.float64))
    dist, nearest = d.min(dim=1)
    hq = dist < n_sigma * std
    k = modes.shape[0]
    counts = torch.bincount(nearest[hq], minlength=k).numpy().astype(np.float64)
    n_hq = counts.sum()
    if n_hq > 0:
        q = counts / n_hq
        nz = q > 0
        kl = float(np.sum(q[nz] * np.log(k * q[nz])))
    else:
        kl = None
    return {
        "modes": int((counts > 0).sum()),
        "hq": float(n_hq / len(x)),
        "mode_kl": kl,
        "n_modes_total": k,
    }
