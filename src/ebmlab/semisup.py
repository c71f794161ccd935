"""Semi-supervised classification with generated augmentations — the VGAN paper's Table 2 protocol.

A small convolutional classifier (the domain classifier's architecture, ``metrics.classifier``) is trained from
scratch on k labelled training images, balanced per class and chosen by a stated seed; with a trained run that can
augment (VGAN-VCD: one transition T(x) of each labelled image, keeping its label), every step adds ρ times the
cross-entropy of the augmented batch to that of the real batch:

    loss = CE(f(x), y) + ρ · CE(f(T(x)), y),      x, y a batch of the k labelled examples,

so ρ = 0 is the supervised baseline and ρ = 1 weighs generated and real examples equally (where the paper reports
that the augmentation breaks). Test error on the whole test split, mean ± standard deviation over seeds (each seed
draws its own label subset, initialisation and batches).

Decisions: a command (``ebmlab semisup``), not a method option, because it evaluates a trained run as ``eval
--probe`` does; ρ weights the loss rather than mixing a fraction of generated images into a batch of fixed size
(the paper's wording allows both; the weight keeps the real examples per step identical across ρ). The classifier is
smaller than the paper's (CPU budget); the protocol, not the network, is what is compared.

With an augmenting run the table also says how much of the label the augmentation keeps
(:func:`augmentation_check`): the data set's domain classifier (``metrics.classifier``, trained on the whole
labelled train split) labels every test image and one transition of it; its accuracy on T(x) beside its accuracy on
x, and the fraction of T(x) it puts in the class it gives x. A transition that changes the class turns the ρ-term
into label noise, which is what the paper's ρ = 1 failure suggests and what an under-trained transition does.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .data.labels import balanced_subset
from .errors import EbmlabError
from .metrics.classifier import DomainClassifier
from .data.base import ArrayDataset, Dataset

if TYPE_CHECKING:
    from .methods.base import Method


def train_and_test(x: Tensor, y: Tensor, x_test: Tensor, y_test: Tensor, n_classes: int, *, steps: int, seed: int,
                   rho: float = 0.0, augment: Callable[[Tensor, torch.Generator], Tensor] | None = None,
                   batch: int = 100, width: int = 16, lr: float = 1e-3) -> float:
    """Test error (fraction) of a classifier trained for ``steps`` steps on (x, y), with ρ-weighted augmentations."""
    torch.manual_seed(seed)
    net = DomainClassifier(x.shape[1], x.shape[-1], n_classes, width=width)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    g_aug = torch.Generator().manual_seed(10_000 + seed)
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (min(batch, len(x)),), generator=g)
        xb, yb = x[idx], y[idx]
        loss = F.cross_entropy(net(xb), yb)
        if rho > 0 and augment is not None:
            loss = loss + rho * F.cross_entropy(net(augment(xb, g_aug).to(xb.dtype)), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(x_test[i:i + 2048]).argmax(1) for i in range(0, len(x_test), 2048)])
    return float((pred != y_test).double().mean())


@torch.no_grad()
def augmentation_check(x: Tensor, y: Tensor, augment: Callable[[Tensor, torch.Generator], Tensor], classifier: Any,
                       *, seed: int = 0, chunk: int = 1000) -> dict[str, Any]:
    """How much of the label one augmentation T keeps, judged by a classifier on labelled images (x, y).

    Returns the classifier's accuracy on x and on T(x) (one draw of T per image, from a generator seeded by ``seed``),
    ``class_kept``: the fraction of images with argmax f(T(x)) = argmax f(x), and ``mean_abs_change``: the mean
    absolute pixel change |T(x) − x| in the data's units.
    """
    g = torch.Generator().manual_seed(seed)
    right_x = right_t = kept = 0
    change = 0.0
    for i in range(0, len(x), chunk):
        xb, yb = x[i:i + chunk].float(), y[i:i + chunk]
        tb = augment(xb, g).float()
        px, pt = classifier.run(xb)[1].argmax(1), classifier.run(tb)[1].argmax(1)
        right_x += int((px == yb).sum())
        right_t += int((pt == yb).sum())
        kept += int((pt == px).sum())
        change += float((tb - xb).abs().mean(dim=tuple(range(1, xb.dim()))).sum())
    n = len(x)
    return {"images": n, "accuracy_real": right_x / n, "accuracy_augmented": right_t / n, "class_kept": kept / n,
            "mean_abs_change": change / n, "classifier_sha256": classifier.sha256}


def semisup_table(dataset: Dataset, *, labels: int, rhos: tuple[float, ...], seeds: int, steps: int,
                  method: Method | None = None, progress: bool = True) -> dict[str, Any]:
    """Test error per ρ (ρ = 0: no augmentation) over ``seeds`` label subsets; see the module docstring."""
    if not isinstance(dataset, ArrayDataset) or not dataset.spec.is_image or dataset.n_classes is None:
        raise EbmlabError(f"{dataset.name}: semi-supervised classification needs labelled images (fashion, mnist, "
                          f"digits, cifar10, or a user's .npz with y_train/y_test)")
    if any(r > 0 for r in rhos) and (method is None or not method.can_augment):
        from .methods import methods_with

        raise EbmlabError(f"rho > 0 needs --run with a run that augments (methods with a transition T(x): "
                          f"{methods_with('can_augment')}); "
                          f"use --rho 0 for the supervised baseline alone")
    arr = dataset.arrays
    y_all = np.asarray(arr.train_y)
    x_test, y_test = dataset.test.float(), torch.as_tensor(np.asarray(arr.test_y), dtype=torch.long)
    n_classes = int(dataset.n_classes)
    augment = None
    if method is not None and method.can_augment:
        method.train(False)

        def augment(xb: Tensor, g: torch.Generator) -> Tensor:
            return method.augment(xb.to(method.device), generator=g).float().cpu()
    t0 = time.perf_counter()
    check = None
    if augment is not None:
        from .metrics.classifier import get_classifier

        check = augmentation_check(x_test, y_test, augment, get_classifier(dataset, progress=progress))
    rows = []
    for rho in rhos:
        errs = []
        for s in range(seeds):
            idx = balanced_subset(y_all, labels, n_classes, s)
            x = dataset.train[torch.as_tensor(idx)].float()
            y = torch.as_tensor(y_all[idx], dtype=torch.long)
            errs.append(train_and_test(x, y, x_test, y_test, n_classes, steps=steps, seed=s, rho=rho,
                                       augment=augment))
            if progress:
                print(f"rho={rho:g} seed {s}: test error {100 * errs[-1]:.2f} % ({time.perf_counter() - t0:.0f} s)",
                      flush=True)
        rows.append({"rho": rho, "errors": errs, "mean": float(np.mean(errs)),
                     "std": float(np.std(errs, ddof=1)) if len(errs) > 1 else 0.0})
    return {"data": dataset.name, "labels": labels, "seeds": seeds, "steps": steps, "rows": rows,
            "test_points": len(x_test), "augmentation_check": check, "seconds": time.perf_counter() - t0}


def parse_rhos(rhos: str | tuple[float, ...] | list[float]) -> tuple[float, ...]:
    """Weights ρ of the augmented loss, from comma-separated text (``--rho 0,0.01,0.1,1``) or numbers; each finite
    and ≥ 0."""
    if isinstance(rhos, str):
        try:
            rhos = tuple(float(v) for v in rhos.split(","))
        except ValueError:
            raise EbmlabError(f"--rho takes comma-separated numbers ≥ 0, e.g. 0,0.01,0.1,1; got {rhos!r}") from None
    rhos = tuple(rhos)
    if not rhos or any(not isinstance(r, (int, float)) or not (r >= 0) or r == float("inf") for r in rhos):
        raise EbmlabError(f"--rho values must be finite and ≥ 0; got {rhos!r}")
    return tuple(float(r) for r in rhos)


def run_semisup(data: str, *, run: str | None = None, labels: int = 1000,
                rhos: str | tuple[float, ...] = (0.0, 0.01, 0.1, 1.0), seeds: int = 3, steps: int = 600,
                out: str | None = None, data_dir: str | None = None, device: str | None = None,
                progress: bool = True) -> dict[str, Any]:
    """``ebmlab semisup``: the table of :func:`semisup_table` on ``data``, augmented by the transitions of the run
    ``run`` (trained on the same data) where given, written to ``out`` (NAME.json) when given. Every argument is
    checked, and ``out`` found writable, before the table is computed."""
    from pathlib import Path

    from .api import load_run
    from .data import get_dataset
    from .errors import require_int
    from .atomic import atomic_write_bytes, check_output_dir

    rhos = parse_rhos(rhos)
    for flag, v in (("--labels", labels), ("--seeds", seeds), ("--steps", steps)):
        require_int(flag, v, 1)
    if out is not None:
        if not str(out).endswith(".json"):
            raise EbmlabError(f"--out {out}: the table is written as JSON; give a NAME.json path")
        check_output_dir(Path(out).parent)
    ds = get_dataset(data, data_dir=data_dir)
    method = None
    if run is not None:
        cfg, method, _ = load_run(run, device)
        if cfg.data != data:
            raise EbmlabError(f"--run {run} was trained on {cfg.data}, not {data}: its transitions would augment "
                              f"the wrong images")
    res = semisup_table(ds, labels=labels, rhos=rhos, seeds=seeds, steps=steps, method=method, progress=progress)
    res["run"] = run
    if out is not None:
        import json

        atomic_write_bytes(Path(out), lambda fh: fh.write(json.dumps(res, indent=1).encode()))
    return res

