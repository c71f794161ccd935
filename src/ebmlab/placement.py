"""Where and how a run's steps run, decided once: :class:`Placement`.

One object answers, before anything is written, every question the loop used to answer as it went: the device
(one rule for ``auto``, used by training, by ``ebmlab.api.load_run`` and by the process group's back-end), the
processes of a data-parallel run and this one's rank, the CPU threads, whether the training split is held on the
device, the precision, channels-last memory, whether host batches are pinned, and whether steps are replayed from
captured graphs (``ebmlab.graphs``; the method's own word on it is added by :meth:`Placement.for_method` once it is
built). The run record (``run.json``) writes :meth:`Placement.record`; the loop reads the fields and asks nothing
else. These are the run options a resumed run may change (:data:`RESUMABLE`): where and how long a run runs, not
what it computes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import Any, ContextManager

import torch
from torch import Tensor

from . import compiled, distributed, graphs
from .config import ResolvedConfig, RunConfig
from .data.base import Dataset
from .errors import EbmlabError
from .methods import Method
from .recipe import Recipe
from .rng import stream_seed

# run options a resumed run may change: how long it runs and where, not what it computes
RESUMABLE = ("steps", "device", "threads", "num_workers", "data_on_device", "graphs", "compile", "eval", "loggers",
             "tensorboard", "keep_best", "keep_checkpoints", "speed_probe")
# data_on_device=auto holds the training split on a CUDA device when it takes at most this fraction of the free memory
AUTO_DATA_FRACTION = 0.25


def device_name(name: str) -> str:
    """The device type of run option ``device``: ``auto`` is CUDA when this machine has it, else the CPU (the one
    rule for ``auto``); ``cuda`` without CUDA is refused."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise EbmlabError("device=cuda was requested but CUDA is not available on this machine; use --device cpu "
                          "or --device auto (device=cpu / device='cpu' in a config or the Python API)")
    return name


def pick_device(name: str, world: distributed.World | None = None) -> torch.device:
    """The device of this process: with several processes on GPUs, the one of its local rank; a CUDA device with its
    index, so that it equals the device of the tensors made on it ("cuda" != "cuda:0")."""
    name = device_name(name)
    if name == "cuda" and world is not None:
        torch.cuda.set_device(world.local_rank)
        return torch.device("cuda", world.local_rank)
    if name == "cuda":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device(name)


def join(rc: RunConfig, size: int) -> distributed.World | None:
    """Join torchrun's process group when launched by it, after a batch the processes cannot share is refused."""
    if size > 1 and rc.batch_size % size:
        raise EbmlabError(f"batch_size={rc.batch_size} is not divisible by the {size} processes; choose a "
                          f"global batch that is a multiple of --nproc_per_node × nodes")
    return distributed.init(device_name(rc.device)) if size > 1 else None


