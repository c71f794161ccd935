"""Image, binary and vector data sets: built-in names, their stacked and binarised variants, and a user's data.

Built-in names (nothing downloads; files come from a package or a directory the user names):
- ``digits``: scikit-learn's 1797 8×8 digits (grey levels 0..16 scaled to 0..255), split by a fixed
  permutation (seed 0) into 1500 train / 297 test images.
- ``fashion``: Fashion-MNIST (60k/10k, 28×28) from the Debian package ``dataset-fashion-mnist``
  (/usr/share/datasets/fashion-mnist), or from ``DATA_DIR/fashion-mnist``; the md5 of each *decompressed* file
  is checked (the package recompressed them).
- ``mnist``: the idx files (raw or .gz) from ``DATA_DIR`` or ``DATA_DIR/mnist``; .gz files are checked against
  the published md5s, raw files by their idx header and length only (no published md5 exists for them).
- ``cifar10``: the python pickles from ``DATA_DIR`` (``cifar-10-batches-py``), each md5-checked before unpickling.
- ``svhn``: SVHN's cropped digits (``train_32x32.mat``, ``test_32x32.mat``) from ``DATA_DIR`` or ``DATA_DIR/svhn``,
  each md5-checked before it is parsed; labels 0..9 (the files' 10 is the digit 0); the extra split is not read.
- ``binarized_mnist``: the standard fixed-binarised MNIST (``binarized_mnist_{train,valid,test}.amat``,
  50k/10k/10k; the valid split is not used) from ``DATA_DIR``.
- ``stacked_<base>`` for base in digits, fashion, mnist: three independent images of the base set as the three
  channels (1000 modes, label c₀ + 10c₁ + 100c₂); 60 000 train triples from the train split and 26 000 test
  triples from the test split, drawn with fixed seeds (101 and 202).
- ``stacked_<base>32``: the same triples with a border of background (grey level 0) around each image to make it
  32×32 (2 pixels a side for 28×28 bases), for the papers' 32×32 networks (``net=dcgan|ebmbb32|gebm_resnet``), as
  EBM-BB's own image trainer needs; evaluation classifies each channel without the border, so the modes and
  feature metrics are those of ``stacked_<base>`` (the border of a sample is not scored).
- ``<base>_bin`` (fixed binarisation: one Bernoulli draw of the grey levels/255 with seed 0 for train, 1 for
  test) and ``<base>_dynbin`` (a fresh draw in every training batch), for base in digits, fashion, mnist.

``DATA_DIR`` is the run option ``data_dir`` (CLI ``--data-dir``) or else the environment variable
``EBMLAB_DATA``. Images are served in [−1, 1]; binary data in {0, 1}.

A user's own data: ``path/to/file.npz`` or ``.npy`` and ``path/to/folder/`` of PNG/JPEG images
(:func:`user_dataset`).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
from torch import Tensor

from ..errors import EbmlabError
from .base import ArrayDataset, Arrays, DataSpec, as_float, uint8_to_signed, uint8_to_unit
from .readers import read_amat, read_cifar10, read_idx_pair, read_image_folder, read_svhn, read_user_array

FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MD5_RAW = {  # decompressed content (EVALUATION.md)
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
MNIST_MD5_GZ = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
CIFAR10_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb", "test_batch": "40351d587109b95175f43aff81a1287e",
}
SVHN_MD5 = {"train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373", "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3"}
STACKED_TRAIN, STACKED_TEST = 60_000, 26_000
STACK_SEEDS = (101, 202)
BINARIZE_SEEDS = (0, 1)
IMAGE_RANGE = (-1.0, 1.0)


def data_dir_of(data_dir: str | None) -> Path | None:
    d = data_dir or os.environ.get("EBMLAB_DATA") or ""
    return Path(d) if d else None


def _need_dir(data_dir: str | None, what: str, files: str) -> Path:
    d = data_dir_of(data_dir)
    if d is None:
        raise EbmlabError(f"{what} is read from a local directory and never downloaded: pass --data-dir DIR (or "
                          f"data_dir=DIR, or set EBMLAB_DATA) to a directory holding {files}")
    if d.exists() and not d.is_dir():
        raise EbmlabError(f"data directory {d} is a file, not a directory (from --data-dir or EBMLAB_DATA); pass the "
                          f"directory that holds {files}")
    if not d.is_dir():
        raise EbmlabError(f"data directory {d} does not exist (from --data-dir or EBMLAB_DATA)")
    return d


# --- base loaders: uint8 images [n, 1|3, H, W] and int64 labels ----------------------------------------------

def _load_digits() -> Arrays:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(x))
    tr, te = perm[:1500], perm[1500:]
    return Arrays(x[tr], x[te], y[tr], y[te])


def _idx_arrays(d: Path, what: str, **md5) -> Arrays:
    tx, ty = read_idx_pair(d, "train", what=what, **md5)
    sx, sy = read_idx_pair(d, "t10k", what=what, **md5)
    return Arrays(tx[:, None], sx[:, None], ty.astype(np.int64), sy.astype(np.int64))


def _load_fashion(data_dir: str | None) -> Arrays:
    cands = []
    d = data_dir_of(data_dir)
    if d is not None:
        cands += [d / "fashion-mnist", d]
    cands.append(FASHION_SYSTEM_DIR)
    for c in cands:
        if (c / "train-images-idx3-ubyte.gz").is_file() or (c / "train-images-idx3-ubyte").is_file():
            return _idx_arrays(c, "fashion", md5_raw=FASHION_MD5_RAW)
    raise EbmlabError(f"Fashion-MNIST not found (looked in {', '.join(map(str, cands))}); install it with "
                      f"`apt-get install dataset-fashion-mnist` (files in {FASHION_SYSTEM_DIR}) or put the four idx "
                      f"files in DATA_DIR/fashion-mnist")


def _load_mnist(data_dir: str | None) -> Arrays:
    d = _need_dir(data_dir, "MNIST", "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
                                     "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]")
    if (d / "mnist").is_dir():
        d = d / "mnist"
    return _idx_arrays(d, "mnist", md5_gz=MNIST_MD5_GZ)


def _load_cifar10(data_dir: str | None) -> Arrays:
    d = _need_dir(data_dir, "CIFAR-10", "cifar-10-batches-py/data_batch_1..5 and test_batch (python version)")
    tx, ty, sx, sy = read_cifar10(d, md5=CIFAR10_MD5)
    return Arrays(tx, sx, ty, sy)


def _load_svhn(data_dir: str | None) -> Arrays:
    d = _need_dir(data_dir, "SVHN", "train_32x32.mat and test_32x32.mat (SVHN's cropped digits)")
    tx, ty, sx, sy = read_svhn(d, md5=SVHN_MD5)
    return Arrays(tx, sx, ty, sy)


def _load_binarized_mnist(data_dir: str | None) -> Arrays:
    names = "binarized_mnist_train.amat, binarized_mnist_valid.amat, binarized_mnist_test.amat"
    d = _need_dir(data_dir, "binarized_mnist", names)
    for n in ("train", "test"):
        if not (d / f"binarized_mnist_{n}.amat").is_file():
            raise EbmlabError(f"binarized_mnist: {d / f'binarized_mnist_{n}.amat'} not found; expected {names} in {d}")
    tr = read_amat(d / "binarized_mnist_train.amat").reshape(-1, 1, 28, 28)
    te = read_amat(d / "binarized_mnist_test.amat").reshape(-1, 1, 28, 28)
    return Arrays(tr, te)


BASES = {
    "digits": ("scikit-learn digits, 8x8 grey, 1500 train / 297 test, 10 classes", (1, 8, 8), lambda dd: _load_digits()),
    "fashion": ("Fashion-MNIST, 28x28 grey, 60k/10k, 10 classes (Debian dataset-fashion-mnist)", (1, 28, 28), _load_fashion),
    "mnist": ("MNIST, 28x28 grey, 60k/10k, 10 classes (idx files from DATA_DIR)", (1, 28, 28), _load_mnist),
    "cifar10": ("CIFAR-10, 32x32 colour, 50k/10k, 10 classes (python pickles from DATA_DIR)", (3, 32, 32), _load_cifar10),
    "svhn": ("SVHN cropped digits, 32x32 colour, 73k/26k, 10 classes (train_32x32.mat, test_32x32.mat from DATA_DIR)",
             (3, 32, 32), _load_svhn),
}
STACKABLE = ("digits", "fashion", "mnist")


def _stack(a: Arrays) -> Arrays:
    def triples(x, y, n, seed):
        idx = np.random.default_rng(seed).integers(0, len(x), size=(n, 3))
        xs = np.concatenate([x[idx[:, c]] for c in range(3)], axis=1)  # [n, 3, H, W]
        ys = y[idx[:, 0]] + 10 * y[idx[:, 1]] + 100 * y[idx[:, 2]]
        return xs, ys
    tx, ty = triples(a.train_x, a.train_y, STACKED_TRAIN, STACK_SEEDS[0])
    sx, sy = triples(a.test_x, a.test_y, STACKED_TEST, STACK_SEEDS[1])
    return Arrays(tx, sx, ty, sy)


PADDED_SIDE = 32


def _pad(a: Arrays, border: int) -> Arrays:
    """Each image with ``border`` pixels of background (0) on every side."""
    def pad(x):
        return np.pad(x, ((0, 0), (0, 0), (border, border), (border, border)))
    return Arrays(pad(a.train_x), pad(a.test_x), a.train_y, a.test_y)


def _binarize_fixed(a: Arrays) -> Arrays:
    def draw(x, seed):
        return (np.random.default_rng(seed).random(x.shape) < x / 255.0).astype(np.uint8)
    return Arrays(draw(a.train_x, BINARIZE_SEEDS[0]), draw(a.test_x, BINARIZE_SEEDS[1]), a.train_y, a.test_y)


@lru_cache(maxsize=None)
def _base_arrays(base: str, data_dir: str | None) -> Arrays:
    return BASES[base][2](data_dir)


def builtin_names() -> dict[str, str]:
    """Every built-in image/binary data set name → its description."""
    out = {b: v[0] for b, v in BASES.items()}
    out["binarized_mnist"] = "fixed-binarised MNIST (binarized_mnist_*.amat from DATA_DIR), 50k train / 10k test"
    for b in STACKABLE:
        out[f"stacked_{b}"] = f"stacked {b}: three independent {b} images as channels (1000 modes)"
        out[f"stacked_{b}32"] = (f"stacked_{b} padded with background to 32x32 (for net=dcgan|ebmbb32|gebm_resnet); "
                                 f"scored without the border")
        out[f"{b}_bin"] = f"{b} binarised once (Bernoulli of grey/255, seeds 0 train / 1 test)"
        out[f"{b}_dynbin"] = f"{b} binarised dynamically (a fresh Bernoulli draw in every training batch)"
    return out


@lru_cache(maxsize=None)
def builtin_dataset(name: str, data_dir: str | None = None) -> ArrayDataset:
    desc = builtin_names()[name]
    dd = str(data_dir_of(data_dir)) if data_dir_of(data_dir) else None
    if name in BASES:
        shape = BASES[name][1]
        return ArrayDataset(name, desc, DataSpec("image", shape, IMAGE_RANGE, 256), lambda: _base_arrays(name, dd),
                            uint8_to_signed, n_classes=10)
    if name == "binarized_mnist":
        return ArrayDataset(name, desc, DataSpec("binary", (1, 28, 28), (0.0, 1.0)),
                            lambda: _load_binarized_mnist(dd), as_float, binarize="fixed")
    if name.startswith("stacked_"):
        return _stacked(name, desc, dd)
    base, variant = name.rsplit("_", 1)
    shape = BASES[base][1]
    if variant == "bin":
        return ArrayDataset(name, desc, DataSpec("binary", shape, (0.0, 1.0)),
                            lambda: _binarize_fixed(_base_arrays(base, dd)), as_float, n_classes=10,
                            binarize="fixed", base=base)
    return ArrayDataset(name, desc, DataSpec("binary", shape, (0.0, 1.0)), lambda: _base_arrays(base, dd),
                        uint8_to_unit, n_classes=10, binarize="dynamic", base=base)


def _stacked(name: str, desc: str, dd: str | None) -> ArrayDataset:
    base = name[len("stacked_"):]
    padded = base not in BASES and base.endswith(str(PADDED_SIDE))
    base = base[:-len(str(PADDED_SIDE))] if padded else base
    h, w = BASES[base][1][1:]
    border = (PADDED_SIDE - h) // 2 if padded else 0
    return ArrayDataset(name, desc, DataSpec("image", (3, h + 2 * border, w + 2 * border), IMAGE_RANGE, 256),
                        lambda: _pad(_stack(_base_arrays(base, dd)), border) if border else _stack(_base_arrays(base, dd)),
                        uint8_to_signed, n_classes=1000, base=base, stacked=True, data_dir=dd, border=border)


# --- a user's own data ----------------------------------------------------------------------------------------

def _split_off_test(x: np.ndarray, y: np.ndarray | None, frac: float = 0.1):
    perm = np.random.default_rng(0).permutation(len(x))
    n_te = max(1, int(round(frac * len(x))))
    te, tr = perm[:n_te], perm[n_te:]
    return x[tr], x[te], (None if y is None else y[tr]), (None if y is None else y[te])


def _to_image_layout(x: np.ndarray, path: Path) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None]
    if x.shape[1] in (1, 3):
        return x
    if x.shape[-1] in (1, 3):
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    raise EbmlabError(f"{path}: 4-d array of shape {x.shape}; expected images as [n, C, H, W] or [n, H, W, C] "
                      f"with C = 1 or 3")


def user_dataset(path: str, *, image_size: int = 0) -> ArrayDataset:
    """A user's data set (:func:`_user_dataset`), refused when all its training samples are identical."""
    ds = _user_dataset(path, image_size=image_size)
    x = ds.arrays.train_x
    if (x == x[:1]).all():
        raise EbmlabError(f"{path}: all {len(x)} training samples are identical; there is no distribution to learn "
                          f"(check that the right array was saved)")
    return ds


