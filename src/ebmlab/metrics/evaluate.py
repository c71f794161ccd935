"""The evaluation report, picked by the data's kind: on toy2d, sample metrics for every method and exact density
metrics for methods with an energy; on images, binary data and vectors, the evaluators of ``metrics.images``.

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


def sample_metrics(samples: torch.Tensor, dataset, *, bandwidth: float | None = None,
                   n_features: int | None = None) -> dict[str, Any]:
    """The sample metrics of the data's kind: on toy2d, mode metrics (mixtures only), unbiased MMD² and W1 of
    samples [n, 2] against the test split; images and vectors: ``metrics.images``."""
    if dataset.kind in ("image", "binary"):
        from .images import image_metrics

        return image_metrics(samples, dataset, n_features=n_features)
    if dataset.kind == "vectors":
        from .images import vector_metrics

        return vector_metrics(samples, dataset)
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


def real_reference(dataset, n: int) -> dict[str, Any]:
    """The same sample metrics for real data at the same sample count (the ceiling); on toy2d, fresh exact
    samples, plus the true entropy (the NLL floor). ``dataset`` is a data set or the name of a built-in one."""
    if isinstance(dataset, str):
        from ..data import get_dataset

        dataset = get_dataset(dataset)
    return _real_reference(dataset, n)


@lru_cache(maxsize=32)
def _real_reference(ds, n: int) -> dict[str, Any]:
    if ds.kind != "toy2d":
        from .images import real_reference_arrays

        return real_reference_arrays(ds, n)
    x = ds.sample(n, generator=torch.Generator().manual_seed(REFERENCE_SEED)).float()
    out = sample_metrics(x, ds)
    out["nll"] = ds.entropy
    out["kl"] = 0.0
    return out


def evaluate_method(method, dataset, *, n_samples: int = 2500, seed: int = 0, density: bool = True) -> dict[str, Any]:
    """Evaluate a trained method on a data set with the evaluator of its kind; a flat dict of metrics."""
    for m in method.networks.values():
        m.eval()
    try:
        gen = torch.Generator(device=method.device).manual_seed(seed)
        n_draw = n_samples
        if dataset.kind != "toy2d":
            from .images import n_eval_samples

            n_draw = n_eval_samples(dataset, n_samples)
        with torch.no_grad():
            samples = torch.cat([method.sample(min(4096, n_draw - i), generator=gen)
                                 for i in range(0, n_draw, 4096)]) if dataset.kind != "toy2d" else \
                method.sample(n_draw, generator=gen)
        out = sample_metrics(samples, dataset, n_features=n_samples)
        if method.has_energy and method.energy_defines_density and density and dataset.kind == "toy2d":
            out.update(density_metrics(method.energy, dataset, device=method.device))
        out.update(method.evaluate_extra(dataset))
    finally:
        for m in method.networks.values():
            m.train()
    return out
