"""Extension without forking: methods, data sets and metrics from other packages.

An installed package declares them as entry points in its ``pyproject.toml``::

    [project.entry-points."ebmlab.methods"]
    lsgan = "my_package.lsgan:LSGAN"                 # a Method subclass
    [project.entry-points."ebmlab.datasets"]
    ring4 = "my_package.data:ring4"                  # a data set (ebmlab.data.base.Dataset) or a function making one
    [project.entry-points."ebmlab.metrics"]
    mean_dist = "my_package.metrics:MEAN_DIST"      # (ebmlab.metadata.Metric, fn(samples, test) -> float)

and ebmlab loads them whenever it starts — the CLI, the Python API, a bench's worker processes, a run resumed,
evaluated or sampled in a new process — into the same registries as its own (``ebmlab.methods.METHODS``, the data
sets of ``ebmlab.data.get_dataset``, the metric catalogue), so ``ebmlab list`` names them with where they came
from. Within one Python process, ``ebmlab.register_method`` / ``register_dataset`` / ``register_metric`` do the same
without a package (a new process does not see those: use an entry point). ``examples/ebmlab-example-plugin`` is
such a package; ``ebmlab.testing.check_method`` checks a plugin method against the contract.

A plugin that fails to load does not stop ebmlab: the failure is kept and raised, with the plugin's name and the
error, when what it declares is asked for (and shown by ``ebmlab list``). A plugin may not take the name of
something ebmlab has.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any, Callable

GROUPS = ("ebmlab.methods", "ebmlab.datasets", "ebmlab.metrics")


def load(group: str, register: Callable[[str, Any, str], None], failed: dict[str, str]) -> None:
    """Every entry point of ``group``: loaded and given to ``register(name, object, source)``; a plugin that
    raises while loading or registering goes to ``failed`` (name → why)."""
    for ep in metadata.entry_points(group=group):
        source = describe(ep)
        try:
            register(ep.name, ep.load(), source)
        except Exception as exc:  # noqa: BLE001 - any error of a third-party package: kept, shown, raised on use
            failed[ep.name] = f"{source} could not be loaded: {type(exc).__name__}: {exc}"


def describe(ep: metadata.EntryPoint) -> str:
    """Where an entry point comes from: 'the package (version), entry point value'."""
    dist = ep.dist
    who = f"{dist.name} {dist.version}" if dist is not None else "an installed package"
    return f"{who} ({ep.value})"


def python_source(obj: Any) -> str:
    """Where an object registered from Python comes from."""
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)} (registered in Python)"


__all__ = ["GROUPS", "describe", "load", "python_source"]