def _user_dataset(path: str, *, image_size: int = 0) -> ArrayDataset:
    """A user's data set from ``path``: a ``.npy``/``.npz``/``.csv`` file or a folder of PNG/JPEG images.

    Arrays: 2-d [n, D] → ``vectors`` (standardised by the train split's mean and std); 3-d [n, H, W] or 4-d
    [n, C, H, W] / [n, H, W, C] → images: uint8 0..255 or floats in [0, 1] → ``image`` in [−1, 1]; values all in
    {0, 1} → ``binary``. Without a test array, a fixed 10 % (permutation seed 0) is held out as the test split.
    A folder: every image resized to ``image_size`` (0: keep the size, which must then be the same for all).
    """
    p = Path(path)
    if p.is_dir():
        x = read_image_folder(p, size=image_size or None)
        tx, sx, _, _ = _split_off_test(x, None)
        grey = "grey" if x.shape[1] == 1 else "colour"
        return ArrayDataset(str(p), f"{len(x)} {grey} {x.shape[2]}x{x.shape[3]} images from folder {p} (10% held out)",
                            DataSpec("image", tuple(x.shape[1:]), IMAGE_RANGE, 256), lambda: Arrays(tx, sx),
                            uint8_to_signed)
    if p.suffix not in (".npz", ".npy", ".csv"):
        raise EbmlabError(f"unknown data set {path!r}: not a built-in name, a .npz/.npy/.csv file or a folder of "
                          f"images")
    x, xt_, y, yt = _user_arrays(p)
    return _from_arrays(p, x, xt_, y, yt)


