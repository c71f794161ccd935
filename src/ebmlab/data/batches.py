"""Training batches as a function of the step: resumable exactly, shardable across processes.

Three schemes (run option ``batches``):
- ``epochs``: shuffled epochs without replacement. Step s (1-based) takes rows [pos, pos + b) of the epoch's
  permutation, epoch = (s − 1) // n_b, pos = ((s − 1) % n_b)·b with n_b = ⌊n / b⌋ batches per epoch (the last
  partial batch is dropped). The permutation of an epoch is drawn from a generator seeded by (seed, epoch), so
  the batch of any step is a pure function of (seed, step): a resumed run needs no saved sampler state, a
  ``DataLoader`` may prefetch freely, and process r of w takes rows r, r + w, … of the global batch.
- ``iid``: each batch drawn with replacement from one stateful generator, whose state is saved with the
  checkpoint. This is the scheme of the 2D toys (their 100k training points are themselves i.i.d. draws of the
  exact density), kept so that toy results stay bit-for-bit what they were.
- ``balanced``: like ``iid``, but every batch holds the same number of points of each mode of a mixture
  (``BalancedBatches``; EBM-BB's toy batches).
``auto`` picks ``iid`` for toy2d data and ``epochs`` for everything else. A dynamic binarisation draws its
Bernoulli noise from a generator seeded by (seed, step), so it is a pure function of the step too.

Data on the device (``on_device``; run option ``data_on_device``): the training split is moved to the training
device once (8-bit images as uint8) and each batch is gathered and encoded there, by the same indices — an
epoch's permutation crosses to the device once per epoch, an ``iid`` batch's indices once per step — so the
batches are the same values in the same order, and resuming is exact as before. A dynamic binarisation then
draws from a generator on the device seeded the same way (on a CUDA device other numbers than the CPU path's,
but still a pure function of the step).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from ..errors import EbmlabError
from .base import Dataset


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


class EpochBatches:
    """Batch indices and contents for each step (module docstring); ``rank``/``world`` shard a global batch."""

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, *, rank: int = 0, world: int = 1):
        n = dataset.n_train
        if batch_size > n:
            raise EbmlabError(f"batch_size={batch_size} exceeds the {n} training examples of {dataset.name}; "
                              f"lower batch_size")
        if batch_size % world:
            raise EbmlabError(f"batch_size={batch_size} is not divisible by the {world} processes")
        self.dataset, self.b, self.seed, self.rank, self.world = dataset, batch_size, seed, rank, world
        self.n, self.per_epoch = n, n // batch_size
        self._epoch = -1
        self._perm: Tensor | None = None
        self.device: torch.device | None = None  # set by on_device
        self._raw: Tensor | None = None
        self._perm_dev: Tensor | None = None

    def on_device(self, device: torch.device) -> None:
        """Hold the training split on ``device`` and draw every batch there (module docstring)."""
        self.device = torch.device(device)
        raw, self._encode = self.dataset.device_split(self.device)
        # gathered as [n, D] rows and viewed back: a gather from [n, C, H, W] may give a batch whose strides
        # differ from the host path's (when C = 1), which moves a CPU convolution onto another, rounding-different,
        # kernel
        self._raw, self._shape = raw.reshape(len(raw), -1), tuple(raw.shape[1:])
        self._epoch, self._perm_dev = -1, None

    def permutation(self, epoch: int) -> Tensor:
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(_seed(self.seed, 17, epoch))
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        assert self._perm is not None
        return self._perm

    def indices(self, step: int) -> Tensor:
        epoch, k = divmod(step - 1, self.per_epoch)
        rows = self.permutation(epoch)[k * self.b:(k + 1) * self.b]
        return rows[self.rank::self.world]

    def _noise_seed(self, step: int) -> int:
        """The seed of step ``step``'s per-batch noise (dynamic binarisation), the same on the host and device paths;
        computed only where used: a SeedSequence costs ~20 µs, a step's worth of the trainer's own time."""
        return _seed(self.seed, 29, step, self.rank)

    def batch(self, step: int) -> Tensor:
        if self._raw is None:
            g = torch.Generator().manual_seed(self._noise_seed(step))
            return self.dataset.train_batch(self.indices(step), generator=g)
        epoch, k = divmod(step - 1, self.per_epoch)
        if self._perm_dev is None or epoch != self._epoch:
            self._perm_dev = self.permutation(epoch).to(self.device)
        rows = self._raw[self._perm_dev[k * self.b:(k + 1) * self.b][self.rank::self.world]]
        x = self._encode(rows).view(-1, *self._shape)
        if self.dataset.binarize == "dynamic":
            g = torch.Generator(device=self.device).manual_seed(self._noise_seed(step))
            x = torch.bernoulli(x, generator=g)
        return x

    def stream(self, start: int, end: int, *, num_workers: int = 0) -> Iterator[Tensor]:
        """The batches of steps start+1 … end, in order (through a ``DataLoader`` when ``num_workers`` > 0)."""
        if num_workers > 0 and self._raw is not None:
            raise EbmlabError("the batches are drawn on the device (data_on_device); worker processes cannot share "
                              "it: set num_workers=0 or data_on_device=off")
        if num_workers <= 0:
            for s in range(start + 1, end + 1):
                yield self.batch(s)
            return
        loader = torch.utils.data.DataLoader(_StepDataset(self), batch_size=None,
                                             sampler=range(start + 1, end + 1), num_workers=num_workers,
                                             persistent_workers=False, prefetch_factor=4)
        yield from loader

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class _StepDataset(torch.utils.data.Dataset):
    """Item s = the batch of step s (so a DataLoader's workers compute whole batches)."""

    def __init__(self, batches: EpochBatches):
        self.batches = batches

    def __getitem__(self, step: int) -> Tensor:
        return self.batches.batch(int(step))

    def __len__(self) -> int:  # pragma: no cover — the sampler decides which steps are drawn
        return 1 << 62


class IIDBatches:
    """Batches drawn with replacement from one stateful generator (seeded ``seed + 2``, saved in checkpoints).

    With several processes (``world`` > 1) each process holds the same generator, draws the *global* batch's
    indices and keeps the rows ``rank, rank + world, …``: the processes' batches are disjoint, their union is the
    batch one process draws, and the generators stay equal (any process's checkpoint resumes all of them)."""

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, *, rank: int = 0, world: int = 1):
        if batch_size % world:
            raise EbmlabError(f"batch_size={batch_size} is not divisible by the {world} processes")
        self.rank, self.world = rank, world
        self.dataset, self.b = dataset, batch_size
        self.gen = torch.Generator(device="cpu").manual_seed(seed + 2)  # on the CPU wherever the data are
        self.x = dataset.train
        self.device: torch.device | None = None  # set by on_device

    def on_device(self, device: torch.device) -> None:
        """Hold the training points on ``device``; the indices are still drawn by the CPU generator (same batches)."""
        self.device = torch.device(device)
        self.x = self.dataset.device_split(self.device)[0]

    def _rows(self, idx: Tensor) -> Tensor:
        """The training points of the global batch's indices ``idx`` that this process keeps."""
        return self.x[idx[self.rank::self.world].to(self.x.device)]

    def stream(self, start: int, end: int, *, num_workers: int = 0) -> Iterator[Tensor]:
        n = self.x.shape[0]
        for _ in range(start + 1, end + 1):
            yield self._rows(torch.randint(0, n, (self.b,), generator=self.gen))

    def state_dict(self) -> dict:
        return {"data_generator": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["data_generator"])


