"""Every metric's metadata, collected from where it is declared: the ``METRICS`` table beside the functions of each
metrics module, and the ``metrics`` of each registered method class (numbers only that method reports). Names with a
``{k}`` placeholder stand for a family (``iwae_{k}``: ``iwae_10``, ``iwae_5000``); a method's ``sample_sets``
prefix the metrics of its extra samples (``base_modes``: ``modes`` of KALE's base generator alone).

Adding a metric: the function, and its entry in the ``METRICS`` table of its module (or of its method).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, NamedTuple

from ..metadata import Metric
from . import density, distances, images, inception, modes, probe

MODULES = (modes, distances, images, inception, density, probe)  # the order of table columns
GROUPS = {"samples": "samples", "density": "density and likelihood",
          "manifold": "on the generator's d-dimensional manifold (not a likelihood of the data)",
          "method": "method-specific"}


class _Tables(NamedTuple):
    plain: dict[str, Metric]  # name -> metadata, in table order
    families: list[tuple[re.Pattern[str], str, Metric]]  # the {k} names as patterns
    bookkeeping: frozenset[str]
    prefixes: dict[str, str]  # extra sample set -> what it is
    same_as: dict[str, str]


@lru_cache(maxsize=1)
def _tables() -> _Tables:
    from ..methods import METHODS

    plain: dict[str, Metric] = {}
    bookkeeping: set[str] = set()
    same_as: dict[str, str] = {}
    for mod in MODULES:
        plain.update(mod.METRICS)
        bookkeeping |= set(getattr(mod, "BOOKKEEPING", ()))
        same_as.update(getattr(mod, "SAME_AS", {}))
    prefixes: dict[str, str] = {}
    for cls in METHODS.values():
        for name, m in cls.metrics.items():
            plain.setdefault(name, m)
        bookkeeping |= set(cls.bookkeeping)
        prefixes.update(cls.sample_sets)
    families = [(re.compile(re.escape(n).replace(re.escape("{k}"), r"(\d+)")), n, m) for n, m in plain.items()
                if "{k}" in n]
    plain = {n: m for n, m in plain.items() if "{k}" not in n}
    return _Tables(plain, families, frozenset(bookkeeping), prefixes, same_as)


def catalogue() -> dict[str, Metric]:
    """Every declared metric name (families excluded), in table order."""
    return dict(_tables().plain)


def prefixes() -> dict[str, str]:
    """{prefix: meaning} of the methods' extra sample sets."""
    return dict(_tables().prefixes)


def split_prefix(name: str) -> tuple[str, str]:
    """(prefix, rest) for a name of an extra sample set (``base_modes`` → ``base``, ``modes``), else ("", name)."""
    head, _, rest = name.partition("_")
    return (head, rest) if rest and head in _tables().prefixes else ("", name)


def spec(name: str) -> Metric | None:
    """The metadata of a metric name, or None when nothing declares it."""
    t = _tables()
    if name in t.plain:
        return t.plain[name]
    for pattern, _, m in t.families:
        hit = pattern.fullmatch(name)
        if hit:
            return m._replace(meaning=m.meaning.replace("{k}", hit.group(1)))
    prefix, rest = split_prefix(name)
    if prefix:
        m = spec(rest)
        return None if m is None else m._replace(meaning=f"{m.meaning} — {t.prefixes[prefix]}")
    return None


def is_bookkeeping(name: str, value: Any) -> bool:
    """Counts, checksums, settings and notes: kept in summary.json, not shown as results."""
    base = split_prefix(name)[1]
    return (base in _tables().bookkeeping or isinstance(value, (str, bool)) or value is None and name.endswith("_note")
            or base.endswith(("_se", "_std", "_err", "_note")))


def same_as(name: str) -> str:
    """The metric whose real-data value stands for this one's (a box-normalised NLL: the NLL)."""
    return _tables().same_as.get(split_prefix(name)[1], "")


def columns(present: set[str] | list[str]) -> list[str]:
    """The benchmark-table columns among the metric names ``present``: declared table columns in table order,
    then the same for each extra sample set."""
    plain = _tables().plain
    names = [n for n, m in plain.items() if m.column and n in present]
    for p in _tables().prefixes:
        names += [f"{p}_{n}" for n, m in plain.items() if m.column and f"{p}_{n}" in present]
    return names


__all__ = ["GROUPS", "catalogue", "columns", "is_bookkeeping", "prefixes", "same_as", "spec", "split_prefix"]
