"""The evaluators for image, binary and vector data (the toy2d one is ``metrics.evaluate``).

Images and binary images (labelled sets), in the feature space of the data set's domain classifier
(``metrics.classifier``; never called FID):
- ``clf_fd``: Fréchet distance; ``clf_kid`` (± ``clf_kid_std``): KID; ``clf_precision``/``clf_recall`` (k = 3),
  ``clf_density``/``clf_coverage`` (k = 5); ``clf_score``: the classifier's Inception-style score — all
  between the samples and the same number of test images (the real-vs-real row compares train and test images
  at that count);
- stacked sets (three base images as channels): each channel is labelled by the base set's classifier, mode id
  c₀ + 10c₁ + 100c₂; ``modes`` (hit at least once, of 1000) and ``mode_kl`` = KL(q ‖ uniform) = Σ q log(1000 q)
  over ``STACKED_SAMPLES`` = 26,000 samples (PacGAN's protocol), and the classifier's test accuracy beside them.
Samples are clamped to the data's value range before they are classified (a Gaussian decoder's means may
overshoot it). Unlabelled images (a user's folder) get the vector metrics on their pixels.

Vectors: unbiased MMD² (RBF, bandwidth the median distance of real points), the sliced W1 (POT, 200 random
directions, seed 0) and the exact W1 (POT's network simplex) up to ``EXACT_W1_MAX`` points per set.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .classifier import get_classifier
from .distances import median_bandwidth, mmd2_unbiased, wasserstein1
from .features import frechet_distance, inception_style_score, kid, prdc

from ..metadata import Metric
from ..data.base import Dataset

METRICS = {
    "clf_fd": Metric("samples", "", "↓", "Fréchet distance in the domain classifier's features (not FID)", True),
    "clf_kid": Metric("samples", "", "↓", "KID: MMD² with the cubic kernel in the domain classifier's features (± the "
                      "spread over subsets of clf_kid_subset points)", True),
    "clf_precision": Metric("samples", "%", "↑", "precision: samples inside the test data's feature manifold", True),
    "clf_recall": Metric("samples", "%", "↑", "recall: test data inside the samples' feature manifold", True),
    "clf_density": Metric("samples", "", "↑", "density (precision counting neighbourhoods)", True),
    "clf_coverage": Metric("samples", "%", "↑", "coverage: test points with a sample among their neighbours", True),
    "modes_confident": Metric("samples", "", "↑", "stacked modes hit by samples classified with p ≥ 0.9 on every "
                              "channel", True),
    "frac_confident": Metric("samples", "%", "↑", "stacked samples classified with p ≥ 0.9 on every channel", True),
    "modes_in_data": Metric("samples", "", "↑", "stacked modes hit by samples inside the test data's feature manifold "
                            "(the per-sample test of clf_precision)", True),
    "frac_in_data": Metric("samples", "%", "↑", "stacked samples inside the test data's feature manifold"),
    "clf_score": Metric("samples", "", "↑", "classifier score exp E KL(p(y|x) ‖ p(y)) (an IS in the domain classifier)",
                        True),
}
BOOKKEEPING = {"clf_sha256", "clf_accuracy", "n_feature_samples", "n_mode_samples", "clf_kid_subset"}

STACKED_SAMPLES = 26_000
MODE_COUNT = ("modes", "mode_kl", "modes_confident", "frac_confident")  # the metrics counted on STACKED_SAMPLES
EXACT_W1_MAX = 3000


CONFIDENT = 0.9  # a stacked sample counts towards modes_confident when every channel's top class has p ≥ this


def stacked_mode_counts(channel_labels: Tensor, n_classes: int = 10,
                        confidence: Tensor | None = None) -> dict[str, float]:
    """Modes hit and KL(q ‖ uniform) of stacked samples from per-channel labels [n, 3] in 0..n_classes−1.

    ``confidence`` [n, 3]: the classifier's top-class probability per channel. Then ``modes_confident`` counts
    the modes hit by samples classified with p ≥ ``CONFIDENT`` on all three channels, and ``frac_confident`` is
    their share: every arg-max counts towards ``modes``, so noise, which the classifier labels at random, hits
    most of the 1000 modes (891 measured on stacked digits) while hitting almost none confidently.
    """
    lab = channel_labels.long()
    ids = lab[:, 0] + n_classes * lab[:, 1] + n_classes**2 * lab[:, 2]
    k = n_classes**3
    counts = torch.bincount(ids, minlength=k).double()
    q = counts / counts.sum()
    nz = q > 0
    kl = float((q[nz] * torch.log(k * q[nz])).sum())
    out: dict[str, float] = {"modes": int(nz.sum()), "mode_kl": kl, "n_mode_samples": int(len(lab))}
    if confidence is not None:
        sure = (confidence >= CONFIDENT).all(1)
        out["modes_confident"] = int((torch.bincount(ids[sure], minlength=k) > 0).sum())
        out["frac_confident"] = float(sure.double().mean())
    return out


def in_manifold(f: Tensor, f_real: Tensor, k: int = 3, chunk: int = 2048) -> Tensor:
    """[n] bool: whether each sample's features lie inside the real features' k-NN balls (the per-sample test of
    improved precision, Kynkäänniemi et al. 2019, as ``clf_precision`` averages it)."""
    real = f_real.double()
    d_rr = torch.cdist(real, real)
    radius = d_rr.kthvalue(k + 1, dim=1).values
    out = [(torch.cdist(f[i:i + chunk].double(), real) <= radius[None]).any(1) for i in range(0, len(f), chunk)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


def _clamp(x: Tensor, dataset: Dataset) -> Tensor:
    lo, hi = dataset.spec.value_range or (-float("inf"), float("inf"))
    return x.detach().float().clamp(lo, hi)


def _features(clf, x: Tensor, dataset: Dataset) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(features, probabilities, labels, top-class probabilities): per-channel classification for stacked sets
    (concatenated features, labels and confidences [n, 3]); otherwise the whole image. A set padded with a
    background border (``border``: the 32×32 stacked sets) is classified without it, at its base set's size."""
    b = getattr(dataset, "border", 0)
    if b:
        x = x[..., b:x.shape[-2] - b, b:x.shape[-1] - b]
    if not dataset.stacked:
        f, p = clf.run(x)
        return f, p, p.argmax(1), p.max(1).values
    fs, ps = zip(*(clf.run(x[:, c:c + 1]) for c in range(x.shape[1])))
    return (torch.cat(fs, 1), torch.stack(ps, 1).mean(1), torch.stack([p.argmax(1) for p in ps], 1),
            torch.stack([p.max(1).values for p in ps], 1))


