"""Data sets behind one interface (``ebmlab.data.base``): ``get_dataset(name)`` for any kind of data.

``name`` is a built-in 2D toy (``toy``), a built-in image/binary set (``images``: digits, fashion, mnist,
cifar10, their stacked and binarised variants), or a path: a ``.npz``/``.npy`` file or a folder of images.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ..errors import EbmlabError, did_you_mean
from .base import ArrayDataset, DataSpec
from .images import builtin_dataset, builtin_names, user_dataset
from .lbt_toys import LBT_TOY_DATASETS
from .toy import TOY_DATASETS, ToyDataset

DATASETS = dict(TOY_DATASETS)
DATASETS.update(LBT_TOY_DATASETS)


def dataset_names() -> dict[str, str]:
    """Every built-in data set name → its one-line description."""
    return {**{k: v.description for k, v in DATASETS.items()}, **builtin_names()}


def file_label(name: str) -> str:
    """A user's file or folder as a name for directories and caches: its stem with anything but letters, digits,
    '_', '.' and '-' replaced (a path would nest directories, and an absolute one escape them)."""
    import re

    p = Path(name)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", p.stem or p.name).strip("_") or "data"


def is_path(name: str) -> bool:
    return name.endswith((".npz", ".npy", ".csv")) or "/" in name or Path(name).is_dir()


def get_dataset(name: str, *, data_dir: str | None = None, image_size: int = 0) -> ToyDataset | ArrayDataset:
    """The data set called ``name`` (a built-in name, or the path of a user's .npz/.npy/.csv file or image folder).

    ``data_dir`` (else the EBMLAB_DATA environment variable) is where local copies of MNIST/CIFAR-10 live;
    ``image_size`` is the side a user's image folder is resized to (0: keep the images' own size).
    """
    if name in DATASETS:
        return DATASETS[name]
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


__all__ = ["ArrayDataset", "DATASETS", "DataSpec", "ToyDataset", "dataset_names", "get_dataset"]
