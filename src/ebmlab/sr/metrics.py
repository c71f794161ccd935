"""Metrics of super-resolved images against the truth (all on images clamped to [0, 1]).

- ``psnr``: 10 log10(1 / MSE) per image, averaged over images (scikit-image's ``peak_signal_noise_ratio``,
  data_range = 1).
- ``ssim``: scikit-image's ``structural_similarity`` convention: 7×7 uniform window, K1 = 0.01, K2 = 0.03,
  data_range = 1, no Gaussian weighting; averaged over images.
- ``stats_dist``: the mean squared difference of *evaluation* statistics Φ_eval(x̂) and Φ_eval(x), per feature,
  in units of the features' standard deviation over the true test images. Φ_eval is a scattering network with
  other scales and orientations (J = 3, L = 6) than the ``stats`` model's default (J = 2, L = 4), so that the
  yardstick is not the model's own objective.
- ``grad_ratio``: mean ‖∇x̂‖² / mean ‖∇x‖² (forward differences): 1 when the outputs carry as much
  high-frequency energy as the truth, < 1 when they are blurred, > 1 when they are noisier.
- ``clf_fd`` (labelled data sets, Fashion-MNIST): the Fréchet distance between the domain classifier's features
  of the outputs and of the true images (the image metrics' classifier, not Inception): a perceptual proxy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import ops
from .wavelets import Scattering


def _np(x: Tensor) -> np.ndarray:
    return x.detach().double().cpu().clamp(0, 1).numpy()[:, 0]


def psnr(xhat: Tensor, x: Tensor) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    a, b = _np(xhat), _np(x)
    vals = [peak_signal_noise_ratio(t, p, data_range=1.0) if not np.array_equal(t, p) else 100.0
            for p, t in zip(a, b)]
    return float(np.mean(vals))


def ssim(xhat: Tensor, x: Tensor) -> float:
    from skimage.metrics import structural_similarity

    return float(np.mean([structural_similarity(t, p, data_range=1.0) for p, t in zip(_np(xhat), _np(x))]))


def grad_ratio(xhat: Tensor, x: Tensor) -> float:
    def energy(t: Tensor) -> float:
        gh, gw = ops.grad2d(t.double().clamp(0, 1))
        return float((gh ** 2 + gw ** 2).mean())

    return energy(xhat) / max(energy(x), 1e-300)


def eval_phi(x_true: Tensor) -> Scattering:
    """The evaluation statistics (J=3, L=6), normalised on the true images, in float32: the same distances as in
    float64 to ~1e-6 relative (tests/sr), at a fraction of the time."""
    phi = Scattering(J=3, L=6, avg_sigma=2.0, stride=2)
    phi.fit_normalisation(x_true.float())
    return phi


@torch.no_grad()
def stats_dist(xhat: Tensor, x: Tensor, phi: Scattering | None = None, chunk: int = 128) -> float:
    """Mean over images of the per-feature squared distance between Φ_eval(x̂) and Φ_eval(x) (module docstring).
    Without ``phi``, the evaluation network is built here and the truth's statistics are computed once, both for
    its normalisation and for the distance."""
    if phi is None:
        phi = Scattering(J=3, L=6, avg_sigma=2.0, stride=2)
        raw_x = torch.cat([phi.raw(x[i:i + chunk].float()) for i in range(0, len(x), chunk)])
        f = raw_x.double()
        mean = f.mean((0, 2, 3))
        std = (f * f).mean((0, 2, 3)).sub(mean ** 2).clamp_min(1e-12).sqrt()
        phi.mean.copy_(mean.float())
        phi.std.copy_(std.float())
        truth = [(raw_x[i:i + chunk] - phi.mean[:, None, None]) / phi.std[:, None, None]
                 for i in range(0, len(x), chunk)]
    else:
        truth = [phi(x[i:i + chunk].to(phi.wave.dtype)) for i in range(0, len(x), chunk)]
    d = 0.0
    for i, t in zip(range(0, len(x), chunk), truth):
        diff = phi(xhat[i:i + chunk].to(phi.wave.dtype).clamp(0, 1)) - t
        d += float((diff.double() ** 2).mean((1, 2, 3)).sum())
    return d / len(x)


def classifier_fd(xhat: Tensor, x: Tensor, dataset_name: str, data_dir: str | None = None) -> dict[str, Any]:
    from ..data import get_dataset
    from ..metrics.classifier import get_classifier
    from ..metrics.features import frechet_distance

    clf = get_classifier(get_dataset(dataset_name, data_dir=data_dir))
    f_hat, _ = clf.run(xhat.clamp(0, 1) * 2 - 1)
    f_true, _ = clf.run(x * 2 - 1)
    return {"clf_fd": float(frechet_distance(f_hat, f_true)), "clf_sha256": clf.sha256[:16]}


def all_metrics(xhat: Tensor, x: Tensor, *, phi: Scattering | None = None, fd_dataset: str | None = None,
                data_dir: str | None = None) -> dict[str, Any]:
    out = {"psnr": psnr(xhat, x), "ssim": ssim(xhat, x), "stats_dist": stats_dist(xhat, x, phi),
           "grad_ratio": grad_ratio(xhat, x)}
    if fd_dataset and len(x) >= 2:  # a Fréchet distance needs two images per set to have a covariance
        out.update(classifier_fd(xhat, x, fd_dataset, data_dir))
    return out
