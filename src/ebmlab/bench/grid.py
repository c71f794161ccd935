"""A bench grid: the TOML file of option axes (``--grid FILE``) and the settings it gives each method.

A table mapping option names to lists of values; a key naming several options separated by commas sets them all to
the same value; ``"METHOD:option"`` names an option of that method only; a key whose values are tables,
``"gan:budget" = [{steps = 6000}, {n_critic = 5, steps = 1500}]``, is an axis of *points*, each table's options set
together, so that options can move jointly rather than as a product. The cartesian product of the axes a method
has is run for each method — axes naming none of its options are skipped for it.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from ..errors import EbmlabError


def load_grid(path: str | Path) -> dict[str, list[Any]]:
    """The grid file: option name (or comma-separated names set together) → non-empty list of values."""
    from ..config import load_toml

    grid = load_toml(path)
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise EbmlabError(f"grid file {path}: {key!r} must map to a non-empty list of values, got {values!r}")
        tables = [isinstance(v, dict) for v in values]
        if any(tables) and not (all(tables) and all(values) and "," not in key):
            raise EbmlabError(f"grid file {path}: {key!r} mixes tables of options with plain values (or names several "
                              f"options, or has an empty table); an axis of points is one name mapping to a list "
                              f"of non-empty tables, e.g. \"gan:budget\" = [{{steps = 600}}, {{n_critic = 5, steps = 150}}]")
    return grid

def _axis_names(key: str, values: list[Any]) -> list[str]:
    """The (possibly method-scoped) option names an axis sets: the comma-separated key, or for an axis of points
    (tables of options) every option its tables name, under the key's scope."""
    if values and isinstance(values[0], dict):
        scope, _ = _scoped(key)
        opts = dict.fromkeys(k for v in values for k in v)
        return [f"{scope}:{k}" if scope else k for k in opts]
    return [n.strip() for n in key.split(",") if n.strip()]

def grid_settings(grid: dict[str, list[Any]], method: str) -> list[tuple[str, dict[str, Any]]]:
    """(label, overrides) for each point of the product of the grid axes that ``method`` has options for."""
    from ..config import RunConfig, field_types
    from ..methods import get_method

    known = set(field_types(RunConfig)) | set(field_types(get_method(method).Config))
    axes = []
    for key, values in grid.items():
        if isinstance(values[0], dict):  # an axis of points: applies when every option it sets is the method's
            scope, _ = _scoped(key)
            if scope in (None, method) and all(k in known for v in values for k in v):
                axes.append((key, None, values))
            continue
        names = [opt for scope, opt in map(_scoped, key.split(",")) if opt and scope in (None, method) and opt in known]
        if names:
            axes.append((key, names, values))
    settings = []
    for combo in itertools.product(*(values for _, _, values in axes)):
        label = " ".join(f"{key}={_value_label(v)}" for (key, _, _), v in zip(axes, combo))
        point: dict[str, Any] = {}
        for (_, names, _), v in zip(axes, combo):
            point.update(v if names is None else {n: v for n in names})
        settings.append((label, point))
    return settings

def _scoped(name: str) -> tuple[str | None, str]:
    """``"gan:n_critic"`` → ("gan", "n_critic"): an axis for one method only; ``"lr_g"`` → (None, "lr_g")."""
    scope, _, opt = name.strip().rpartition(":")
    return (scope.strip() or None), opt.strip()

def _value_label(v: Any) -> str:
    if isinstance(v, dict):
        return ",".join(f"{k}={_value_label(x)}" for k, x in v.items())
    return ",".join(map(str, v)) if isinstance(v, list) else str(v)


def check_axes(grid: dict[str, list[Any]], methods: list[str], given: set[str]) -> None:
    """Refuse axes that name an option of none of ``methods`` (or of a method not in the bench), and options also
    ``given`` as key=value."""
    from ..config import RunConfig, field_types
    from ..methods import get_method

    run_known = set(field_types(RunConfig))
    names = [(n, *_scoped(n)) for key, values in grid.items() for n in _axis_names(key, values)]
    unknown = [n for n, scope, opt in names
               if (scope is not None and (scope not in methods or opt not in
                                          run_known | set(field_types(get_method(scope).Config))))
               or (scope is None and opt not in run_known.union(*(field_types(get_method(m).Config)
                                                                   for m in methods)))]
    both = [n for n, _, opt in names if opt in given]
    problems = ([f"{', '.join(unknown)}: an option of none of the methods {', '.join(methods)}"] if unknown else []) \
        + ([f"{', '.join(both)}: also given as key=value"] if both else [])
    if problems:
        raise EbmlabError(f"--grid: {'; '.join(problems)}; fix the grid file or the overrides")


Task = tuple[str, str, int, dict[str, Any], str]  # method, data, seed, overrides, run directory


def tasks(methods: list[str], datasets: list[str], seeds: int, over: dict[str, Any], out: Path,
          grid: dict[str, list[Any]] | None) -> tuple[list[Task], list[str | None]]:
    """The runs of a bench, seed by seed (every method and setting at seed 0, then at seed 1, …), and the grid
    setting label of each (None without a grid): into ``OUT/runs/<method>-<data>-s<seed>``, or with a grid
    ``OUT/runs/<method>-<data>-g<setting>-s<seed>``."""
    todo: list[Task] = []
    labels: list[str | None] = []
    for s in range(seeds):
        for d in datasets:
            for m in methods:
                if grid is None:
                    todo.append((m, d, s, over, str(out / "runs" / f"{m}-{d}-s{s}")))
                    labels.append(None)
                    continue
                for g, (label, setting) in enumerate(grid_settings(grid, m)):
                    todo.append((m, d, s, {**over, **setting}, str(out / "runs" / f"{m}-{d}-g{g}-s{s}")))
                    labels.append(label)
    return todo, labels
