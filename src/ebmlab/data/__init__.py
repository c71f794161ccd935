"""Data sets. ``get_dataset(name)`` returns a data set object with ``train``/``test`` tensors."""

from __future__ import annotations

from ..errors import EbmlabError
from .lbt_toys import LBT_TOY_DATASETS
from .toy import TOY_DATASETS, ToyDataset

DATASETS = dict(TOY_DATASETS)
DATASETS.update(LBT_TOY_DATASETS)


def get_dataset(name: str) -> ToyDataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise EbmlabError(f"unknown data set {name!r}; valid data sets: {', '.join(DATASETS)}") from None


__all__ = ["DATASETS", "ToyDataset", "get_dataset"]
