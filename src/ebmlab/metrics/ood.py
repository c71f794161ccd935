"""Out-of-distribution detection by the energy (BiB's §5.4: the energy of a model trained on CIFAR-10 gives SVHN
and CIFAR-100 images higher energies than CIFAR-10's test images; the score is the AUROC).

``ood_auroc`` is the probability that a test image of the run's data set gets a *lower* energy than an image of the
out-of-distribution set (ties count one half): the area under the ROC curve of the score −E(x), in-distribution as
the positive class. 0.5 is chance; 1 a perfect detector; below 0.5 the energy prefers the other set (as likelihood
models famously do on SVHN against CIFAR-10). It is the Mann–Whitney statistic U / (n_in · n_out), taken from
``scipy.stats.mannwhitneyu``, which ranks infinite energies as the extremes they are (scikit-learn's
``roc_auc_score`` refuses them); a NaN energy has no rank, so such inputs are refused with a count.

The inputs: up to ``n`` images of the run's test split and up to ``n`` of the other set's test split (its first
rows, so the same call gives the same number). The other set is brought into the run's units before it is scored:
data confined to a box (images in (−1, 1), binary data in (0, 1)) are mapped linearly from the other set's box onto
the run's; a user's standardised vectors are un-standardised with their own train statistics, and standardised with
the run's where the run's are (raw vectors, a 2D toy set's, stay raw). The energy is the method's own
(``method.energy``, in evaluation mode, no gradient); for a method whose model is not exp(−E) alone (KALE/GEBM:
exp(−E) re-weights a generator) the score is still its energy, and the result says so.

Deviation from the paper: none in the statistic; the paper's sets (CIFAR-10 against SVHN and CIFAR-100) are the
user's, read from the run's data directory (or ``EBMLAB_DATA``), since none can be installed with the package.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data.base import Dataset
from ..errors import EbmlabError
from ..metadata import Metric

METRICS = {"ood_auroc": Metric("method", "", "↑", "AUROC of −energy: the run's test split against an "
                                                   "out-of-distribution set (ebmlab eval --ood)")}
BOOKKEEPING = {"ood_data", "ood_n_in", "ood_n_out", "ood_energy_in", "ood_energy_out", "ood_note"}


def auroc(score_in: np.ndarray, score_out: np.ndarray) -> float:
    """P(score_in > score_out) + ½ P(equal): the area under the ROC curve with the first set as positives (module
    docstring). Infinite scores rank as extremes; NaN is refused."""
    from scipy.stats import mannwhitneyu

    a = np.asarray(score_in, dtype=np.float64).ravel()
    b = np.asarray(score_out, dtype=np.float64).ravel()
    if len(a) == 0 or len(b) == 0:
        raise EbmlabError(f"an AUROC needs scores of both sets; got {len(a)} and {len(b)}")
    bad = int(np.isnan(a).sum() + np.isnan(b).sum())
    if bad:
        raise EbmlabError(f"{bad} of the {len(a) + len(b)} scores are NaN: they have no rank, so no AUROC is "
                          f"formed (the energy is NaN on those inputs: a diverged model, or inputs outside the data's "
                          f"range)")
    return float(mannwhitneyu(a, b, alternative="two-sided").statistic) / (len(a) * len(b))


def to_units_of(x: torch.Tensor, source: Dataset, target: Dataset) -> torch.Tensor:
    """``x`` (rows of ``source``'s splits) in ``target``'s units (module docstring); the shapes must agree."""
    if tuple(source.shape) != tuple(target.shape):
        raise EbmlabError(f"the out-of-distribution set {source.name} holds samples of shape {tuple(source.shape)}; "
                          f"the run's data ({target.name}) has {tuple(target.shape)}: an OOD set must have the run's "
                          f"shape (resize or crop it into a .npy of that shape)")
    x = x.double()
    s_std, t_std = source.standardisation, target.standardisation
    if s_std is not None:  # back to the raw values
        x = x * torch.tensor(s_std["std"], dtype=torch.float64) + torch.tensor(s_std["mean"], dtype=torch.float64)
    if t_std is not None:
        x = (x - torch.tensor(t_std["mean"], dtype=torch.float64)) / torch.tensor(t_std["std"], dtype=torch.float64)
    if s_std is not None or t_std is not None:
        return x.float()
    s_box, t_box = source.spec.value_range, target.spec.value_range
    if (s_box is None) != (t_box is None):
        raise EbmlabError(f"{source.name} is {'unbounded' if s_box is None else f'confined to {s_box}'} and "
                          f"{target.name} {'unbounded' if t_box is None else f'confined to {t_box}'}: their units "
                          f"cannot be matched")
    if s_box is not None and t_box is not None and tuple(s_box) != tuple(t_box):
        x = t_box[0] + (x - s_box[0]) * ((t_box[1] - t_box[0]) / (s_box[1] - s_box[0]))
    return x.float()


@torch.no_grad()
def _energies(method, x: torch.Tensor, chunk: int) -> np.ndarray:
    method.train(False)
    try:
        return torch.cat([method.energy(x[i:i + chunk].to(method.device)).detach().double().cpu().reshape(-1)
                          for i in range(0, len(x), chunk)]).numpy()
    finally:
        method.train(True)


def ood_detection(method, dataset: Dataset, other: Dataset, *, n: int = 10_000, chunk: int = 500) -> dict[str, Any]:
    """``ood_auroc`` of the method's energy: ``dataset``'s test split against ``other``'s (module docstring)."""
    if not getattr(method, "has_energy", False):
        raise EbmlabError(f"out-of-distribution detection scores inputs by the energy; method {method.name!r} has "
                          f"none")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise EbmlabError(f"n must be a positive number of inputs per set, got {n!r}")
    x_out = to_units_of(other.test[:n], other, dataset)  # checks shapes and units before any energy is computed
    x_in = dataset.test[:n]
    e_in, e_out = _energies(method, x_in, chunk), _energies(method, x_out, chunk)
    out: dict[str, Any] = {"ood_auroc": auroc(-e_in, -e_out), "ood_data": other.name, "ood_n_in": len(e_in),
                           "ood_n_out": len(e_out), "ood_energy_in": float(np.mean(e_in)),
                           "ood_energy_out": float(np.mean(e_out))}
    if not getattr(method, "energy_defines_density", True):
        out["ood_note"] = (f"{method.name}'s model is not exp(−E) alone (its energy re-weights a generator): the score "
                           f"is the energy, not the model's density")
    return out


__all__ = ["METRICS", "BOOKKEEPING", "auroc", "ood_detection", "to_units_of"]
