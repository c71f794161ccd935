"""The type of metric metadata, imported by every module that declares metrics (``metrics/*``, each method class):
group, unit, direction and one-line meaning beside the function that computes the number. ``ebmlab.metrics.registry``
collects the declarations; presentation (``present``, ``report``, ``bench``) reads them and names no metric or
method of its own.
"""

from __future__ import annotations

from typing import NamedTuple


class Metric(NamedTuple):
    group: str  # "samples", "density" or "method"
    unit: str  # "" , "%", "nats"; "%" means the value is a fraction shown × 100
    better: str  # "↑", "↓" or "" (a diagnostic with no better direction)
    meaning: str
    column: bool = False  # a column of the benchmark tables (`ebmlab bench`)


__all__ = ["Metric"]