def _feature_metrics(f_fake: Tensor, p_fake: Tensor, f_real: Tensor) -> dict[str, float]:
    out = {"clf_fd": frechet_distance(f_fake, f_real)}
    out["clf_kid"], out["clf_kid_std"], out["clf_kid_subset"] = kid(f_fake, f_real)
    out.update({f"clf_{k}": v for k, v in prdc(f_real, f_fake).items()})
    out["clf_score"] = inception_style_score(p_fake)
    return out


def image_metrics(samples: Tensor, dataset: Dataset, *, n_features: int | None = None) -> dict[str, Any]:
    """Classifier-feature metrics of samples [n, *shape] against the test split (and stacked modes)."""
    if dataset.train_labels is None and not dataset.stacked:
        return vector_metrics(samples.flatten(1), dataset, flatten=True)
    x = samples.detach()  # classified where they were drawn (a GPU's samples on that GPU: Classifier.on)
    finite = torch.isfinite(x.flatten(1)).all(1)
    out: dict[str, Any] = {"frac_finite": float(finite.float().mean())}
    x = _clamp(x[finite], dataset)
    clf = get_classifier(dataset)
    stacked = dataset.stacked
    f, p, lab, conf = _features(clf.on(x.device), x, dataset)
    n = min(len(x), n_features or len(x), len(dataset.test))
    f_real, *_ = _features(clf, dataset.test[:n], dataset)
    if n > 5:
        out.update(_feature_metrics(f[:n], p[:n], f_real))
    if stacked:
        out.update(stacked_mode_counts(lab, confidence=conf))
        if n > 5:
            inside = in_manifold(f, f_real)
            out["modes_in_data"] = int(stacked_mode_counts(lab[inside])["modes"]) if inside.any() else 0
            out["frac_in_data"] = float(inside.double().mean())
        if "clf_precision" in out and out["modes"] >= 100 and out["clf_precision"] < 0.05:
            out["modes_note"] = (f"{out['modes']} modes are hit by arg-max, but the samples' precision is "
                                 f"{out['clf_precision']:.1%}: they lie off the data, and the count is not coverage "
                                 f"— read modes_in_data ({out.get('modes_in_data')}); the classifier is confident on "
                                 f"off-data inputs too, so modes_confident ({out['modes_confident']}) does not "
                                 f"settle it")
    out["clf_accuracy"] = clf.test_accuracy
    out["clf_sha256"] = clf.sha256[:16]
    out["n_feature_samples"] = n
    return out


