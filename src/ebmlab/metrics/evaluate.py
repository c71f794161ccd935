"""The 2D evaluation report: sample metrics for every method, exact density metrics for methods with an energy.

Evaluation draws its own noise from a generator seeded by ``seed`` and never touches the training RNGs, so
evaluating during training does not change the training trajectory.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch

from .density import density_metrics
from .distances import median_bandwidth, mmd2_unbiased, wasserstein1
from .modes import mode_metrics

REFERENCE_SEED = 777


def sample_metrics(samples: torch.Tensor, dataset, *, bandwidth: float | None = None) -> dict[str, Any]:
    """Mode metrics (mixtures only), unbiased MMD² and W1 of samples [n, 2] against the test split."""
    samples = samples.detach().to("cpu", torch.float32)
    finite = torch.isfinite(samples).all(dim=1)
    out: dict[str, Any] = {"frac_finite": float(finite.float().mean())}
    if dataset.has_modes:
        out.update(mode_metrics(samples, dataset.modes, dataset.mode_std))
    s = samples[finite]
    n = len(samples)
    test = dataset.test[:n]
    bw = bandwidth if bandwidth is not None else median_bandwidth(dataset.train[:2000])
    out["mmd2"] = mmd2_unbiased(s, test, bw) if len(s) > 1 else float("nan")
    out["w1"] = wasserstein1(s, test) if len(s) > 0 else float("nan")
    return out


@lru_cache(maxsize=32)
def real_reference(dataset_name: str, n: int) -> dict[str, Any]:
    """The same sample metrics for fresh exact samples (the ceiling), plus the true entropy (the NLL floor)."""
    from ..data import get_dataset

    ds = get_dataset(dataset_name)
    x = ds.sample(n, generator=torch.Generator().manual_seed(REFERENCE_SEED)).float()
    out = sample_metrics(x, ds)
    out["nll"] = ds.entropy
    out["kl"] = 0.0
    return out


def evaluate_method(method, dataset, *, n_samples: int = 2500, seed: int = 0, density: bool = True) -> dict[str, Any]:
    """Evaluate a trained method on a 2D data set; returns a flat dict of metrics (nats where applicable)."""
    for m in method.networks.values():
        m.eval()
    try:
        gen = torch.Generator(device=method.device).manual_seed(seed)
        with torch.no_grad():
            samples = method.sample(n_samples, generator=gen)
        out = sample_metrics(samples, dataset)
        if method.has_energy and method.energy_defines_density and density:
            out.update(density_metrics(method.energy, dataset, device=method.device))
        out.update(method.evaluate_extra(dataset))
    finally:
        for m in method.networks.values():
            m.train()
    return out
