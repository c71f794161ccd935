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

**Tapes.** ``torch.compile`` cannot draw from a ``torch.Generator`` inside a graph. A compiled training step
(run option ``compile``, ``ebmlab.compiled``) therefore takes its noise from a :class:`Tape`: the draws one eager
step makes from the method's generator are listed once (:func:`recording`), every later step draws the same list
eagerly from the same generator (:func:`redraw`: the same numbers, in the order the eager step would have drawn
them), and the compiled code, handed the tape wherever it would pass the generator, takes them in turn. A draw of
another shape, type or device than the tape's next one is refused.

This module imports nothing from the distributed machinery: bounds, samplers and networks use it freely.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence, Union

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
_RECORDING: tuple[torch.Generator, list[Draw]] | None = None  # the generator whose draws are listed, and the list


@dataclass(frozen=True)
class Draw:
    """One draw as :func:`_draw` made it: the function, the size and the keywords other than the generator."""

    fn: Callable[..., Tensor]
    size: tuple[int, ...]
    kw: tuple[tuple[str, Any], ...]


class Tape:
    """Noise drawn ahead, taken in turn by code that is handed the tape where it would pass a generator (module
    docstring). ``taken`` counts the draws taken; :meth:`check_used` says whether all were."""

    def __init__(self, tensors: Sequence[Tensor]):
        self.tensors = list(tensors)
        self.taken = 0

    def take(self, size: tuple[int, ...], dtype: torch.dtype | None, device: Any) -> Tensor:
        if self.taken >= len(self.tensors):
            raise RuntimeError(f"a compiled step drew more noise than the eager step it was recorded from "
                               f"({len(self.tensors)} draws): its draws must be the eager step's, in its order")
        t = self.tensors[self.taken]
        want_dtype = dtype or torch.get_default_dtype()
        if tuple(t.shape) != tuple(size) or (t.is_floating_point() and t.dtype != want_dtype) or \
                (device is not None and t.device.type != torch.device(device).type):
            raise RuntimeError(f"draw {self.taken} of a compiled step asks for {tuple(size)} {want_dtype} on "
                               f"{device}, and the recorded step drew {tuple(t.shape)} {t.dtype} on {t.device}: its "
                               f"draws must be the eager step's, in its order")
        self.taken += 1
        return t

    def check_used(self) -> None:
        if self.taken != len(self.tensors):
            raise RuntimeError(f"a compiled step took {self.taken} of the {len(self.tensors)} draws the eager step "
                               f"made: its draws must be the eager step's, in its order")


# the source of a step's random numbers: the generator, or a compiled step's tape of the eager step's draws (which
# hands them out in order, ``Tape.take``)
Noise = Union[torch.Generator, Tape]


@contextlib.contextmanager
def recording(generator: torch.Generator) -> Iterator[list[Draw]]:
    """Within the block, every draw through this module from ``generator`` is listed (the list yielded)."""
    global _RECORDING
    saved, draws = _RECORDING, []  # type: ignore[var-annotated]
    _RECORDING = (generator, draws)
    try:
        yield draws
    finally:
        _RECORDING = saved


def redraw(draws: Sequence[Draw], generator: torch.Generator) -> Tape:
    """The listed draws made again from ``generator``, in their order, as a :class:`Tape`."""
    return Tape([_draw(d.fn, d.size, generator=generator, **dict(d.kw)) for d in draws])


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
    gen = kw.get("generator")
    if isinstance(gen, Tape):
        return gen.take(size, kw.get("dtype"), kw.get("device"))
    if _RECORDING is not None and gen is _RECORDING[0]:
        _RECORDING[1].append(Draw(draw, size, tuple((k, v) for k, v in kw.items() if k != "generator")))
    if _SHARD is None or not size:
        return draw(size, **kw)
    rank, n = _SHARD
    full = draw((size[0] * n, *size[1:]), **kw)
    return full[rank::n]


def randn(*size: Any, generator: Noise | None = None, dtype: torch.dtype | None = None,
          device: Any = None) -> Tensor:
    """``torch.randn`` with the same arguments; sharded inside a :func:`sharded` block."""
    return _draw(torch.randn, _size(size), generator=generator, dtype=dtype, device=device)


def rand(*size: Any, generator: Noise | None = None, dtype: torch.dtype | None = None,
         device: Any = None) -> Tensor:
    """``torch.rand`` with the same arguments; sharded inside a :func:`sharded` block."""
    return _draw(torch.rand, _size(size), generator=generator, dtype=dtype, device=device)


def randint(low: int, high: int, size: Sequence[int], *, generator: Noise | None = None,
            device: Any = None) -> Tensor:
    """``torch.randint(low, high, size)``; sharded inside a :func:`sharded` block."""
    return _draw(lambda s, **kw: torch.randint(low, high, s, **kw), tuple(int(s) for s in size),
                 generator=generator, device=device)


__all__ = ["STREAMS", "Draw", "Noise", "Tape", "rand", "randint", "randn", "recording", "redraw", "sharded", "stream_seed"]
