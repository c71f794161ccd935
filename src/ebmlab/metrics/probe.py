"""Linear probe of a trained energy or discriminator (VGAN's Table 1 in small; EVALUATION.md).

The method's penultimate features (``method.features``: the conv critic's 8w-unit layer, VGAN's expert inputs,
EBGAN's code, the VAE's posterior mean) are computed, frozen, on ``n_train`` training images and on the whole test
split; each feature is standardised with the training mean and standard deviation; a multinomial logistic
regression (scikit-learn, L2 with C = 1, lbfgs, at most 2000 iterations) is fitted on the training features and
the test error is reported. The same budget (``n_train``, the regulariser) serves every method.

Features and fit run on one thread (torch's and the BLAS/OpenMP pools, by threadpoolctl): lbfgs stops at its
tolerance, where float rounding decides a few test images, so with the process's thread count free the same run
gave 0.1691–0.1697 across four thread settings (benchmarks/claims/reproduce.md); on one thread the value is a
function of the run (and the machine's libraries) alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import EbmlabError

from ..metadata import Metric
from ..data.base import Dataset

METRICS = {"probe_test_error": Metric("method", "%", "↓", "linear probe test error on the frozen energy features")}
BOOKKEEPING = {"probe_feature_dim", "probe_n_test", "probe_n_train"}


@torch.no_grad()
def _features(method, x: torch.Tensor, chunk: int = 1024) -> np.ndarray:
    method.train(False)
    try:
        return torch.cat([method.features(x[i:i + chunk].to(method.device)).flatten(1).cpu()
                          for i in range(0, len(x), chunk)]).double().numpy()
    finally:
        method.train(True)


def linear_probe(method, dataset: Dataset, *, n_train: int = 10_000, seed: int = 0, c: float = 1.0) -> dict[str, Any]:
    """Test error of a logistic regression on frozen features (module docstring), on one thread."""
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            return _probe(method, dataset, n_train=n_train, seed=seed, c=c)
    finally:
        torch.set_num_threads(threads)


def _probe(method, dataset: Dataset, *, n_train: int, seed: int, c: float) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    if dataset.train_labels is None or dataset.test_labels is None:
        raise EbmlabError(f"the linear probe needs labels; {dataset.name} has none")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(dataset.n_train, generator=g)[:min(n_train, dataset.n_train)]
    f_tr = _features(method, dataset.train[idx])
    f_te = _features(method, dataset.test)
    y_tr, y_te = dataset.train_labels[idx].numpy(), dataset.test_labels.numpy()
    mu, sd = f_tr.mean(0), f_tr.std(0)
    sd[sd == 0] = 1.0
    clf = LogisticRegression(C=c, max_iter=2000)
    clf.fit((f_tr - mu) / sd, y_tr)
    err = float((clf.predict((f_te - mu) / sd) != y_te).mean())
    return {"probe_test_error": err, "probe_feature_dim": int(f_tr.shape[1]), "probe_n_train": int(len(idx)),
            "probe_n_test": int(len(y_te))}