@dataclass(frozen=True)
class Placement:
    """Where and how one process of a run trains (module docstring)."""

    device: torch.device
    threads: int  # torch's CPU threads in this process
    processes: int = 1
    rank: int = 0
    data_on_device: bool = False  # the training split held on the device, batches drawn there
    precision: str = "fp32"  # bf16: autocast around each step
    channels_last: bool = False  # image batches and networks in channels-last memory format
    flush_denormal: bool = False  # CPU: subnormal floats flushed to zero (run option flush_denormal)
    pin: bool = False  # host batches page-locked, so that their copy to the device overlaps the step
    graphs: str | None = None  # the capture back-end (cuda, emulate) or None: eager
    eager_because: str | None = None  # why a run with a capture back-end still runs eagerly (for_method)
    world: distributed.World | None = None
    compile_mode: str = "off"  # run option compile
    steps: int = 0  # the run's steps (compile=auto compiles long runs)
    not_compiled_because: str | None = "off"  # why the steps are not compiled (None: they are; for_method)

    @classmethod
    def resolve(cls, rc: RunConfig, ds: Dataset, world: distributed.World | None = None) -> Placement:
        """The placement of run options ``rc`` for data set ``ds`` in this process (of ``world``, joined by
        :func:`join`); refuses what cannot be placed (CUDA absent, a CPU-time budget on a GPU, graphs=on without
        CUDA, data on the device with loader workers) before anything is written. Sets torch's thread count and,
        on the CPU, whether subnormal floats are flushed to zero (``flush_denormal``; for the whole process: a
        caller of :func:`ebmlab.train` keeps it after the run)."""
        from . import threads as threads_

        threads_.apply(rc.threads, ds.kind)  # the CPUs this process may use; 1 on 2D toys (ebmlab.threads)
        device = pick_device(rc.device, world)
        flush = _set_flush_denormal(device, rc.flush_denormal)
        if rc.max_cpu_seconds and device.type != "cpu":
            raise EbmlabError(f"max_cpu_seconds counts CPU time, which says nothing of the work on the {device.type} "
                              f"device; use max_seconds (wall time) or max_evals there, or device=cpu")
        return cls(device=device, threads=torch.get_num_threads(),
                   processes=world.size if world else 1, rank=world.rank if world else 0,
                   data_on_device=_data_on_device(rc, ds, device), precision=rc.precision,
                   channels_last=rc.channels_last and ds.spec.is_image, flush_denormal=flush, pin=device.type == "cuda",
                   graphs=graphs.backend(rc.graphs, device), world=world, compile_mode=rc.compile, steps=rc.steps)

    @classmethod
    def for_inference(cls, device: str | None, flush_denormal: bool | None = None) -> Placement:
        """Sampling and evaluation of a trained run: the device of ``device`` (cpu, cuda, auto; None: auto) by the
        same rule as training, one process, eager (the threads as the command set them, ``ebmlab.threads``). On the
        CPU, ``flush_denormal`` (the run's option; None: leave the process's mode) sets whether subnormal floats are
        flushed, for the whole process as in training, so that a run evaluates later as its training's final
        evaluation did."""
        dev = pick_device(device or "auto")
        flush = flush_denormal is not None and _set_flush_denormal(dev, flush_denormal)
        return cls(device=dev, threads=torch.get_num_threads(), flush_denormal=flush)

    def for_method(self, method: Method) -> Placement:
        """This placement with the method's word on capture: ``eager_because`` says why its steps cannot be
        replayed here (None: they are, when there is a capture back-end)."""
        why = graphs.blocker(method, self.world) if self.graphs else None
        captured = self.graphs is not None and why is None
        if captured and self.compile_mode == "on":
            raise EbmlabError(f"compile=on and graphs={self.graphs}: a step is either replayed from a captured graph "
                              f"or compiled; use graphs=off to compile, or compile=off")
        not_compiled = "the steps are replayed from captured graphs" if captured and self.compile_mode != "off" \
            else compiled.decide(self.compile_mode, method, self.device, self.processes, self.precision, self.steps)
        return replace(self, eager_because=why, not_compiled_because=not_compiled)

    @property
    def main(self) -> bool:
        """Whether this process writes the run's files and evaluates (rank 0)."""
        return self.rank == 0

    @property
    def compiled(self) -> bool:
        """Whether the steps run through the method's compiled step (``ebmlab.compiled``)."""
        return self.not_compiled_because is None

    @property
    def captured(self) -> bool:
        """Whether the steps are replayed from captured graphs."""
        return self.graphs is not None and self.eager_because is None

    def autocast(self) -> ContextManager[Any]:
        """bf16 autocast around a training step (precision=bf16). bfloat16 keeps float32's exponent range, so no
        gradient scaler is needed; fp16 is not offered because its scaler would have to wrap each of the methods'
        own backward passes, gradient penalties (double backward) included. A captured step keeps no cache of cast
        weights between steps, which its replays could not refresh."""
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16, cache_enabled=not self.captured)
        return contextlib.nullcontext()

    def to_device(self, batch: Tensor) -> Tensor:
        """A batch where the step reads it: on the device (from pinned memory for host batches), channels-last for
        images when the run asks."""
        if batch.device != self.device:
            batch = (batch.pin_memory() if self.pin else batch).to(self.device, non_blocking=True)
        if self.channels_last and batch.dim() == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch

    def describe(self) -> str:
        """The placement in one line, as ``train`` prints it before the first step."""
        steps = ("eager" if self.graphs is None else f"eager ({self.eager_because})" if self.eager_because
                 else "replayed from recorded operations (graphs=emulate: a check of capturability, slower than "
                      "eager)" if self.graphs == "emulate" else f"captured graphs ({self.graphs})")
        if self.compiled:
            steps = (f"compiled where it repays (compile=auto: {compiled.AUTO_PROBE_STEPS} eager steps timed first; "
                     f"torch.compile, {compiled.BACKEND})" if self.compile_mode == "auto" else
                     f"compiled (torch.compile, {compiled.BACKEND}; the first two steps of each kind eager)")
        elif self.compile_mode != "off" and not self.captured:
            steps += f" (not compiled: {self.not_compiled_because})"
        return (f"placement: {self.device}, {self.threads} thread{'s' if self.threads != 1 else ''}, "
                f"{self.processes} process{'es' if self.processes != 1 else ''}, {self.precision}"
                f"{', channels-last' if self.channels_last else ''}"
                f"{', subnormals flushed to zero' if self.flush_denormal else ''}"
                f"{', data on the device' if self.data_on_device else ''}; steps {steps}")

    def record(self) -> dict[str, Any]:
        """The placement as the run record (run.json) states it."""
        return {"device": str(self.device), "threads": self.threads, "processes": self.processes,
                "data_on_device": self.data_on_device, "precision": self.precision,
                "channels_last": self.channels_last, "flush_denormal": self.flush_denormal, "pinned": self.pin,
                **({"graphs": {"backend": self.graphs, **({"eager_because": self.eager_because}
                                                         if self.eager_because else {})}} if self.graphs else {}),
                **({"compile": {"mode": self.compile_mode, **({"eager_because": self.not_compiled_because}
                                                             if self.not_compiled_because else {})}}
                   if self.compile_mode != "off" else {})}


