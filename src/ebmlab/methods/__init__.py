"""The one explicit name → method class registry: ebmlab's own methods, then those of installed plugins (entry
point group ``ebmlab.methods``, ``ebmlab.plugins``) and those registered from Python (:func:`register_method`).
``SOURCES`` says where each came from."""

from __future__ import annotations

from ..errors import EbmlabError, did_you_mean
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

METHODS: dict[str, type[Method]] = {
    "gan": GAN,
    "vgan": VGAN,
    "vgan_vcd": VCD,
    "kale": KALE,
    **BIB_METHODS,
    "vae": VAE, "lbt": LBT, "lbt_gan": LBTGAN,
    "ebgan": EBGAN, "ebgan_pt": EBGANPT, "ebgan_ln": EBGANLN,
    "bihm": BiHM, "rws": RWS,
}


SOURCES: dict[str, str] = {name: "ebmlab" for name in METHODS}
FAILED: dict[str, str] = {}  # plugin methods that could not be loaded: name -> why


def register_method(cls: type[Method], *, source: str | None = None) -> type[Method]:
    """Add a method class to the registry under its ``name`` (its runs then train, resume, evaluate and sample like
    any; in this process only — a plugin package's entry point reaches new processes). Returns the class, so that
    it can decorate one. Refused: what is not a Method subclass with a name and a Config dataclass, and a name that
    ebmlab or another plugin already has."""
    import dataclasses

    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise EbmlabError(f"register_method takes a subclass of ebmlab.methods.Method, got {cls!r}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise EbmlabError(f"{cls.__qualname__} needs a class attribute name: a method name such as 'my_gan'")
    if not dataclasses.is_dataclass(getattr(cls, "Config", None)):
        raise EbmlabError(f"{cls.__qualname__} needs a Config: a frozen dataclass of its options")
    if name in METHODS and METHODS[name] is not cls:
        raise EbmlabError(f"method name {name!r} is taken by {SOURCES.get(name, 'ebmlab')}; give "
                          f"{cls.__qualname__} another name")
    from ..plugins import python_source

    METHODS[name] = cls
    SOURCES[name] = source or python_source(cls)
    FAILED.pop(name, None)
    return cls


def methods_with(*flags: str) -> str:
    """The registered methods with every one of the class flags ``flags`` set, for messages ('kale, vgan')."""
    return ", ".join(n for n, cls in METHODS.items() if all(getattr(cls, f) for f in flags)) or "none"


def get_method(name: str) -> type[Method]:
    try:
        return METHODS[name]
    except KeyError:
        if name in FAILED:
            raise EbmlabError(f"method {name!r}: {FAILED[name]}") from None
        raise EbmlabError(f"unknown method {name!r}{did_you_mean(name, METHODS)} (valid methods: "
                          f"{', '.join(METHODS)}; a method of another package is found once the package is "
                          f"installed with an 'ebmlab.methods' entry point)") from None


def _load_plugins() -> None:
    from ..plugins import load

    load("ebmlab.methods", lambda name, cls, source: _register_entry(name, cls, source), FAILED)


def _register_entry(name: str, cls: type[Method], source: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise EbmlabError(f"the entry point names a {type(cls).__name__} ({getattr(cls, '__qualname__', cls)!r}), "
                          f"not a subclass of ebmlab.methods.Method: point it at the method's class")
    if getattr(cls, "name", None) != name:
        raise EbmlabError(f"the entry point is named {name!r} but the class's name is {getattr(cls, 'name', None)!r}")
    register_method(cls, source=source)


_load_plugins()

__all__ = ["FAILED", "METHODS", "Method", "SOURCES", "get_method", "methods_with", "register_method"]
