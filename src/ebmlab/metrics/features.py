"""Distances between two sets of feature vectors (real vs generated), in float64.

- Fréchet distance ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½) between Gaussians fitted to the features (Heusel et al.
  2017), with ``scipy.linalg.sqrtm``; tiny imaginary parts from round-off are dropped, a larger one is an error.
- KID (Bińkowski et al. 2018): the unbiased MMD² with the cubic polynomial kernel k(x, y) = (xᵀy/d + 1)³,
  averaged over ``n_subsets`` random subsets of ``subset_size`` from each set (100 × 1000 by default; sets of
  fewer than 2000 points use subsets of half their size, so that the subsets differ), with the standard deviation
  over subsets. Reported as the raw MMD² (as torch-fidelity and torchmetrics report it); its scale depends on the
  feature extractor's, so it compares models only within one feature space.
- Improved precision and recall (Kynkäänniemi et al. 2019, k = 3): the fraction of generated points inside the
  union of real k-NN balls, and of real points inside the generated balls.
- Density and coverage (Naeem et al. 2020, k = 5).
- The Inception-style score exp(E_x KL(p(y|x) ‖ p(y))) of a classifier's predictive probabilities, over all
  samples in one split.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import Tensor

from ..errors import EbmlabError


def _f64(x) -> np.ndarray:
    return (x.detach().cpu().double().numpy() if isinstance(x, Tensor) else np.asarray(x, dtype=np.float64))


def frechet_distance_gaussians(mu1, s1, mu2, s2) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(mu1, s1) and N(mu2, s2)."""
    from scipy import linalg

    mu1, mu2, s1, s2 = (_f64(a) for a in (mu1, mu2, s1, s2))
    with warnings.catch_warnings():  # a singular product (fewer samples than features) is handled below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():  # singular product: regularise both (as the reference implementation)
        off = np.eye(len(s1)) * 1e-6
        covmean = linalg.sqrtm((s1 + off) @ (s2 + off))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3 * max(1.0, np.abs(covmean).max())):
            raise EbmlabError("the Fréchet distance's matrix square root has a large imaginary part: the "
                              "covariances are badly conditioned (too few samples for the feature dimension?)")
        covmean = covmean.real
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def frechet_distance(f1, f2) -> float:
    """Fréchet distance between Gaussians fitted to feature sets f1 [n, d] and f2 [m, d]."""
    a, b = _f64(f1), _f64(f2)
    if len(a) < 2 or len(b) < 2:
        raise EbmlabError(f"the Fréchet distance needs at least 2 samples in each set, got {len(a)} and {len(b)}")
    try:
        return frechet_distance_gaussians(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    except np.linalg.LinAlgError as exc:
        raise EbmlabError(f"the Fréchet distance's matrix square root failed ({exc}); use more samples") from None


def _cubic_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a·b/d + 1)³ for every pair of rows: the cube as two products (NumPy's ``** 3`` calls ``pow`` per entry,
    ~30× slower on a 250² block; the two differ by ~1e-16 relative)."""
    u = a @ b.T
    u *= 1.0 / a.shape[1]
    u += 1.0
    k = u * u
    k *= u
    return k


def _mmd2_poly(x: np.ndarray, y: np.ndarray) -> float:
    kxx = _cubic_kernel(x, x)
    kyy = _cubic_kernel(y, y)
    kxy = _cubic_kernel(x, y)
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def kid(f1, f2, *, n_subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float, int]:
    """(mean, std over subsets, subset size m) of the unbiased polynomial-kernel MMD² between feature sets f1, f2.

    m is ``subset_size`` or, for smaller sets, half the smaller set: with m equal to a set's size every subset
    is that whole set, the subsets agree and their spread (then ~1e-11) says nothing about the estimate's
    uncertainty; at m ≤ n/2 the subsets differ and their spread estimates the estimator's spread at size m
    (torchmetrics refuses m > n outright). Fewer than 4 points per set: refused.
    """
    a, b = _f64(f1), _f64(f2)
    n = min(len(a), len(b))
    if n < 4:
        raise EbmlabError(f"KID needs at least 4 samples in each set, got {len(a)} and {len(b)}")
    m = subset_size if n >= 2 * subset_size else n // 2
    rng = np.random.default_rng(seed)
    vals = [_mmd2_poly(a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)])
            for _ in range(n_subsets)]
    return float(np.mean(vals)), float(np.std(vals)), m


def _pairwise(a: Tensor, b: Tensor, chunk: int = 4096) -> Tensor:
    return torch.cat([torch.cdist(a[i:i + chunk], b) for i in range(0, len(a), chunk)])


def _kth_nn_radius(x: Tensor, k: int) -> Tensor:
    """Distance of each row of x to its k-th nearest other row."""
    d = _pairwise(x, x)
    return d.kthvalue(k + 1, dim=1).values  # +1: the point itself at distance 0


def prdc(real, fake, *, k_pr: int = 3, k_dc: int = 5) -> dict[str, float]:
    """Precision/recall (k = ``k_pr``) and density/coverage (k = ``k_dc``) of ``fake`` against ``real``."""
    r = torch.as_tensor(_f64(real))
    f = torch.as_tensor(_f64(fake))
    k_max = max(k_pr, k_dc)
    if len(r) <= k_max or len(f) <= k_max:
        raise EbmlabError(f"precision/recall/density/coverage need more than {k_max} samples per set")
    d_rf = _pairwise(r, f)  # [n_real, n_fake]
    rr = _pairwise(r, r)
    ff = _pairwise(f, f)
    r_pr, f_pr = rr.kthvalue(k_pr + 1, 1).values, ff.kthvalue(k_pr + 1, 1).values
    r_dc = rr.kthvalue(k_dc + 1, 1).values
    precision = (d_rf <= r_pr[:, None]).any(0).double().mean()
    recall = (d_rf <= f_pr[None, :]).any(1).double().mean()
    density = (d_rf <= r_dc[:, None]).double().sum(0).mean() / k_dc
    coverage = (d_rf.min(1).values <= r_dc).double().mean()
    return {"precision": float(precision), "recall": float(recall), "density": float(density),
            "coverage": float(coverage)}


def inception_style_score(probs) -> float:
    """exp(mean_x KL(p(y|x) ‖ p(y))) of predictive probabilities [n, classes] (one split)."""
    p = _f64(probs)
    p = np.clip(p, 1e-12, 1.0)
    py = p.mean(0, keepdims=True)
    return float(math.exp(np.mean(np.sum(p * (np.log(p) - np.log(py)), axis=1))))