class BalancedBatches(IIDBatches):
    """Batches with the same number of points from every mode of a mixture (EBM-BB's toy batches hold exactly
    b/25 points of each of the 25 Gaussians): each training point belongs to its nearest mode; a batch takes
    ⌊b/K⌋ points of every mode, drawn with replacement, plus b mod K points of modes drawn without replacement,
    all from the one stateful generator of ``iid`` (saved in checkpoints), then shuffled."""

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, *, rank: int = 0, world: int = 1):
        if not dataset.has_modes:
            raise EbmlabError(f"batches=balanced needs a mixture with known modes (ring8, grid25, ...); "
                              f"{dataset.name} has none: use batches=iid or epochs")
        super().__init__(dataset, batch_size, seed, rank=rank, world=world)
        modes = dataset.modes
        assert modes is not None
        owner = torch.cdist(self.x.double(), modes.double()).argmin(1)
        self.members = [torch.nonzero(owner == k).squeeze(1) for k in range(modes.shape[0])]

    def stream(self, start: int, end: int, *, num_workers: int = 0) -> Iterator[Tensor]:
        K = len(self.members)
        per, extra = divmod(self.b, K)
        for _ in range(start + 1, end + 1):
            modes = torch.arange(K).repeat_interleave(per)
            if extra:
                modes = torch.cat([modes, torch.randperm(K, generator=self.gen)[:extra]])
            counts = torch.bincount(modes, minlength=K).tolist()
            idx = torch.cat([m[torch.randint(0, len(m), (c,), generator=self.gen)] for m, c in zip(self.members, counts)])
            yield self._rows(idx[torch.randperm(len(idx), generator=self.gen)])


def make_batches(dataset: Dataset, scheme: str, batch_size: int, seed: int, *, rank: int = 0, world: int = 1):
    if scheme == "auto":
        scheme = "iid" if dataset.kind == "toy2d" else "epochs"
    if scheme == "iid":
        return IIDBatches(dataset, batch_size, seed, rank=rank, world=world)
    if scheme == "balanced":
        return BalancedBatches(dataset, batch_size, seed, rank=rank, world=world)
    if scheme == "epochs":
        return EpochBatches(dataset, batch_size, seed, rank=rank, world=world)
    raise EbmlabError(f"batches must be one of auto, epochs, iid, balanced; got {scheme!r}")
