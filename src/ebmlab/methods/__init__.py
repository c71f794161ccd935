"""The name → method class registry (:data:`METHODS`, a :class:`ebmlab.plugins.Registry`): ebmlab's own methods,
then those of installed plugins (entry point group ``ebmlab.methods``, loaded on the first look-up) and those
registered from Python (:func:`register_method`). ``SOURCES`` says where each came from."""

from __future__ import annotations

from ..errors import EbmlabError
from ..plugins import Registry
from .base import Method
from .bib import BIB_METHODS
from .bihm import RWS, BiHM
from .ebgan import EBGAN, EBGANPT
from .ebgan_ln import EBGANLN
from .gan import GAN
from .kale import KALE
from .lbt import LBT, LBTGAN
from .vae import VAE
from .vgan import VGAN
from .vgan_vcd import VCD

def _admit(name: str, cls: object) -> type[Method]:
    """A method class may be registered: a Method subclass with a name (the one it is registered under) and a Config
    dataclass."""
    import dataclasses

    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise EbmlabError(f"register_method takes a subclass of ebmlab.methods.Method, got {cls!r}")
    own = getattr(cls, "name", None)
    if not isinstance(own, str) or not own.isidentifier():
        raise EbmlabError(f"{cls.__qualname__} needs a class attribute name: a method name such as 'my_gan'")
    if own != name:
        raise EbmlabError(f"the entry point is named {name!r} but the class's name is {own!r}")
    if not dataclasses.is_dataclass(getattr(cls, "Config", None)):
        raise EbmlabError(f"{cls.__qualname__} needs a Config: a frozen dataclass of its options")
    return cls


def _entry(name: str, cls: object) -> type[Method]:
    """What an ``ebmlab.methods`` entry point names: a Method class (a function or an instance named in one line)."""
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise EbmlabError(f"the entry point names a {type(cls).__name__} ({getattr(cls, '__qualname__', cls)!r}), "
                          f"not a subclass of ebmlab.methods.Method: point it at the method's class")
    return _admit(name, cls)


METHODS: Registry[type[Method]] = Registry(
    "method", "ebmlab.methods", _admit, entry=_entry,
    own={"gan": GAN, "vgan": VGAN, "vgan_vcd": VCD, "kale": KALE, **BIB_METHODS, "vae": VAE, "lbt": LBT,
         "lbt_gan": LBTGAN, "ebgan": EBGAN, "ebgan_pt": EBGANPT, "ebgan_ln": EBGANLN, "bihm": BiHM, "rws": RWS},
    hint="a method of another package is found once the package is installed with an 'ebmlab.methods' entry point")
SOURCES = METHODS.sources  # where each came from: "ebmlab", or the package / Python object
FAILED = METHODS.failed  # plugin methods that could not be loaded: name -> why


def register_method(cls: type[Method], *, source: str | None = None) -> type[Method]:
    """Add a method class to the registry under its ``name`` (its runs then train, resume, evaluate and sample like
    any; in this process only — a plugin package's entry point reaches new processes). Returns the class, so that
    it can decorate one. Refused: what is not a Method subclass with a name and a Config dataclass, and a name that
    ebmlab or another plugin already has."""
    return METHODS.register(str(getattr(cls, "name", "")), cls, source=source)  # _admit checks the class


def methods_with(*flags: str) -> str:
    """The registered methods with every one of the class flags ``flags`` set, for messages ('kale, vgan')."""
    return ", ".join(n for n, cls in METHODS.items() if all(getattr(cls, f) for f in flags)) or "none"


def get_method(name: str) -> type[Method]:
    return METHODS.lookup(name)


__all__ = ["FAILED", "METHODS", "Method", "SOURCES", "get_method", "methods_with", "register_method"]