def vector_metrics(samples: Tensor, dataset: Dataset, *, flatten: bool = False) -> dict[str, Any]:
    """MMD², sliced W1 and exact W1 (when small enough) of samples [n, D] against the test split."""
    import ot

    x = samples.detach().cpu().double().flatten(1)
    finite = torch.isfinite(x).all(1)
    out: dict[str, Any] = {"frac_finite": float(finite.float().mean())}
    x = x[finite]
    test = dataset.test.flatten(1).double()
    n = min(len(x), len(test))
    if n < 2:
        return out
    bw = median_bandwidth(dataset.train.flatten(1)[:2000])
    out["mmd2"] = mmd2_unbiased(x[:n], test[:n], bw)
    out["sw1"] = float(ot.sliced_wasserstein_distance(x[:n].numpy(), test[:n].numpy(), n_projections=200, p=1,
                                                      seed=0))
    if n <= EXACT_W1_MAX:
        out["w1"] = wasserstein1(x[:n], test[:n])
    return out


def real_reference_arrays(dataset: Dataset, n: int) -> dict[str, Any]:
    """The same metrics with n real training images in place of samples (the real-vs-real ceiling)."""
    stacked = dataset.stacked
    n_draw = STACKED_SAMPLES if stacked else n
    g = torch.Generator().manual_seed(777)
    idx = torch.randperm(dataset.n_train, generator=g)[:min(n_draw, dataset.n_train)]
    x = dataset.train_batch(idx, generator=torch.Generator().manual_seed(778)) if dataset.binarize == "dynamic" \
        else dataset.train[idx]
    if dataset.kind == "vectors":
        return vector_metrics(x, dataset)
    out = image_metrics(x[:n] if stacked else x, dataset, n_features=n)
    if stacked:
        # the mode-count ceiling is taken on the stacked *test* split (26,000 triples of test images): the
        # classifier was trained on the train images, so this also charges its test error to the ceiling
        f_all, _, labels, conf = _features(get_classifier(dataset), dataset.test, dataset)
        out.update(stacked_mode_counts(labels, confidence=conf))
        inside = in_manifold(f_all, f_all[:min(n, len(f_all))])
        out["modes_in_data"] = int(stacked_mode_counts(labels[inside])["modes"])
        out["frac_in_data"] = float(inside.double().mean())
    return out


REFERENCE_SEED = 4242  # the noise reference's draw (fixed: the same reference for every model scored at n)


def reference_set(dataset: Dataset, n: int, kind: str) -> Tensor:
    """n samples that know nothing of the data, scored beside a model's at the same count (the image analogue of the
    2D noise floor): ``noise``, uniform on the data's value range (binary data: fair coin flips); ``collapsed``, the
    first training image repeated n times (a generator that collapsed onto one data point). A metric that scores
    either of them as high as real data cannot tell a model from collapse."""
    lo, hi = dataset.spec.value_range or (0.0, 1.0)
    shape = tuple(dataset.shape)
    if kind == "noise":
        g = torch.Generator().manual_seed(REFERENCE_SEED)
        u = torch.rand((n, *shape), generator=g)
        return (u < 0.5).float() if dataset.spec.kind == "binary" else lo + (hi - lo) * u
    if kind == "collapsed":
        # ``train`` holds one fixed draw of a dynamically binarised split: the same first image every time
        return dataset.train[:1].float().expand(n, *shape).clone()
    raise ValueError(f"unknown reference set {kind!r}: noise or collapsed")


def n_eval_samples(dataset: Dataset, n: int) -> int:
    """Samples drawn for an evaluation: n, or 26,000 for the stacked sets' mode counting."""
    return max(n, STACKED_SAMPLES) if dataset.stacked else n


__all__ = ["CONFIDENT", "image_metrics", "in_manifold", "MODE_COUNT", "n_eval_samples", "real_reference_arrays",
           "reference_set", "stacked_mode_counts", "STACKED_SAMPLES", "vector_metrics"]
