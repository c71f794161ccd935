"""Extension without forking: methods, data sets and metrics from other packages.

An installed package declares them as entry points in its ``pyproject.toml``::

    [project.entry-points."ebmlab.methods"]
    lsgan = "my_package.lsgan:LSGAN"                 # a Method subclass
    [project.entry-points."ebmlab.datasets"]
    ring4 = "my_package.data:ring4"                  # a data set (ebmlab.data.base.Dataset) or a function making one
    [project.entry-points."ebmlab.metrics"]
    mean_dist = "my_package.metrics:MEAN_DIST"      # (ebmlab.metadata.Metric, fn(samples, test) -> float)

and ebmlab loads them in any process — the CLI, the Python API, a bench's worker processes, a run resumed,
evaluated or sampled in a new process — into the same registries as its own, each a :class:`Registry`
(``ebmlab.methods.METHODS``, ``ebmlab.data.DATASETS``, ``ebmlab.metrics.registry.PLUGINS``) that reads its entry
points on its first look-up, so ``ebmlab list`` names them with where they came from. Within one Python
process, ``ebmlab.register_method`` / ``register_dataset`` / ``register_metric`` do the same
without a package (a new process does not see those: use an entry point). ``examples/ebmlab-example-plugin`` is
such a package; ``ebmlab.testing.check_method`` checks a plugin method against the contract.

A plugin that fails to load does not stop ebmlab: the failure is kept and raised, with the plugin's name and the
error, when what it declares is asked for (and shown by ``ebmlab list``). A plugin may not take the name of
something ebmlab has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from typing import Any, Generic, TypeVar

from .errors import EbmlabError, did_you_mean

GROUPS = ("ebmlab.methods", "ebmlab.datasets", "ebmlab.metrics")
T = TypeVar("T")
_GENERATION = [0]  # bumped by every change of any registry: caches built from the registries key on it
REGISTRIES: list[Registry[Any]] = []  # every registry made, in the order made (ebmlab list reads their failures)


@contextmanager
def restored() -> Iterator[None]:
    """Every registry as it was before the block: what a test registers (or unregisters) inside it is forgotten
    after it."""
    states = [(r, r.snapshot()) for r in REGISTRIES]
    try:
        yield
    finally:
        for r, state in states:
            r.restore(state)


def generation() -> int:
    """A number that changes whenever any registry gains, loses or loads an entry (a cache key)."""
    return _GENERATION[0]


class Registry(Mapping[str, T], Generic[T]):
    """Names → objects of one kind (methods, data sets, metrics): ebmlab's own, those of installed packages'
    entry points (group ``group``), and those registered from Python, each with where it came from.

    It is a read-only mapping (``reg[name]``, ``name in reg``, ``reg.items()``); the first read loads the entry
    points, so ``import ebmlab.methods`` reads no package metadata, and nothing that asks for a name misses a
    plugin. ``register`` admits an object through the registry's own check (``admit(name, obj) -> value``: raise
    :class:`~ebmlab.errors.EbmlabError` to refuse; ``entry`` does the same for what an entry point names, which may
    be in another form), refuses a name held here or by ``reserved()`` (names ebmlab owns outside the mapping,
    such as the built-in image sets), and forgets an earlier failure of that name. ``lookup`` is the look-up for
    users: a failed plugin's reason, else the unknown name with the closest one. (``get`` keeps the mapping's
    meaning, None for a missing name, so that the registry stands wherever a dict of these objects stood.)
    """

    def __init__(self, kind: str, group: str, admit: Callable[[str, Any], T], *, own: Mapping[str, T] | None = None,
                 entry: Callable[[str, Any], T] | None = None, reserved: Callable[[], Iterable[str]] = tuple,
                 hint: str = ""):
        self.kind, self.group, self.hint = kind, group, hint
        self._admit, self._entry, self._reserved = admit, entry or admit, reserved
        self._items: dict[str, T] = dict(own or {})
        self.sources: dict[str, str] = {name: "ebmlab" for name in self._items}
        self.failed: dict[str, str] = {}  # plugins that could not be loaded: name -> why
        self._state = "new"  # "loading", "loaded"
        REGISTRIES.append(self)

    # the mapping: every read loads the entry points first
    def __getitem__(self, name: str) -> T:
        self.load()
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        self.load()
        return iter(list(self._items))

    def __len__(self) -> int:
        self.load()
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        self.load()
        return name in self._items

    def load(self) -> None:
        """The entry points of the registry's group, once; a plugin that fails goes to ``failed``."""
        if self._state != "new":
            return
        self._state = "loading"
        try:
            load(self.group, lambda name, obj, source: self.register(name, self._entry(name, obj), source=source),
                 self.failed)
        finally:
            self._state = "loaded"
            _GENERATION[0] += 1

    def register(self, name: str, obj: Any, *, source: str | None = None) -> T:
        """Admit ``obj`` under ``name`` (``source``: where it comes from; by default the object's Python path)."""
        value = self._admit(name, obj)
        held = self._items.get(name)
        if (held is not None and held is not value) or (held is None and name in set(self._reserved())):
            raise EbmlabError(f"{self.kind} name {name!r} is taken by {self.sources.get(name, 'ebmlab')}; choose "
                              f"another")
        self._items[name] = value
        self.sources[name] = source or python_source(obj)
        self.failed.pop(name, None)
        _GENERATION[0] += 1
        return value

    def unregister(self, name: str) -> None:
        """Forget a name registered here (tests; a plugin uninstalled within a process)."""
        self._items.pop(name, None)
        self.sources.pop(name, None)
        _GENERATION[0] += 1

    def own(self) -> dict[str, T]:
        """ebmlab's own entries."""
        return {n: v for n, v in self._items.items() if self.sources.get(n) == "ebmlab"}

    def plugins(self) -> dict[str, T]:
        """The entries of other packages and of Python code, in the order registered."""
        self.load()
        return {n: v for n, v in self._items.items() if self.sources.get(n) != "ebmlab"}

    def lookup(self, name: str) -> T:
        """``self[name]``, or one :class:`~ebmlab.errors.EbmlabError`: the plugin's failure where one of that name
        failed to load, else the unknown name with the closest known one and every valid name."""
        if name in self:
            return self._items[name]
        if name in self.failed:
            raise EbmlabError(f"{self.kind} {name!r}: {self.failed[name]}")
        raise EbmlabError(f"unknown {self.kind} {name!r}{did_you_mean(name, self._items)} (valid {self.kind}s: "
                          f"{', '.join(self._items)}{'; ' + self.hint if self.hint else ''})")

    def snapshot(self) -> tuple[dict[str, T], dict[str, str], dict[str, str]]:
        """The registry's state, for :meth:`restore` (a test that registers something leaves it as it found it)."""
        self.load()
        return dict(self._items), dict(self.sources), dict(self.failed)

    def restore(self, state: tuple[dict[str, T], dict[str, str], dict[str, str]]) -> None:
        items, sources, failed = state
        self._items.clear()
        self._items.update(items)
        self.sources.clear()
        self.sources.update(sources)
        self.failed.clear()
        self.failed.update(failed)
        _GENERATION[0] += 1


_DEPTH = 0  # loads in progress: a plugin module that declares a method and a data set loads one group inside another
_DEFERRED: list[tuple[metadata.EntryPoint, Callable[[str, Any, str], object], dict[str, str]]] = []


def load(group: str, register: Callable[[str, Any, str], object], failed: dict[str, str]) -> None:
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


def _one(ep: metadata.EntryPoint, register: Callable[[str, Any, str], object], failed: dict[str, str], *,
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


__all__ = ["GROUPS", "REGISTRIES", "Registry", "describe", "generation", "restored", "install_hint", "load", "package_of", "python_source"]
