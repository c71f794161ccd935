"""Data-parallel training on ``torch.distributed``, launched by ``torchrun`` (gloo on CPU, NCCL on GPU).

``torchrun --nproc_per_node N -m ebmlab train ...`` runs N copies of the ordinary training loop; the trainer sees
``WORLD_SIZE`` > 1 in the environment and calls :func:`init`. What changes against one process:

- **Gradients are averaged by one all-reduce per optimizer step**: ``methods.base.optimizer_step`` calls the
  run's recipe, which calls :func:`average` between ``backward`` and ``step``; networks are not wrapped in
  ``DistributedDataParallel``. Reason: DDP averages
  inside ``backward`` through hooks that assume one forward → one backward per module and iteration. The methods
  here run several forwards of a network before one backward, backward passes whose gradients are discarded (the
  frozen player of an alternating game), double backward for gradient penalties (BiB, VGAN, KALE), and LBT's
  look-ahead, which takes parameter gradients with ``torch.autograd.grad`` and never calls ``backward`` or
  ``optimizer.step`` for its estimator. An average taken at the moment an optimizer steps is correct for every
  one of these by construction, and it runs before the recipe's gradient clipping (so the clip sees the global
  gradient, as in one process). LBT's unrolled updates average their gradients with a differentiable all-reduce
  (:func:`average_gradients`), so the look-ahead is the global-batch look-ahead.
- **Data**: every process computes the same global batch of the step and keeps rows ``rank, rank + world, …``
  (``data.batches``); the per-process batch is ``batch_size / world``.
- **Noise**: every draw made inside a training step goes through ``ebmlab.rng``; :func:`training_step` shards
  those draws over the processes (``rng.sharded``): each process draws the *global* tensor from the method's
  generator, which has the same state on every process, and keeps the same rows as of the data. Each process thus
  has its own noise, derived from the run seed, disjoint from the others', and the union over processes is exactly
  the noise one process would draw for the global batch. Together with the
  averaged gradients this makes a run without batch-coupled layers equal, to float rounding, to a one-process run
  with the same global batch (tests/test_distributed.py: GAN, VAE, BiB (i)+(iii), LBT). The cost is drawing world × more random numbers, small beside the networks. Rule
  for code that runs inside a step: the first dimension of every draw is per example.
- **Batch-coupled estimators** are computed by each process over its own rows, as BatchNorm is (below): KALE's
  base loss (a log-mean-exp over the generator batch) and VGAN's batch entropy surrogate. Their gradients are
  averages of per-process estimates, not the global-batch estimate, so those methods match a one-process run
  only in distribution.
- **BatchNorm**: ``SyncBatchNorm`` does not run on CPU, so batch statistics are each process's own (over
  ``batch_size / world`` rows); the running statistics are broadcast from rank 0 after every step (what DDP does
  with ``broadcast_buffers``), so every process evaluates with the same network and checkpoints are rank 0's.
- **State outside the networks** that a method keeps per process (VGAN-VCD's chain pool) is rank-local; the
  checkpoint holds rank 0's, which every process loads on resume.
- **Writes** (checkpoints, metrics, TensorBoard, plots, run records, summary) and evaluation happen on rank 0
  only; the logged training metrics are averaged over the processes at log steps.

Multi-node runs use torchrun's rendezvous unchanged; the run directory must be on a file system every node sees
(every process reads the checkpoint when resuming).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor

from . import rng


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int
    owns_group: bool  # the process group was created here (and is destroyed at the end of training)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_STEP: World | None = None  # the world of the training step being run (None: one process, or outside a step)


def world_size_from_env() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def init(device: str) -> World | None:
    """Join the process group torchrun set up in the environment (None when this is the only process); ``device``
    is the run's device type as ``ebmlab.placement.device_name`` resolved it (cuda: NCCL, else gloo)."""
    import torch.distributed as dist

    if world_size_from_env() <= 1 and not dist.is_initialized():
        return None
    owns = not dist.is_initialized()
    if owns:
        # Import before the group exists: ``torch.distributed.nn.functional`` binds ``group.WORLD`` as its
        # functions' default argument when first imported (as ``torch._dynamo`` does when the first optimizer is
        # built, and LBT's differentiable all-reduce below), which would hold the group for the process's life.
        # Bound now, the default is None (the current group at call time) and ``finish`` frees the group, joining
        # gloo's worker threads; held, they outlive ``destroy_process_group``, and one that releases a collective's
        # tensor while the interpreter finalises aborts the process ("terminate called without an active
        # exception", SIGABRT after a finished run: 4 runs in 291 under load, benchmarks/distributed/results.md).
        import torch.distributed.nn.functional  # noqa: F401

        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    if dist.get_world_size() <= 1:
        return None
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), owns)


