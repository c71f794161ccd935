"""Noise draws and named seed streams: the one place randomness is derived from a run's seed.

**Draws.** Every draw made inside a training step goes through :func:`randn` / :func:`rand` / :func:`randint`
(the same arguments as torch's). Outside a sharded block they are torch's functions. Inside :func:`sharded` (the
trainer enters it around each step of a run with several processes, ``ebmlab.distributed``) each process draws the
*global* tensor — first dimension × the number of shards — from the method's generator, which has the same seed
and so the same state in every process, and keeps the rows ``rank, rank + size, …``, the rows it keeps of the
data. Each process thus has its own noise, disjoint from the others', and the union over processes is exactly the
noise one process would draw for the global batch. Rule for code that runs inside a step: the first dimension of
every draw is per example.

**Streams.** A run has one integer seed; every generator of the run is seeded from it through
:func:`stream_seed` with the name of its stream, so that the streams never coincide and a reader can see which
stream a number came from. The offsets are those the runs were always seeded with, so results are unchanged.

This module imports nothing from the distributed machinery: bounds, samplers and networks use it freely.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import Tensor

# stream name -> offset added to the run seed (the values runs have always used)
STREAMS: dict[str, int] = {
    "init": 0,  # network initialisation (the global generator while a method is built) and the trainer's global RNG
    "method": 1,  # the method's own generator: its noise z, ε, dropout masks, MCMC draws
    "batches": 2,  # i.i.d. batches of the toy sets (a stateful generator saved in checkpoints)
    "eval": 10_000,  # evaluation at step s draws from stream_seed(seed, "eval", s)
    "inception": 20_000,  # the samples behind FID / IS with user-supplied Inception weights
}

_SHARD: tuple[int, int] | None = None  # (rank, size) inside a sharded block; None: draw as one process


def stream_seed(seed: int, stream: str, step: int = 0) -> int:
    """The seed of the named ``stream`` of a run seeded ``seed`` (``step``: a per-step stream such as eval's)."""
    try:
        return int(seed) + STREAMS[stream] + int(step)
    except KeyError:
        raise KeyError(f"unknown random stream {stream!r}; known: {', '.join(STREAMS)}") from None


@contextlib.contextmanager
def sharded(rank: int, size: int) -> Iterator[None]:
    """Within the block, draws through this module are sharded over ``size`` processes (this one: ``rank``)."""
    global _SHARD
    saved, _SHARD = _SHARD, (rank, size) if size > 1 else None
    try:
        yield
    finally:
        _SHARD = saved


def _size(size: Sequence[Any]) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)):
        return tuple(int(s) for s in size[0])
    return tuple(int(s) for s in size)


def _draw(draw: Callable[..., Tensor], size: tuple[int, ...], **kw: Any) -> Tensor:
    if _SHARD is None or not size:
        return draw(size, **kw)
    rank, n = _SHARD
    full = draw((size[0] * n, *size[1:]), **kw)
    return full[rank::n]


def randn(*size: Any, generator: torch.Generator | None = None, dtype: torch.dtype | None = None,
          device: Any = None) -> Tensor:
    """``torch.randn`` with the same arguments; sharded inside a :func:`sharded` block."""
    return _draw(torch.randn, _size(size), generator=generator, dtype=dtype, device=device)


def rand(*size: Any, generator: torch.Generator | None = None, dtype: torch.dtype | None = None,
         device: Any = None) -> Tensor:
    """``torch.rand`` with the same arguments; sharded inside a :func:`sharded` block."""
    return _draw(torch.rand, _size(size), generator=generator, dtype=dtype, device=device)


def randint(low: int, high: int, size: Sequence[int], *, generator: torch.Generator | None = None,
            device: Any = None) -> Tensor:
    """``torch.randint(low, high, size)``; sharded inside a :func:`sharded` block."""
    return _draw(lambda s, **kw: torch.randint(low, high, s, **kw), tuple(int(s) for s in size),
                 generator=generator, device=device)


__all__ = ["STREAMS", "rand", "randint", "randn", "sharded", "stream_seed"]
