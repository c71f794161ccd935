"""The one data interface: what a data set says about itself, whatever the shape of its samples.

A data set has a ``spec`` (:class:`DataSpec`: kind, sample shape, value range), train/test splits as float32
tensors ``[n, *shape]`` in that value range, and labels where it has them. Methods are built from the spec
(never from a flat dimension), the trainer draws batches through :mod:`ebmlab.data.batches`, and the
evaluator is picked by ``spec.kind``:

- ``toy2d``: points in R², with an exact ``log_prob`` (:mod:`ebmlab.data.toy`);
- ``image``: C×H×W images with values in ``value_range`` (−1..1 for the built-in sets);
- ``binary``: {0, 1}-valued samples of any shape (binarised images);
- ``vectors``: feature vectors of any length (a user's tabular data), standardised with the train split's
  mean and standard deviation (stated in the description).

:class:`ArrayDataset` holds any non-toy set. Its arrays are loaded on first use (so ``ebmlab list`` and the
option checks never read data files) and images are kept as uint8 and converted per batch, so that 60k
Fashion-MNIST images cost 47 MB of memory rather than 188 MB.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

Kind = Literal["toy2d", "image", "binary", "vectors"]
KINDS = ("toy2d", "image", "binary", "vectors")


@dataclass(frozen=True)
class DataSpec:
    """What a method needs to know about the data: ``kind``, the sample ``shape`` and the ``value_range``.

    ``value_range`` is (lo, hi) for data confined to a box (images: (−1, 1); binary: (0, 1)), else None.
    ``levels``: the number of values of quantised data (256 for images read from 8-bit sources), else None; a
    likelihood of such data must be a discrete one (``bounds.discrete``).
    """

    kind: Kind
    shape: tuple[int, ...]
    value_range: tuple[float, float] | None = None
    levels: int | None = None  # quantised data (8-bit images: 256 grid values spanning value_range), else None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "image" and len(self.shape) != 3:
            raise ValueError(f"an image data set needs a (C, H, W) shape, got {self.shape}")

    @property
    def dim(self) -> int:
        """Number of coordinates of one sample (the product of ``shape``)."""
        return int(np.prod(self.shape))

    @property
    def is_image(self) -> bool:
        """True when samples are C×H×W arrays (``image``, or ``binary`` with a 3-d shape)."""
        return len(self.shape) == 3


@runtime_checkable
class Dataset(Protocol):
    """What every data set offers the rest of ebmlab, whatever its kind (:class:`ArrayDataset`,
    ``ebmlab.data.toy.ToyDataset``): the object the trainer, the methods, the evaluators and the samplers receive.

    Splits are float32 tensors ``[n, *spec.shape]`` in the spec's value range. ``stacked`` sets (three channels
    that are each an image of ``base``) are scored by ``base``'s domain classifier; ``has_modes`` data (equal-weight
    2D mixtures) by the mode-coverage metrics. ``read`` loads (and checks) the files now, so that a missing or
    corrupt one is refused before a run writes anything; it does nothing for generated data."""

    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def spec(self) -> DataSpec: ...
    @property
    def kind(self) -> Kind: ...
    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def dim(self) -> int: ...
    @property
    def has_modes(self) -> bool: ...
    @property
    def modes(self) -> Tensor | None: ...
    @property
    def mode_std(self) -> float | None: ...
    @property
    def n_train(self) -> int: ...
    @property
    def n_test(self) -> int: ...
    @property
    def train(self) -> Tensor: ...
    @property
    def test(self) -> Tensor: ...
    @property
    def train_labels(self) -> Tensor | None: ...
    @property
    def test_labels(self) -> Tensor | None: ...
    @property
    def n_classes(self) -> int | None: ...
    @property
    def binarize(self) -> Literal["fixed", "dynamic"] | None: ...
    @property
    def stacked(self) -> bool: ...
    @property
    def base(self) -> str | None: ...
    @property
    def data_dir(self) -> str | None: ...
    @property
    def standardisation(self) -> dict[str, Any] | None: ...

    def __hash__(self) -> int: ...  # data sets are cached by identity (evaluation references)
    def read(self) -> None: ...
    def train_batch(self, idx: Tensor, *, generator: torch.Generator | None = None) -> Tensor: ...
    def device_split(self, device: Any) -> tuple[Tensor, Callable[[Tensor], Tensor]]: ...
    def device_bytes(self) -> int: ...


@dataclass
class Arrays:
    """The raw splits of a data set: ``x`` as uint8 (images) or float32, labels as int64 or None."""

    train_x: np.ndarray
    test_x: np.ndarray
    train_y: np.ndarray | None = None
    test_y: np.ndarray | None = None


@dataclass(eq=False)
class ArrayDataset:
    """A data set held as arrays: images, binary data or vectors.

    ``load`` returns the :class:`Arrays` (called once, on first use). ``encode`` maps a raw array to float32
    values in the spec's range (uint8 images → [−1, 1]; binary → {0, 1}; vectors → standardised).
    ``binarize``: ``None``, ``"fixed"`` (the arrays already hold one Bernoulli draw, made with a stated seed) or
    ``"dynamic"`` (a fresh Bernoulli draw of the grey levels in every training batch; the test split keeps one
    fixed draw so that evaluation is deterministic).
    """

    name: str
    description: str
    spec: DataSpec
    load: Callable[[], Arrays] = field(repr=False)
    encode: Callable[[np.ndarray], Tensor] = field(repr=False)
    n_classes: int | None = None
    binarize: Literal["fixed", "dynamic"] | None = None
    base: str | None = None  # stacked sets: the single-channel data set whose classifier labels each channel
    stacked: bool = False
    data_dir: str | None = None  # where the files were read from (for the base set of a stacked set)
    border: int = 0  # pixels of background padded on each side (the 32×32 stacked sets); classified without them
    # a user's vectors: the train split's per-coordinate mean and std they were standardised with, and Σ log std
    standardisation: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def kind(self) -> Kind:
        return self.spec.kind

    @property
    def shape(self) -> tuple[int, ...]:
        return self.spec.shape

    @property
    def dim(self) -> int:
        return self.spec.dim

    @property
    def has_modes(self) -> bool:
        return False

    modes = None  # no mixture modes: the mode-coverage metrics apply to 2D mixtures
    mode_std = None

    def read(self) -> None:
        """Load (and check) the arrays now: a missing or corrupt file is refused here."""
        self.arrays  # noqa: B018 - the cached property does the work

    @cached_property
    def arrays(self) -> Arrays:
        a = self.load()
        for split, x in (("train", a.train_x), ("test", a.test_x)):
            if tuple(x.shape[1:]) != self.spec.shape:
                raise ValueError(f"{self.name}: {split} split has sample shape {tuple(x.shape[1:])}, "
                                 f"expected {self.spec.shape}")
        return a

    @property
    def n_train(self) -> int:
        return len(self.arrays.train_x)

    @property
    def n_test(self) -> int:
        return len(self.arrays.test_x)

    def train_batch(self, idx: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Training examples ``idx`` as float32 ``[len(idx), *shape]``; a dynamic binarisation draws from
        ``generator``."""
        x = self.encode(self.arrays.train_x[idx.cpu().numpy()])
        if self.binarize == "dynamic":
            x = torch.bernoulli(x, generator=generator)
        return x

    @cached_property
    def train(self) -> Tensor:
        x = self.encode(self.arrays.train_x)
        if self.binarize == "dynamic":  # one fixed draw for whole-split uses (evaluation references)
            x = torch.bernoulli(x, generator=torch.Generator().manual_seed(0))
        return x

    @cached_property
    def test(self) -> Tensor:
        x = self.encode(self.arrays.test_x)
        if self.binarize == "dynamic":
            x = torch.bernoulli(x, generator=torch.Generator().manual_seed(1))
        return x

    def device_split(self, device: Any) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
        """The training split moved to ``device`` once — as stored where its encoding can run there (8-bit images
        stay uint8: a quarter of the float32 bytes), else encoded first — and the encoding of rows of it, the same
        arithmetic as ``encode`` (rows encode independently, so both orders give the same values)."""
        x = self.arrays.train_x
        enc = DEVICE_ENCODE.get(self.encode)
        if enc is not None and x.dtype == np.uint8:
            return torch.from_numpy(np.ascontiguousarray(x)).to(device), enc
        return self.encode(x).to(device), _identity

    def device_bytes(self) -> int:
        """Bytes of the training split as ``device_split`` holds it."""
        x = self.arrays.train_x
        stored = DEVICE_ENCODE.get(self.encode) is not None and x.dtype == np.uint8
        return int(x.size) * (1 if stored else 4)

    @property
    def train_labels(self) -> Tensor | None:
        y = self.arrays.train_y
        return None if y is None else torch.as_tensor(y, dtype=torch.long)

    @property
    def test_labels(self) -> Tensor | None:
        y = self.arrays.test_y
        return None if y is None else torch.as_tensor(y, dtype=torch.long)


def uint8_to_signed(x: np.ndarray) -> Tensor:
    """uint8 grey levels 0..255 → float32 in [−1, 1] (x/127.5 − 1)."""
    return torch.from_numpy(np.ascontiguousarray(x)).float().div_(127.5).sub_(1.0)


def uint8_to_unit(x: np.ndarray) -> Tensor:
    """uint8 0..255 → float32 in [0, 1] (the grey levels that a binarisation draws from)."""
    return torch.from_numpy(np.ascontiguousarray(x)).float().div_(255.0)


def as_float(x: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _identity(t: Tensor) -> Tensor:
    return t


# tensor versions of the encodings above, for rows already on a device (``ArrayDataset.device_split``)
DEVICE_ENCODE: dict[Callable[..., Tensor], Callable[[Tensor], Tensor]] = {
    uint8_to_signed: lambda t: t.float().div_(127.5).sub_(1.0),
    uint8_to_unit: lambda t: t.float().div_(255.0),
    as_float: lambda t: t.float(),
}