def finish(world: World | None) -> None:
    if world is not None and world.owns_group:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


@contextlib.contextmanager
def training_step(world: World | None) -> Iterator[None]:
    """Within the block, noise drawn through ``ebmlab.rng`` is sharded over the processes of ``world``, and the
    collectives below act over them."""
    global _STEP
    saved, _STEP = _STEP, world
    try:
        if world is None:
            yield
        else:
            with rng.sharded(world.rank, world.size):
                yield
    finally:
        _STEP = saved


# --- collectives used inside a step ------------------------------------------------------------------------------
def average_gradients(grads: Sequence[Tensor | None], *, differentiable: bool = False) -> list[Tensor | None]:
    """The mean over processes of parameter gradients taken with ``torch.autograd.grad`` (identity in one
    process). ``differentiable`` keeps the graph through the all-reduce (LBT's look-ahead differentiates it)."""
    w = _STEP
    if w is None:
        return list(grads)
    import torch.distributed as dist

    out: list[Tensor | None] = []
    for g in grads:
        if g is None:
            out.append(None)
        elif differentiable:
            import torch.distributed.nn.functional as dnn

            out.append(dnn.all_reduce(g) / w.size)
        else:
            g = g.detach().clone()
            dist.all_reduce(g)
            out.append(g / w.size)
    return out


def gather(t: Tensor) -> Tensor:
    """All processes' rows of ``t`` stacked in the order of one process's global draw (identity in one process).
    For the few statistics a method takes over a whole sample outside the gradient (KALE's initial log Z)."""
    w = _STEP
    if w is None:
        return t
    import torch.distributed as dist

    parts = [torch.empty_like(t) for _ in range(w.size)]
    dist.all_gather(parts, t.detach().contiguous())
    stacked = torch.stack(parts, 1)  # [n_local, world, ...]: global row i·world + r is process r's row i
    return stacked.reshape(-1, *t.shape[1:])


# --- wiring a method --------------------------------------------------------------------------------------------
def attach(method: Any) -> None:
    """Make every process start from rank 0's parameters (gradients are averaged by :func:`average`, which the
    run's recipe calls from ``methods.base.optimizer_step``)."""
    import torch.distributed as dist

    with torch.no_grad():
        for m in {**method.networks, **method.frozen}.values():
            for t in [*m.parameters(), *m.buffers()]:
                dist.broadcast(t.data, 0)


def average(opt: torch.optim.Optimizer, world: World | None) -> None:
    """Replace the gradients ``opt`` is about to apply by their mean over the processes of ``world`` (one
    all-reduce of all of them flattened); nothing with one process."""
    if world is None:
        return
    import torch.distributed as dist

    grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat.div_(world.size)
    i = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[i:i + n].view_as(g))
        i += n


def broadcast_buffers(method: Any, world: World) -> None:
    """Rank 0's BatchNorm running statistics (and any other buffer) to every process."""
    import torch.distributed as dist

    for b in (b for m in method.networks.values() for b in m.buffers()):
        dist.broadcast(b, 0)


def reduce_metrics(values: dict[str, Any], world: World | None) -> dict[str, float]:
    """Training metrics as floats, read from the device in one transfer: with several processes, their mean over
    the processes (one all-reduce)."""
    keys = list(values)
    if not keys:
        return {}
    dev = next((v.device for v in values.values() if isinstance(v, Tensor)), torch.device("cpu"))
    t = torch.stack([torch.as_tensor(values[k], device=dev).detach().to(torch.float64).reshape(()) for k in keys])
    if world is not None:
        import torch.distributed as dist

        dist.all_reduce(t)
        t /= world.size
    return dict(zip(keys, t.tolist()))


def rank0_choice(index: int, world: World | None, device: torch.device) -> int:
    """Rank 0's ``index`` on every process (one broadcast of one integer): for a decision each process could make
    differently, such as whether a budget in seconds is used up — clocks differ between processes, and rank 0 alone
    leaves its periodic evaluations out of them."""
    if world is None:
        return index
    import torch.distributed as dist

    t = torch.tensor([index], device=device)
    dist.broadcast(t, 0)
    return int(t.item())


def barrier(world: World | None) -> None:
    if world is not None:
        import torch.distributed as dist

        dist.barrier()


__all__ = ["attach", "average", "average_gradients", "barrier", "broadcast_buffers", "finish", "gather", "init",
           "rank0_choice", "reduce_metrics", "training_step", "World", "world_size_from_env"]
