"""The types of metadata kept beside what they describe.

- Metric metadata, imported by every module that declares metrics (``metrics/*``, each method class): group, unit,
  direction and one-line meaning beside the function that computes the number. ``ebmlab.metrics.registry`` collects
  the declarations; presentation (``present``, ``report``, ``bench``) reads them and names no metric or method of
  its own.
- Option range kinds (:data:`RANGES`): the rule and its wording behind every ``(range kind, meaning)`` entry of an
  options table (``ebmlab.options`` explains the tables); :func:`out_of_range` checks a dataclass of options against
  its table, for the settings objects below the configuration layer (``samplers.latent.GuidedConfig``).
- Choices read by several layers: the latent samplers' names (:data:`SamplerName`, the rows of
  ``samplers.latent.SAMPLERS``), the devices (:data:`Device`) and the network families (:data:`NETS`, the rows of
  ``nets.build.FAMILIES``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Literal, NamedTuple, get_args


# The names of the energy-guided latent samplers, the rows of samplers.latent.SAMPLERS (checked there when it is
# imported), here in the lowest layer, where a method's option and the command line read them without importing
# torch; SamplerChoice is a method's option (none: its generator alone)
SamplerName = Literal["kinetic", "ula", "mala", "hmc"]
SamplerChoice = Literal["kinetic", "ula", "mala", "hmc", "none"]

# where a run trains or a command runs: the run option, the commands' --device and the Python API read these
Device = Literal["cpu", "cuda", "auto"]
DEVICES: tuple[str, ...] = get_args(Device)

# the network families (a method's ``net`` option): name -> one-line meaning; the rows of nets.build.FAMILIES beside
# their builders (checked there at import), here where the option tables and the command line read them without
# torch
NETS: dict[str, str] = {
    "auto": "MLP for vectors and 2D, conv for images",
    "mlp": "multilayer perceptrons of any shape: flattened in, reshaped out",
    "conv": "the small convolutional pair of nets.conv, width = channels of the first layer",
    "dcgan": "a small three-layer DCGAN pair, 32×32",
    "ebmbb32": "EBM-BB's 32×32 pair, d = 8·width; the paper: width=64",
    "vgan": "VGAN's released networks: MNIST width=64, CIFAR-10 width=128 energy / 256 transition",
    "lbt": "LBT-GAN's stacked-MNIST pair, width=16",
    "ebmbb_resnet": "EBM-BB's ResNet pair for square 32/64/128-pixel images; the paper: width=64 at 64×64",
    "gebm_resnet": "GEBM's resnet-sn pair, 32×32; the paper: width=128",
}
Net = Literal["auto", "mlp", "conv", "dcgan", "ebmbb32", "vgan", "lbt", "ebmbb_resnet", "gebm_resnet"]
assert get_args(Net) == tuple(NETS), "metadata.Net and metadata.NETS name the same families in the same order"


class Metric(NamedTuple):
    group: str  # "samples", "density" or "method"
    unit: str  # "" , "%", "nats"; "%" means the value is a fraction shown × 100
    better: str  # "↑", "↓" or "" (a diagnostic with no better direction)
    meaning: str
    column: bool = False  # a column of the benchmark tables (`ebmlab bench`)


RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "pos": (lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
    "nonneg": (lambda v: math.isfinite(v) and v >= 0, "a finite number ≥ 0"),
    "finite": (lambda v: math.isfinite(v), "a finite number"),
    "unit": (lambda v: math.isfinite(v) and 0 <= v < 1, "a number in [0, 1)"),
    "open01": (lambda v: math.isfinite(v) and 0 < v < 1, "a number in (0, 1)"),
    "int0": (lambda v: v >= 0, "an integer ≥ 0"),
    "int1": (lambda v: v >= 1, "an integer ≥ 1"),
    "int2": (lambda v: v >= 2, "an integer ≥ 2"),
    "int10": (lambda v: v >= 10, "an integer ≥ 10"),
    "ints1": (lambda v: all(x >= 1 for x in v), "a list of integers ≥ 1"),
    "ints1+": (lambda v: len(v) > 0 and all(x >= 1 for x in v), "a non-empty list of integers ≥ 1"),
    "choice": (lambda v: True, "one of the field's choices"),  # the field's Literal: the configuration checks it
    "any": (lambda v: True, ""),
}


def out_of_range(cfg: Any, table: dict[str, tuple[str, str]]) -> list[str]:
    """Each field of the dataclass ``cfg`` whose value is not of its declared type's kind (a number for a number, an
    integer for an integer) or outside the range of its ``table`` entry, as 'name=value (expected ...: meaning)'."""
    out = []
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        kind, meaning = table[f.name]
        if isinstance(v, (bool, str)) or v is None:
            continue
        number = isinstance(v, (int, float)) and (not kind.startswith("int") or isinstance(v, int))
        ok, expected = RANGES[kind]
        if not number or not ok(v):
            out.append(f"{f.name}={v!r} (expected {expected}: {meaning})")
    return out


__all__ = ["DEVICES", "Device", "Metric", "NETS", "Net", "RANGES", "SamplerChoice", "SamplerName", "out_of_range"]