def _user_arrays(p: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(train, test, train labels, test labels) of a user's .npy/.npz/.csv, checked: at least 2 samples, the same
    sample shape in both splits, real numbers (bools as 0/1), finite values, a label per sample; without a test
    array a fixed 10 % is held out."""
    a = read_user_array(p)
    x, xt = a["train"], a.get("test")
    y, yt = a.get("train_y"), a.get("test_y")
    if x.ndim < 2 or len(x) < 2:
        raise EbmlabError(f"{p}: training array of shape {x.shape}; expected at least 2 samples as [n, D] vectors "
                          f"or [n, H, W] / [n, C, H, W] images")
    if xt is not None and xt.shape[1:] != x.shape[1:]:
        raise EbmlabError(f"{p}: test samples have shape {xt.shape[1:]}, train samples {x.shape[1:]}; they must agree")
    for arr, nm in ((x, "train"), (xt, "test")):
        if arr is not None and arr.dtype.kind not in "biuf":
            raise EbmlabError(f"{p}: the {nm} array holds {arr.dtype} values ({'text' if arr.dtype.kind in 'US' else 'complex numbers' if arr.dtype.kind == 'c' else 'non-numeric values'}); "
                              f"expected real numbers (bool, integer or float) — convert them before training")
    if x.dtype == np.bool_:
        x = x.astype(np.uint8)
    if xt is not None and xt.dtype == np.bool_:
        xt = xt.astype(np.uint8)
    for arr, nm in ((x, "train"), (xt, "test")):
        if arr is not None and np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
            raise EbmlabError(f"{p}: the {nm} array holds NaN or infinite values; clean them first")
    if y is not None and len(y) != len(x):
        raise EbmlabError(f"{p}: {len(y)} labels for {len(x)} training samples")
    if xt is None:
        x, xt, y, yt = _split_off_test(x, y)
    assert xt is not None
    return x, xt, y, yt


def _from_arrays(p: Path, x: np.ndarray, xt_: np.ndarray, y: np.ndarray | None,
                 yt: np.ndarray | None) -> ArrayDataset:
    """The data set of checked arrays: binary vectors, standardised vectors, binary images or images."""
    n_classes = int(max(y.max(), -1 if yt is None else yt.max()) + 1) if y is not None else None
    if x.ndim == 2 and np.isin(x, (0, 1)).all() and np.isin(xt_, (0, 1)).all():
        return ArrayDataset(str(p), f"{len(x)} binary vectors of dimension {x.shape[1]} from {p}",
                            DataSpec("binary", (x.shape[1],), (0.0, 1.0)),
                            lambda: Arrays(x.astype(np.uint8), xt_.astype(np.uint8), y, yt), as_float,
                            n_classes=n_classes, binarize="fixed")
    if x.ndim == 2:
        mean = x.astype(np.float64).mean(0)
        std = x.astype(np.float64).std(0)
        std[std == 0] = 1.0

        def standardise(v: np.ndarray, mean: np.ndarray = mean.astype(np.float32),
                        std: np.ndarray = std.astype(np.float32)) -> Tensor:
            return as_float((v.astype(np.float32) - mean) / std)
        ds = ArrayDataset(str(p), f"{len(x)} vectors of dimension {x.shape[1]} from {p} (standardised by the "
                          f"train split's mean and std)", DataSpec("vectors", (x.shape[1],)),
                          lambda: Arrays(x, xt_, y, yt), standardise, n_classes=n_classes)
        ds.standardisation = {"mean": mean.tolist(), "std": std.tolist(), "log_det": float(np.log(std).sum())}
        return ds
    if x.ndim not in (3, 4):
        raise EbmlabError(f"{p}: array of shape {x.shape}; expected [n, D], [n, H, W] or [n, C, H, W]")
    x, xt_ = _to_image_layout(x, p), _to_image_layout(xt_, p)
    shape = tuple(x.shape[1:])
    if np.isin(x, (0, 1)).all() and np.isin(xt_, (0, 1)).all():
        return ArrayDataset(str(p), f"{len(x)} binary {shape} samples from {p}", DataSpec("binary", shape, (0.0, 1.0)),
                            lambda: Arrays(x.astype(np.uint8), xt_.astype(np.uint8), y, yt), as_float,
                            n_classes=n_classes, binarize="fixed")
    enc: Callable[[np.ndarray], Tensor] = uint8_to_signed
    if x.dtype != np.uint8:
        lo, hi = float(min(x.min(), xt_.min())), float(max(x.max(), xt_.max()))
        if lo < 0 or hi > 1:
            raise EbmlabError(f"{p}: float images with values in [{lo:.3g}, {hi:.3g}]; expected uint8 0..255 or "
                              f"floats in [0, 1]")

        def unit_to_signed(v: np.ndarray) -> Tensor:
            return as_float(v) * 2.0 - 1.0
        enc = unit_to_signed
    return ArrayDataset(str(p), f"{len(x)} images {shape} from {p}",
                        DataSpec("image", shape, IMAGE_RANGE, 256 if x.dtype == np.uint8 else None),
                        lambda: Arrays(x, xt_, y, yt), enc, n_classes=n_classes)
