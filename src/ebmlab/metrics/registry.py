"""Every metric's metadata, collected from where it is declared: the ``METRICS`` table beside the functions of each
metrics module, and the ``metrics`` of each registered method class (numbers only that method reports). Names with a
``{k}`` placeholder stand for a family (``iwae_{k}``: ``iwae_10``, ``iwae_5000``); a method's ``sample_sets``
prefix the metrics of its extra samples (``base_modes``: ``modes`` of KALE's base generator alone).

Adding a metric: the function, and its entry in the ``METRICS`` table of its module (or of its method). A metric of
another package: :func:`register_metric` (or an ``ebmlab.metrics`` entry point, ``ebmlab.plugins``): its value is
computed on every sample set an evaluator scores (model samples, extra sample sets, and the real-data and noise rows
where the kind scores them as samples), against the test split's first rows at the same count.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any, NamedTuple

from ..errors import EbmlabError
from ..metadata import Metric
from ..plugins import Registry, generation, python_source
from . import density, distances, images, inception, modes, ood, probe, trajectory


def _admit(name: str, pair: Any) -> tuple[Metric, Any]:
    """A metric may be registered as a (Metric, fn) pair under an identifier the tables do not read as another
    metric's error bar or note."""
    if not isinstance(name, str) or not name.isidentifier() or name.endswith(("_se", "_std", "_err", "_note")):
        raise EbmlabError(f"a metric's name is an identifier not ending in _se, _std, _err or _note (the tables read "
                          f"those as another metric's error bar or note), got {name!r}")
    if not (isinstance(pair, tuple) and len(pair) == 2):
        raise EbmlabError("an ebmlab.metrics entry point names a (Metric, fn) pair")
    metric, fn = pair
    if not isinstance(metric, Metric) or not callable(fn):
        raise EbmlabError(f"register_metric takes a name, an ebmlab.metadata.Metric and a function fn(samples, test) "
                          f"-> float; got {type(metric).__name__} and {type(fn).__name__}")
    return metric, fn


def _own_names() -> dict[str, Metric]:
    """The metric names ebmlab's modules and methods declare (a plugin may not take one)."""
    return _tables_at(-1).plain


# metrics of plugins and registered from Python: name -> (metadata, fn(samples [n, ...], test [n, ...]) -> float);
# ebmlab's own are declared beside their functions (MODULES) and by the methods, their names held
PLUGINS: Registry[tuple[Metric, Any]] = Registry("metric", "ebmlab.metrics", _admit, reserved=_own_names)
SOURCES = PLUGINS.sources
FAILED = PLUGINS.failed

MODULES = (modes, distances, images, inception, density, probe, ood, trajectory)  # the order of table columns
GROUPS = {"samples": "samples", "density": "density and likelihood",
          "manifold": "on the generator's d-dimensional manifold (not a likelihood of the data)",
          "method": "method-specific"}


class _Tables(NamedTuple):
    plain: dict[str, Metric]  # name -> metadata, in table order
    families: list[tuple[re.Pattern[str], str, Metric]]  # the {k} names as patterns
    bookkeeping: frozenset[str]
    prefixes: dict[str, str]  # extra sample set -> what it is
    same_as: dict[str, str]


def _tables() -> _Tables:
    """The tables as the registries stand now (rebuilt after any of them changes)."""
    return _tables_at(generation())


@lru_cache(maxsize=2)
def _tables_at(gen: int) -> _Tables:
    """The tables at registry generation ``gen``; -1: ebmlab's own metrics and its methods' alone (the names a plugin
    may not take)."""
    from ..methods import METHODS

    plain: dict[str, Metric] = {}
    bookkeeping: set[str] = set()
    same_as: dict[str, str] = {}
    for mod in MODULES:
        plain.update(mod.METRICS)
        bookkeeping |= set(getattr(mod, "BOOKKEEPING", ()))
        same_as.update(getattr(mod, "SAME_AS", {}))
    prefixes: dict[str, str] = {}
    for name, (m, _) in (PLUGINS.items() if gen >= 0 else ()):
        plain.setdefault(name, m)
    for cls in (METHODS.values() if gen >= 0 else METHODS.own().values()):
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
        inner = spec(rest)
        return None if inner is None else inner._replace(meaning=f"{inner.meaning} — {t.prefixes[prefix]}")
    return None


def higher_is_better(name: str) -> bool:
    """Whether a higher value of the metric ``name`` is better (its metadata says ↑); lower otherwise."""
    m = spec(name)
    return m is not None and m.better == "↑"


def improves(name: str, value: Any, best: float | None) -> bool:
    """Whether ``value`` is a finite number strictly better than ``best`` in the direction of metric ``name``
    (``best`` None: any finite number) — the rule of run option ``keep_best``."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return False
    return best is None or (value > best if higher_is_better(name) else value < best)


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


def register_metric(name: str, metric: Metric, fn: Any, *, source: str | None = None) -> None:
    """Add a sample metric: ``metric`` its metadata (group, unit, direction, meaning), ``fn(samples, test) -> float``
    its value for samples [n, *shape] against the first n test rows (in this process only — a plugin package's
    entry point reaches new processes). Refused: a name a metric of ebmlab or another plugin has, or one the tables
    would hide (a suffix _se, _std, _err, _note), metadata that is not a Metric, a function that is not callable."""
    PLUGINS.register(name, (metric, fn), source=source or python_source(fn))


def plugin_values(samples: Any, dataset: Any) -> dict[str, float]:
    """The registered plugin metrics of samples [n, *shape] against the first n rows of the test split."""
    if not PLUGINS:
        return {}
    import torch

    x = samples.detach().to("cpu", torch.float32)
    finite = torch.isfinite(x.reshape(len(x), -1)).all(1)
    x, test = x[finite], dataset.test[:len(x)]
    out = {}
    for name, (_, fn) in PLUGINS.items():
        try:
            out[name] = float(fn(x, test)) if len(x) else float("nan")
        except Exception as exc:  # noqa: BLE001 - a third-party function: its failure named, not a traceback
            raise EbmlabError(f"metric {name!r} of {SOURCES[name]} failed: {type(exc).__name__}: {exc}") from None
    return out


__all__ = ["catalogue", "columns", "GROUPS", "higher_is_better", "improves", "is_bookkeeping", "plugin_values",
           "prefixes", "register_metric", "same_as", "spec", "split_prefix"]
