"""Data sets behind one interface (``ebmlab.data.base``): ``get_dataset(name)`` for any kind of data.

``name`` is a built-in 2D toy (``toy``), a built-in image/binary set (``images``: digits, fashion, mnist,
cifar10, their stacked and binarised variants), or a path: a ``.npz``/``.npy`` file or a folder of images.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from pathlib import Path

from ..errors import EbmlabError, did_you_mean
from ..plugins import Registry
from .base import ArrayDataset, Dataset, DataSpec
from .images import builtin_dataset, builtin_names, user_dataset
from .lbt_toys import LBT_TOY_DATASETS
from .toy import TOY_DATASETS, ToyDataset

def _admit(name: str, dataset: Any) -> Any:
    """A data set may be registered under a word (not a path) as an object with the data interface or a function of
    no arguments returning one (called when first asked for)."""
    if not isinstance(name, str) or not name or is_path(name):
        raise EbmlabError(f"a data set's name is a word such as 'ring4' (not a path), got {name!r}")
    if not (isinstance(dataset, Dataset) or callable(dataset)):
        raise EbmlabError(f"register_dataset takes a data set (ebmlab.data.base.Dataset) or a function returning "
                          f"one, got {type(dataset).__name__}")
    return dataset


# the named data sets: the 2D toys (ebmlab's own, made at import), then those of plugins (entry point group
# ``ebmlab.datasets``) and registered from Python: the data set, or the function that makes it (called once, when
# first asked for); the built-in image sets are made from files on demand (images.builtin_names), their names held
DATASETS: Registry[Any] = Registry("data set", "ebmlab.datasets", _admit,
                                   own={**TOY_DATASETS, **LBT_TOY_DATASETS}, reserved=lambda: builtin_names())
SOURCES = DATASETS.sources
FAILED = DATASETS.failed


def register_dataset(name: str, dataset: Any, *, source: str | None = None) -> None:
    """Add a data set under ``name``: an object with the data interface (``ebmlab.data.base.Dataset``: a toy
    ``ToyDataset``, an ``ArrayDataset``, ...) or a function of no arguments that returns one, called when the data
    set is first asked for (in this process only — a plugin package's entry point reaches new processes). Refused:
    a name ebmlab or another plugin has, a path-like name, and anything else than those two."""
    DATASETS.register(name, dataset, source=source)


_MADE: dict[str, tuple[Any, Dataset]] = {}  # name -> (the registered function, the data set it made)


def _plugin(name: str) -> Any:
    """The data set registered as ``name``; a registered function is called once (while it stays registered)."""
    entry = DATASETS[name]
    if isinstance(entry, Dataset):
        return entry
    if name in _MADE and _MADE[name][0] is entry:
        return _MADE[name][1]
    try:
        made = entry()
    except EbmlabError:
        raise
    except Exception as exc:  # noqa: BLE001 - a third-party function: its failure named, not a traceback
        raise EbmlabError(f"data set {name!r} of {SOURCES[name]} could not be made: {type(exc).__name__}: "
                          f"{exc}") from None
    if not isinstance(made, Dataset):
        raise EbmlabError(f"data set {name!r} of {SOURCES[name]}: its function returned a "
                          f"{type(made).__name__}, which lacks the data interface (ebmlab.data.base.Dataset)")
    _MADE[name] = (entry, made)
    return made


def dataset_names() -> dict[str, str]:
    """Every data set name (built-in, then of plugins) → its one-line description."""
    plugins = {k: getattr(v, "description", "a data set of a plugin (made when first used)")
               for k, v in DATASETS.plugins().items()}
    return {**{k: v.description for k, v in DATASETS.own().items()}, **builtin_names(), **plugins}


def file_label(name: str) -> str:
    """A user's file or folder as a name for directories and caches: its stem with anything but letters, digits,
    '_', '.' and '-' replaced (a path would nest directories, and an absolute one escape them)."""
    import re

    p = Path(name)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", p.stem or p.name).strip("_") or "data"


def is_path(name: str) -> bool:
    return name.endswith((".npz", ".npy", ".csv")) or "/" in name or Path(name).is_dir()


def get_dataset(name: str, *, data_dir: str | None = None, image_size: int = 0) -> Dataset:
    """The data set called ``name`` (a built-in name, or the path of a user's .npz/.npy/.csv file or image folder).

    ``data_dir`` (else the EBMLAB_DATA environment variable) is where local copies of MNIST/CIFAR-10 live;
    ``image_size`` is the side a user's image folder is resized to (0: keep the images' own size).
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 0:
        raise EbmlabError(f"image_size must be a side in pixels ≥ 1, or 0 to keep the images' own size; got "
                          f"{image_size!r}")
    if name in DATASETS:
        return _plugin(name)
    if name in FAILED:
        raise EbmlabError(f"data set {name!r}: {FAILED[name]}")
    if name in builtin_names():
        return builtin_dataset(name, data_dir or None)
    if is_path(name):
        return _user(name, image_size, _stamp(name))
    raise EbmlabError(f"unknown data set {name!r}{did_you_mean(name, dataset_names())} (valid data sets: "
                      f"{', '.join(dataset_names())}) "
                      f"or the path of a .npz/.npy/.csv file or of a folder of PNG/JPEG images")


def _stamp(name: str) -> tuple[int, int]:
    """(modification time, size) of a user's file or folder: a file rewritten in place is read again."""
    try:
        st = Path(name).stat()
    except OSError:
        return (0, 0)
    return (st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=8)
def _user(name: str, image_size: int, stamp: tuple[int, int]) -> ArrayDataset:
    return user_dataset(name, image_size=image_size)


def content_sha256(dataset: ArrayDataset) -> str:
    """sha256 of a data set's content: the raw train and test arrays and labels (shape, dtype and bytes)."""
    import hashlib

    import numpy as np

    a = dataset.arrays
    h = hashlib.sha256()
    for arr in (a.train_x, a.test_x, a.train_y, a.test_y):
        if arr is None:
            h.update(b"none")
            continue
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.data.cast("B"))
    return h.hexdigest()


def user_data_sha256(name: str, dataset: ToyDataset | ArrayDataset) -> str | None:
    """The content sha256 of a user's file or folder, recorded by a run so that it can tell when the file changed;
    None for a built-in set (its name fixes its content: its files are checked against published checksums)."""
    if name in builtin_names() or not isinstance(dataset, ArrayDataset):  # the 2D toys are not ArrayDatasets
        return None
    return content_sha256(dataset)


def check_same_data(name: str, now: str | None, saved: object, run: object) -> None:
    """Refuse a user's data set whose content hash ``now`` (:func:`user_data_sha256`) is not the one the run
    recorded (``saved``: its config's ``data_sha256``; absent in a run written before it was recorded, which is then
    not checked)."""
    if isinstance(saved, str) and now is not None and now != saved:
        raise EbmlabError(f"{name} has changed since the run {run} was trained on it (content sha256 {saved[:12]}… "
                          f"then, {now[:12]}… now): the run's standardisation, test split and metrics belong to the "
                          f"data it was trained on — restore that file, or train a new run on the new data with "
                          f"another --out")


__all__ = ["ArrayDataset", "DATASETS", "FAILED", "SOURCES", "register_dataset", "DataSpec", "Dataset", "ToyDataset", "check_same_data", "content_sha256",
           "builtin_names", "dataset_names", "file_label", "get_dataset", "is_path", "user_data_sha256"]
