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


_DEPTH = 0  # loads in progress: a plugin module that declares a method and a data set loads one group inside another
_DEFERRED: list[tuple[metadata.EntryPoint, Callable[[str, Any, str], None], dict[str, str]]] = []


def load(group: str, register: Callable[[str, Any, str], None], failed: dict[str, str]) -> None:
    """Every entry point of ``group``: loaded and given to ``register(name, object, source)``; a plugin that
    raises while loading or registering goes to ``failed`` (name → why).

    One module may declare entries of several groups (a method and the data set it comes with). Importing it for the
    first group imports ebmlab's module of the second, which loads its group while the plugin's module is still
    half made: an entry that fails then is tried again once the outermost load has finished (the module complete),
    and only a failure at that point is kept."""
    global _DEPTH
    _DEPTH += 1
    try:
        for ep in metadata.entry_points(group=group):
            _one(ep, register, failed, defer=_DEPTH > 1)
    finally:
        _DEPTH -= 1
    if _DEPTH == 0:
        while _DEFERRED:
            ep, reg, fail = _DEFERRED.pop(0)
            _one(ep, reg, fail, defer=False)


def _one(ep: metadata.EntryPoint, register: Callable[[str, Any, str], None], failed: dict[str, str], *,
         defer: bool) -> None:
    source = describe(ep)
    try:
        register(ep.name, ep.load(), source)
        failed.pop(ep.name, None)
    except Exception as exc:  # noqa: BLE001 - any error of a third-party package: kept, shown, raised on use
        failed[ep.name] = f"{source} could not be loaded: {type(exc).__name__}: {exc}"
        if defer:
            _DEFERRED.append((ep, register, failed))


def package_of(source: str) -> tuple[str, str] | None:
    """(package, version) of a source as :func:`describe` writes it, or None (ebmlab's own, or registered in
    Python)."""
    import re

    hit = re.fullmatch(r"(\S+) (\S+) \(.*\)", source)
    return (hit[1], hit[2]) if hit and source != "ebmlab" and not source.endswith("(registered in Python)") else None


def install_hint(source: str) -> str:
    """How to get a plugin back: ``pip install 'package==version'`` where the source names them."""
    pkg = package_of(source)
    return f"pip install '{pkg[0]}=={pkg[1]}'" if pkg else "install the package that declares it"


def describe(ep: metadata.EntryPoint) -> str:
    """Where an entry point comes from: 'the package (version), entry point value'."""
    dist = ep.dist
    who = f"{dist.name} {dist.version}" if dist is not None else "an installed package"
    return f"{who} ({ep.value})"


def python_source(obj: Any) -> str:
    """Where an object registered from Python comes from."""
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)} (registered in Python)"


__all__ = ["GROUPS", "describe", "install_hint", "load", "package_of", "python_source"]
