"""The domain classifier behind the image metrics: a small CNN trained on a data set's own train split.

With no Inception weights (and for 8×8 or 28×28 grey images, where ImageNet features mean little) the image
metrics are computed in the feature space of a classifier of the data set itself (EVALUATION.md): its
penultimate layer gives the features of the Fréchet distance, KID, precision/recall and density/coverage, its
probabilities the Inception-style score, its labels the stacked-set modes. These numbers are labelled
``clf_*`` and never called FID.

A classifier is saved as ``DIR/NAME.json`` (its weights' sha256, the sha256 of the data it was trained on, test
accuracy, architecture and training recipe) and the weights-only state dict ``DIR/NAME.<sha256[:12]>.pt`` it
names; DIR is ``EBMLAB_CLASSIFIERS`` or ``~/.cache/ebmlab/classifiers``. NAME is a built-in set's name, or for a
user's data its file stem and content hash (:func:`classifier_name`). Loading recomputes the sha256 of the weights
and refuses a file that differs from the record, or a record of other data. Training is
deterministic for a seed (``ebmlab classifier train --data NAME``): it runs on one thread whatever the caller's
setting, because a multi-threaded reduction sums in another order and gives other weights (and another hash) for
the same seed; the same machine type therefore gives the same file (another CPU may not: a bench report lists
the runs each classifier scored when they differ, ``ebmlab.bench.classifiers_used``). An image evaluation that
finds no classifier trains it first (and says so), so that a first run needs no extra step; processes that find none
at the same time (a bench's workers) train it once, under a lock (:func:`get_classifier`).

Architecture: Conv3×3(w) → Conv3×3/2(2w) → Conv3×3/2(4w) (ReLU each) → Linear → 128 features (ReLU) →
Linear → classes; Adam(1e-3), batch 128, no augmentation.

Where it runs: the classifier is trained and kept on the CPU; the samples of a run on a GPU are classified on that
GPU (:meth:`Classifier.on`: a copy of the network there, in full float32 — TF32 off for its convolutions and
matrix products, so that features differ from the CPU's by float32 rounding only). On the CPU alone, the 78,000
single-channel passes of a stacked set's 26,000 samples took 17 of an evaluation's 24 s (one thread), and 6 runs
sharing an H100 spent ~32 s an evaluation on it.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import content_sha256
from ..errors import EbmlabError
from ..nets.calls import rows_per_call
from ..data.base import ArrayDataset, Dataset

FEATURE_DIM = 128
DEFAULT_EPOCHS = {"digits": 60, "fashion": 6, "mnist": 4, "cifar10": 12}


def batch_rows(x: Tensor, device: torch.device | None = None) -> int:
    """Images per forward pass on ``device`` (default: x's): 128 for images of 28×28 values or more on the CPU
    (``nets.calls``), else 2048."""
    return rows_per_call(x[0].numel(), device or x.device) or 2048


class DomainClassifier(nn.Module):
    def __init__(self, channels: int, side: int, n_classes: int, width: int = 32):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(channels, width, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(2 * width, 4 * width, 3, 2, 1), nn.ReLU(), nn.Flatten())
        s = (side + 3) // 4
        self.fc = nn.Sequential(nn.Linear(4 * width * s * s, FEATURE_DIM), nn.ReLU())
        self.out = nn.Linear(FEATURE_DIM, n_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.fc(self.trunk(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.features(x))


@contextmanager
def _full_float32(device: torch.device) -> Iterator[None]:
    """CUDA: convolutions and matrix products in IEEE float32 while the classifier runs (PyTorch's default runs
    cuDNN convolutions in TF32, a 10-bit mantissa), the settings as they were afterwards; elsewhere nothing."""
    if device.type != "cuda":
        yield
        return
    conv, mm = torch.backends.cudnn.conv, torch.backends.cuda.matmul  # type: ignore[attr-defined]  # (torch ≥ 2.9)
    old = (conv.fp32_precision, mm.fp32_precision)
    conv.fp32_precision, mm.fp32_precision = "ieee", "ieee"
    try:
        yield
    finally:
        conv.fp32_precision, mm.fp32_precision = old


def classifier_dir() -> Path:
    d = os.environ.get("EBMLAB_CLASSIFIERS")
    return Path(d) if d else Path.home() / ".cache" / "ebmlab" / "classifiers"


def classifier_name(dataset: Dataset) -> str:
    """The name of the classifier that labels ``dataset``: of the base set for a stacked set, else its own.

    A built-in set keeps its name (its files are checksummed, so the name fixes the content). A user's file or
    folder is named by its stem and the first 16 hex digits of its content's sha256: two paths with different
    data never share a classifier, and a file rewritten in place gets a new one."""
    from ..data import builtin_names, file_label

    name = dataset.base if dataset.stacked and dataset.base else dataset.name
    if name in builtin_names():
        return name
    return f"{file_label(name)}-{content_sha256(_images(dataset))[:16]}"


@dataclass
class Classifier:
    net: DomainClassifier
    info: dict[str, Any]
    copies: dict[str, Classifier] = field(default_factory=dict, repr=False, compare=False)

    def on(self, device: torch.device | str) -> Classifier:
        """This classifier with its network on ``device``: itself on the CPU, else a copy made once and kept."""
        device = torch.device(device)
        if device.type == "cpu":
            return self
        key = str(device)
        if key not in self.copies:
            self.copies[key] = Classifier(copy.deepcopy(self.net).to(device), self.info)
        return self.copies[key]

    @torch.no_grad()
    def run(self, x: Tensor, chunk: int | None = None) -> tuple[Tensor, Tensor]:
        """(features [n, 128], probabilities [n, classes]) of images x [n, C, H, W] (C = the classifier's), computed
        where the network is (:meth:`on`) and returned on the CPU."""
        self.net.eval()
        device = next(self.net.parameters()).device
        if not len(x):
            return torch.zeros(0, FEATURE_DIM), torch.zeros(0, self.net.out.out_features)
        chunk = chunk or batch_rows(x, device)
        feats, probs = [], []
        with _full_float32(device):
            for i in range(0, len(x), chunk):
                f = self.net.features(x[i:i + chunk].to(device).float())
                feats.append(f.cpu())
                probs.append(F.softmax(self.net.out(f), dim=1).cpu())
        return torch.cat(feats), torch.cat(probs)

    @property
    def sha256(self) -> str:
        return self.info["sha256"]

    @property
    def test_accuracy(self) -> float:
        return self.info["test_accuracy"]


def _accuracy(net: DomainClassifier, x: Tensor, y: Tensor) -> float:
    net.eval()
    with torch.no_grad():
        k = batch_rows(x)
        pred = torch.cat([net(x[i:i + k]).argmax(1) for i in range(0, len(x), k)])
    return float((pred == y).double().mean())


def _fit(net: DomainClassifier, opt: torch.optim.Optimizer, x: Tensor, y: Tensor, g: torch.Generator, epochs: int,
         name: str, t0: float, progress: bool) -> None:
    """Adam over shuffled batches of 128; ``progress``: one bar over every batch of every epoch, with the time left
    (an epoch of Fashion-MNIST is about a minute on one thread: a line per epoch left a minute of silence)."""
    from tqdm.auto import tqdm

    per_epoch = len(range(0, len(x) - 127, 128))
    with tqdm(total=per_epoch * epochs, disable=not progress, desc=f"domain classifier {name}", unit="batch",
              file=sys.stderr, mininterval=1.0, leave=False) as bar:
        for ep in range(epochs):
            net.train()
            perm = torch.randperm(len(x), generator=g)
            for i in range(0, len(x) - 127, 128):
                idx = perm[i:i + 128]
                loss = F.cross_entropy(net(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                bar.update(1)
            bar.set_postfix_str(f"epoch {ep + 1}/{epochs}", refresh=False)
    if progress:
        print(f"classifier {name}: {epochs} epochs in {time.perf_counter() - t0:.0f} s", file=sys.stderr)


def _images(dataset: Dataset) -> ArrayDataset:
    """A data set a domain classifier is for: images held as arrays, or one line saying what was expected."""
    if not isinstance(dataset, ArrayDataset) or not dataset.spec.is_image:
        raise EbmlabError(f"{dataset.name}: a domain classifier needs labelled C×H×W images held as arrays; this "
                          f"data set has samples of shape {tuple(dataset.spec.shape)}")
    return dataset


def _labels(dataset: Dataset) -> tuple[Tensor, Tensor]:
    y, yt = dataset.train_labels, dataset.test_labels
    if y is None or yt is None:
        raise EbmlabError(f"{dataset.name}: a domain classifier needs labels of both splits; this data set has none")
    return y, yt


def check_classifiable(dataset: Dataset) -> None:
    """Refuse a data set that has no domain classifier: one needs labelled C×H×W images (a stacked set is labelled
    by its base set's)."""
    if dataset.stacked:
        return
    labels = dataset.train_labels
    if labels is None or not dataset.spec.is_image:
        raise EbmlabError(f"{dataset.name}: a domain classifier needs labelled C×H×W images; this data set has "
                          f"{'no labels' if labels is None else f'samples of shape {tuple(dataset.spec.shape)}'}")


def train_classifier(dataset: Dataset, *, epochs: int | None = None, seed: int = 0, width: int = 32,
                     out_dir: str | Path | None = None, progress: bool = True) -> Classifier:
    """Train the domain classifier of ``dataset`` (a labelled image or binary set) and save it (module docstring)."""
    import re

    from ..atomic import atomic_write_bytes, sole_writer

    if dataset.stacked:
        raise EbmlabError(f"{dataset.name} is a stacked set: its channels are labelled by the classifier of "
                          f"{dataset.base}; train that one (`ebmlab classifier train --data {dataset.base}`)")
    check_classifiable(dataset)
    name = classifier_name(dataset)
    epochs = epochs or DEFAULT_EPOCHS.get(name, 5)
    out = Path(out_dir) if out_dir is not None else classifier_dir()
    (x, xt), (y, yt) = (dataset.train, dataset.test), _labels(dataset)
    c, side = dataset.shape[0], dataset.shape[1]
    n_classes = int(max(y.max(), yt.max())) + 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = DomainClassifier(c, side, n_classes, width)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed + 1)
    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # reproducible weights: see the module docstring
    try:
        _fit(net, opt, x, y, g, epochs, name, t0, progress)
    finally:
        torch.set_num_threads(threads)
    acc = _accuracy(net, xt, yt)
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    blob = buf.getvalue()
    sha = hashlib.sha256(blob).hexdigest()
    info = {"data": name, "source": str(dataset.name), "data_sha256": content_sha256(_images(dataset)), "sha256": sha,
            "file": f"{name}.{sha[:12]}.pt", "test_accuracy": acc,
            "n_test": int(len(xt)), "channels": c, "side": side, "n_classes": n_classes, "width": width,
            "epochs": epochs, "seed": seed, "recipe": "Adam lr 1e-3, batch 128, no augmentation",
            "train_seconds": round(time.perf_counter() - t0, 1)}
    # the weights go to a new file named by their hash, then the record is switched to it atomically: a kill at
    # any point leaves the old record and its weights, or the new ones, never a record without its weights; the
    # temporaries a killed earlier training left are removed first (atomic.sole_writer)
    owned = rf"{re.escape(name)}\.(?:json|[0-9a-f]{{12}}\.pt)"
    with sole_writer(out, name, owned):
        old = _record(out / f"{name}.json")
        atomic_write_bytes(out / str(info["file"]), lambda fh: fh.write(blob))
        atomic_write_bytes(out / f"{name}.json", lambda fh: fh.write(json.dumps(info, indent=1).encode()))
        stale = {str(old.get("file")) if old else "", f"{name}.pt"} | {f.name for f in out.glob(f"{name}.*.pt")}
        for f in stale - {str(info["file"]), ""}:  # the previous weights, and any a kill left unreferenced
            (out / Path(f).name).unlink(missing_ok=True)
    return Classifier(net.eval(), info)


def _record(path: Path) -> dict[str, Any] | None:
    try:
        rec = json.loads(path.read_text())
        return rec if isinstance(rec, dict) else None
    except (OSError, ValueError):
        return None


def load_classifier(name: str, directory: str | Path | None = None, *, data_sha256: str | None = None) -> Classifier:
    """Load the classifier recorded in ``DIR/NAME.json`` after checking its weights' sha256 (and, given
    ``data_sha256``, that it was trained on that data)."""
    from ..data.readers import sha256_file

    d = Path(directory) if directory is not None else classifier_dir()
    js = d / f"{name}.json"
    if not js.is_file():
        raise EbmlabError(f"no classifier for {name} in {d}; train it with `ebmlab classifier train --data {name}`")
    try:
        info = json.loads(js.read_text())
        want = info["sha256"]
        pt = d / Path(info.get("file", f"{name}.pt")).name
    except (ValueError, KeyError, OSError, TypeError, AttributeError) as exc:
        raise EbmlabError(f"{js} is not a classifier record ({exc}); retrain with `ebmlab classifier train "
                          f"--data {name}`") from None
    if not pt.is_file():
        raise EbmlabError(f"the classifier record {js} names {pt.name}, which is missing; retrain with "
                          f"`ebmlab classifier train --data {name}`")
    if data_sha256 is not None and info.get("data_sha256") not in (None, data_sha256):
        raise EbmlabError(f"classifier {name} in {d} was trained on other data (data sha256 "
                          f"{str(info.get('data_sha256'))[:16]}…, this data {data_sha256[:16]}…); retrain it")
    got = sha256_file(pt)
    if got != want:
        raise EbmlabError(f"classifier {pt} has sha256 {got}, but its record says {want}: the weights were changed "
                          f"or corrupted, and the metrics refuse them; retrain with `ebmlab classifier train "
                          f"--data {name}`")
    net = DomainClassifier(info["channels"], info["side"], info["n_classes"], info["width"])
    net.load_state_dict(torch.load(pt, map_location="cpu", weights_only=True))
    return Classifier(net.eval(), info)


def has_classifier(dataset: Dataset) -> bool:
    """Whether the classifier ``dataset``'s image metrics need is already trained (else the first image
    evaluation trains it)."""
    return (classifier_dir() / f"{classifier_name(dataset)}.json").is_file()


def get_classifier(dataset: Dataset, *, progress: bool = True) -> Classifier:
    """The classifier of ``dataset`` (of its base set when stacked), trained on first use."""
    from ..data import get_dataset

    name = classifier_name(dataset)
    d = classifier_dir()
    base = get_dataset(dataset.base, data_dir=dataset.data_dir) if dataset.stacked and dataset.base else dataset
    if not (d / f"{name}.json").is_file():
        with _first_training(d, name):  # another process training it first: wait, then load what it wrote
            if not (d / f"{name}.json").is_file():
                if progress:
                    epochs = DEFAULT_EPOCHS.get(name, 5)
                    print(f"ebmlab: no domain classifier for {name} in {d}: training it on its {base.n_train} train "
                          f"images ({epochs} epochs, once; later evaluations reuse it)", file=sys.stderr, flush=True)
                train_classifier(base, progress=progress)
    return load_classifier(name, d, data_sha256=content_sha256(_images(base)))


@contextmanager
def _first_training(directory: Path, name: str) -> Iterator[None]:
    """Hold the training of classifier ``name`` on first use: the workers of a bench or of ``claims run --jobs N``
    that find no classifier train it once, the others wait and load it. The lock (``atomic.advisory_lock``) is on
    ``DIR/.NAME.training``, an empty file left in place (not the directory's lock of ``atomic.sole_writer``, which
    the training itself takes to write). A directory that cannot be written, or no ``fcntl`` (Windows), locks
    nothing: each process trains, and the same seed gives the same weights (module docstring)."""
    from ..atomic import advisory_lock

    with ExitStack() as held:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            held.enter_context(advisory_lock(directory / f".{name}.training"))
        except OSError:
            pass  # nothing to lock in a place that cannot be written
        yield
