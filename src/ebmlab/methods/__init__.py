"""The one explicit name → method class registry."""

from __future__ import annotations

from ..errors import EbmlabError
from .base import Method
from .gan import GAN
from .kale import KALE
from .vgan import VGAN

METHODS: dict[str, type[Method]] = {
    "gan": GAN,
    "vgan": VGAN,
    "kale": KALE,
}


def get_method(name: str) -> type[Method]:
    try:
        return METHODS[name]
    except KeyError:
        raise EbmlabError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}") from None


__all__ = ["METHODS", "Method", "get_method"]
