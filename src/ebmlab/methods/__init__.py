"""The one explicit name → method class registry."""

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


def get_method(name: str) -> type[Method]:
    try:
        return METHODS[name]
    except KeyError:
        raise EbmlabError(f"unknown method {name!r}{did_you_mean(name, METHODS)} (valid methods: "
                          f"{', '.join(METHODS)})") from None


__all__ = ["METHODS", "Method", "get_method"]
