"""Frozen dataclass configs: overrides from strings with type checks, TOML files, and dict round trips.

Each method's ``Config`` dataclass lives beside the method. Overrides arrive as ``key=value`` strings
(CLI) or as a dict (Python API); both go through :func:`apply_overrides`, which rejects unknown keys
(listing the valid ones) and values of the wrong type.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from .errors import EbmlabError


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert ``value`` (a string from the command line, or a TOML/JSON value) to the field type ``tp``."""
    origin = get_origin(tp)
    if origin is Literal:
        allowed = get_args(tp)
        if value in allowed:
            return value
        raise EbmlabError(f"option {key}: expected one of {', '.join(map(repr, allowed))}, got {value!r}")
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return coerce(value, args[0], key)
    if origin is tuple:
        args = get_args(tp)
        if isinstance(value, str):
            value = [v for v in value.strip("()[] ").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise EbmlabError(f"option {key}: expected a comma-separated list, got {value!r}")
        elem = args[0] if args else str
        return tuple(coerce(v.strip() if isinstance(v, str) else v, elem, key) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise EbmlabError(f"option {key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise EbmlabError(f"option {key}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise EbmlabError(f"option {key}: expected an integer, got {value!r}") from None
        if not f.is_integer():
            raise EbmlabError(f"option {key}: expected an integer, got {value!r}")
        return int(f)
    if tp is float:
        if isinstance(value, bool):
            raise EbmlabError(f"option {key}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise EbmlabError(f"option {key}: expected a number, got {value!r}") from None
    if tp is str:
        if not isinstance(value, str):
            raise EbmlabError(f"option {key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config field type {tp!r} for {key}")


def field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def apply_overrides(cfg: Any, overrides: dict[str, Any], *, what: str = "config") -> Any:
    """Return a copy of the dataclass ``cfg`` with ``overrides`` applied, type-checked."""
    types_ = field_types(type(cfg))
    changes = {}
    for key, value in overrides.items():
        if key not in types_:
            valid = ", ".join(sorted(types_))
            raise EbmlabError(f"unknown option {key!r} for {what}; valid options: {valid}")
        changes[key] = coerce(value, types_[key], key)
    return dataclasses.replace(cfg, **changes)


def parse_override_strings(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise EbmlabError(f"override {item!r} is not of the form key=value (e.g. lr=1e-3)")
        key, value = item.split("=", 1)
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise EbmlabError(f"config file {path} does not exist; pass the path of a TOML file")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise EbmlabError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise EbmlabError(f"config file {path} is not UTF-8 text; save it as UTF-8 TOML") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def describe(cls: type) -> list[tuple[str, str, Any]]:
    """(name, type, default) for each field: used by ``ebmlab list --options``."""
    return [(f.name, _type_name(t), getattr(cls(), f.name)) for f, t in zip(dataclasses.fields(cls), field_types(cls).values())]
