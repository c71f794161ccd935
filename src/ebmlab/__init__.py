"""ebmlab: train, sample and evaluate energy-based models trained with a generator.

Python API (the CLI calls exactly these)::

    import ebmlab
    result = ebmlab.train("kale", "ring8", out="runs/kale-ring8", overrides={"steps": 2000})
    metrics = ebmlab.evaluate_run("runs/kale-ring8")
    x = ebmlab.sample_run("runs/kale-ring8", 1000, seed=0)

The names below are imported on first use, so that ``import ebmlab`` and ``ebmlab --help`` do not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from .threads import passive_waits

passive_waits()  # before torch starts OpenMP: waiting threads sleep instead of spinning (ebmlab.threads)

__version__ = "0.3.0"

_WHERE = {
    "DATASETS": "data", "get_dataset": "data",
    "DivergenceError": "errors", "EbmlabError": "errors", "NonNormalisableError": "errors",
    "METHODS": "methods", "get_method": "methods",
    "RunConfig": "config", "resolve_config": "config", "train": "trainer",
    "evaluate_run": "api", "load_run": "api", "sample_run": "api", "draw_samples": "api", "score_samples": "api",
    "inpaint_run": "api",
    # extension without forking (ebmlab.plugins): in this process; an installed package's entry points reach all
    "register_method": "methods", "register_dataset": "data", "register_metric": "metrics.registry",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ebmlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