def build_method(cfg: ResolvedConfig, device: torch.device | None = None,
                 world: distributed.World | None = None) -> Method:
    """Construct the method with parameters initialised from the run seed (without touching global RNG state);
    with several processes, wired to average gradients over them (``ebmlab.parallel``)."""
    cls, ds = cfg.method_class, cfg.dataset
    device = device or pick_device(cfg.run.device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(cfg.run.seed, "init"))
        gen = torch.Generator(device=device).manual_seed(stream_seed(cfg.run.seed, "method"))
        try:
            method = cls(cfg.method_config, spec=ds.spec, device=device, generator=gen)
            method.attach_data(ds)
        except ValueError as exc:  # an architecture that does not fit the data (nets.build says which)
            raise EbmlabError(f"{cfg.method} on {cfg.data}: {exc}") from None
        except EbmlabError:
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin's constructor: its failure named, not a traceback
            from .methods import SOURCES

            source = SOURCES.get(cfg.method, "ebmlab")
            if source == "ebmlab":
                raise
            raise EbmlabError(f"method {cfg.method!r} of {source} could not be built on {cfg.data}: its constructor "
                              f"raised {type(exc).__name__}: {exc}") from None
    if cfg.run.channels_last and ds.spec.is_image:
        for m in {**method.networks, **method.frozen}.values():
            m.to(memory_format=torch.channels_last)
    if world is not None:
        distributed.attach(method)  # every process starts from rank 0's parameters
    method.recipe = Recipe(method, cfg.run, world)  # its average and clip run at each optimizer_step
    return method


def _set_flush_denormal(device: torch.device, wanted: bool) -> bool:
    """On the CPU, set whether subnormal floats are flushed to zero, either way (a run after one that flushed gets
    its own setting), for the whole process; whether they now are (``torch.set_flush_denormal`` is False where the
    CPU cannot flush). Elsewhere nothing is set: False."""
    return device.type == "cpu" and torch.set_flush_denormal(wanted) and wanted


def _data_on_device(rc: RunConfig, ds: Dataset, device: torch.device) -> bool:
    """Whether the training split is held on the training device (run option ``data_on_device``)."""
    if rc.data_on_device == "on":
        if rc.num_workers > 0:
            raise EbmlabError("data_on_device=on draws the batches on the device, which DataLoader workers cannot "
                              "share: set num_workers=0, or data_on_device=off to keep the workers")
        return True
    if rc.data_on_device == "off" or device.type != "cuda" or rc.num_workers > 0:
        return False  # auto: on a CPU the arrays are in memory already
    free, _ = torch.cuda.mem_get_info(device)
    return ds.device_bytes() <= AUTO_DATA_FRACTION * free


__all__ = ["AUTO_DATA_FRACTION", "Placement", "RESUMABLE", "build_method", "device_name", "join", "pick_device"]
