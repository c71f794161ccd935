"""Whole training steps replayed from captured graphs (run option ``graphs``).

On a GPU the methods' steps are bound by kernel launches and Python, not arithmetic: a GAN step of a DCGAN pair at
batch 64 launches ~270 kernels that keep an H100 busy for 1.4 ms of a 9 ms step. A CUDA graph records every kernel
of one step once and replays them with one launch. :class:`StepGraphs` does that for the trainer, around
everything the trainer calls a step: the method's ``train_step`` (its losses, backward passes, gradient averaging
and clipping, optimizer steps) and the recipe's moving average (``Recipe.after_step``).

How a run is captured:

- **Kinds of step.** A method declares what its next step will be (``Method.step_kind``): steps of one kind run the
  same operations on tensors of the same shapes with the same Python numbers (KALE's bursts of energy updates are
  another kind than its usual steps; a filling reservoir gives each step its own kind). One graph is captured per
  kind (and batch shape), into its own memory pool. A method whose steps depend on Python numbers that change every
  step says why (``Method.capture_blocker``); its steps run eagerly, and the run says so once.
- **Warm-up.** The first ``WARMUP`` steps of each kind in a session run eagerly (on a side stream on CUDA): they
  create the optimizers' state and the libraries' workspaces, which a capture must not allocate.
- **Static memory.** Each graph reads its batch from a static tensor the batch is copied into, and its metrics
  are the tensors the captured step returned, overwritten by each replay (the trainer reads them at log steps,
  right after the step).
- **Python state.** A replay runs the recorded kernels and no Python: bookkeeping a method does in Python (KALE's
  count of generator steps) is redone by ``Method.replayed``; numbers of a schedule that a step reads are written
  into device tensors by ``Method.prepare_step`` before every step (EBGAN's decaying margin); the network
  evaluations the budget counts with Python hooks are added per replay as counted in the capture. State a step
  rebinds to a new tensor would not be seen by later replays, so methods update such state in place (VGAN-VCD's
  reservoir once full, LBT's estimator moments and step count).
- **Optimizers.** On CUDA every optimizer gets ``capturable`` set (torch captures no optimizer step without it;
  the methods' fused Adam keeps its step counts on the device anyway); an optimizer without the option (other
  than SGD) blocks capture. A learning-rate schedule reaches the captured step through tensor learning rates that
  ``Recipe.before_step`` fills before each replay; checkpoints store them as numbers
  (:func:`portable_optimizer_state`), so a run is resumed with or without graphs alike. (A float32 learning rate
  differs from the Python number by its rounding: with a schedule, replayed weights match eager ones to a few
  float32 ulps, exactly without one.)
- **Random numbers.** The method's own generator is registered with each graph (the default generator always is):
  each replay draws fresh numbers from the generator's stream, so the generator's saved state continues the
  stream on resume. As the CPU cannot check this, the first ``CHECKED_REPLAYS`` replays of each kind that draws
  must move the generator.
- **Failures.** Under ``graphs=auto`` a capture that fails, or a failed check, ends replaying for the session (the
  method's Python state, random-number states and budget counts are restored after a failed capture, which runs
  nothing on the device) and the run says why; ``graphs=on`` makes them errors.
- **Not captured:** data-parallel runs (their gradient average is a collective between processes; eager there).
  Every method and setting is capturable (KALE's flow base keeps its coupling layers' indices as buffers,
  ``nets.flow``).

``graphs=emulate`` runs the same machinery on any device without CUDA: the capture executes the step once while
recording every operation the dispatcher runs (forward, backward, optimizer), and a replay re-executes the
recorded operations on the recorded tensors, writing each result into the memory of the capture's result — no
Python of the method runs, as in a CUDA replay, and a read of a tensor's value on the host during the capture, or a
result whose shape depends on tensor values, is refused, as CUDA refuses them. Steps replayed so must equal eager steps exactly; ``tests/test_graphs.py`` checks every
method that declares itself capturable that way on the CPU. It is slower than eager and meant for that check.
"""

from __future__ import annotations

import contextlib
import copy
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from . import distributed
from .errors import EbmlabError
from .syncs import CUDA_STATUS_CHECKS, HOST_READS

if TYPE_CHECKING:
    from .methods.base import Method

WARMUP = 2  # eager steps of each kind before its capture (optimizer state, cuBLAS/cuDNN workspaces)

StepFn = Callable[[Tensor, int], dict[str, Any]]


def backend(mode: str, device: torch.device) -> str | None:
    """The capture back-end of run option ``graphs`` on ``device``: "cuda", "emulate", or None (eager)."""
    if mode == "off":
        return None
    if mode == "emulate":
        return "emulate"
    if device.type == "cuda":
        return "cuda"
    if mode == "on":
        raise EbmlabError(f"graphs=on captures CUDA graphs, and this run is on the {device.type}; use graphs=auto "
                          f"(captures on CUDA, eager elsewhere), or graphs=emulate to check on the CPU that a "
                          f"method's step can be replayed")
    return None


def blocker(method: Method, world: Any = None) -> str | None:
    """Why ``method``'s steps cannot be captured in this run, or None."""
    if method.device.type == "cuda" and not hasattr(torch.cuda.CUDAGraph, "register_generator_state"):
        return (f"this PyTorch ({torch.__version__}) cannot register a method's own random-number generator with a "
                f"CUDA graph (CUDAGraph.register_generator_state); a newer one can")
    if world is not None and world.size > 1:
        return "data-parallel runs average gradients with collectives between processes, which are not captured"
    why = method.capture_blocker()
    if why:
        return why
    for name, opt in method.optimizers.items():
        if isinstance(opt, (torch.optim.Adam, torch.optim.AdamW)) and opt.defaults.get("fused"):
            continue
        if isinstance(opt, torch.optim.SGD) or "capturable" in opt.defaults:
            continue
        return f"optimizer {name!r} ({type(opt).__name__}) cannot run inside a captured graph"
    return None


def prepare(method: Method, backend_name: str, tensor_lrs: bool) -> None:
    """Optimizers made capturable on CUDA (torch refuses to capture an optimizer step unless ``capturable`` is set,
    fused Adam included) with their step counts on the parameters' device, and, for a learning-rate schedule,
    tensor learning rates on that device that the recipe fills in place."""
    for opt in method.optimizers.values():
        for group in opt.param_groups:
            device = group["params"][0].device
            if backend_name == "cuda" and "capturable" in group:
                group["capturable"] = True
                for p in group["params"]:
                    st = opt.state.get(p, {})
                    if isinstance(st.get("step"), Tensor) and st["step"].device != device:
                        st["step"] = st["step"].to(device=device, dtype=torch.float32)
            if tensor_lrs and not isinstance(group["lr"], Tensor):
                group["lr"] = torch.tensor(float(group["lr"]), dtype=torch.float32, device=device)
        if backend_name == "cuda":
            # torch warns once when a capturable optimizer steps outside a capture; the warm-up steps and the steps
            # of uncaptured kinds do so by design here
            opt._warned_capturable_if_run_uncaptured = True  # type: ignore[attr-defined]


def portable_optimizer_state(state: dict[str, Any]) -> dict[str, Any]:
    """An optimizer's ``state_dict`` as an eager run writes it: learning rates as numbers, ``capturable`` off and
    step counts on the CPU, so that a checkpoint loads alike into a run with or without graphs (and on any device)."""
    groups = []
    for g in state.get("param_groups", []):
        g = dict(g)
        if isinstance(g.get("lr"), Tensor):
            g["lr"] = float(g["lr"])
        if g.get("capturable"):
            g["capturable"] = False
        groups.append(g)
    per = {}
    for k, st in state.get("state", {}).items():
        st = dict(st)
        if isinstance(st.get("step"), Tensor) and not _is_fused(state) and st["step"].device.type != "cpu":
            st["step"] = st["step"].cpu()
        per[k] = st
    return {**state, "param_groups": groups, "state": per}


def portable_method_state(state: dict[str, Any]) -> dict[str, Any]:
    """A method's ``state_dict`` with its optimizers' states made portable (:func:`portable_optimizer_state`)."""
    return {**state, "optimizers": {k: portable_optimizer_state(v) for k, v in state["optimizers"].items()}}


def _is_fused(state: dict[str, Any]) -> bool:
    return any(g.get("fused") for g in state.get("param_groups", []))


# --- the CPU emulation of a captured graph --------------------------------------------------------------------
class HostReadInCapture(EbmlabError):
    pass


class _Record(TorchDispatchMode):
    """Records every operation the dispatcher runs (forward, backward, optimizer) with its arguments and results."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[Any, Any, Any, Any]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.ops.append((func, args, kwargs, out))
        return out


# operations whose result's shape depends on tensor values: CUDA must read them on the host to allocate the result
DATA_DEPENDENT_SHAPES = frozenset({"masked_select", "unique", "unique_consecutive", "argwhere"})


def _from_host_data(name: str, args: tuple) -> bool:
    """A tensor made from Python or NumPy data (``torch.tensor(0.5, device=...)``, ``as_tensor`` of a number,
    ``from_numpy``): on CUDA its values are copied from host memory, a copy that waits for the stream, which a
    capture refuses ("operation not permitted when stream is capturing")."""
    if name in ("tensor", "from_numpy") or name.startswith("lift_fresh"):
        return True
    return name == "as_tensor" and bool(args) and not isinstance(args[0], Tensor)


class _NoHostReads(torch.overrides.TorchFunctionMode):
    """Refuses what a CUDA capture refuses: reading a tensor's value on the host (``ebmlab.syncs.HOST_READS``, and
    ``CUDA_STATUS_CHECKS``, the solvers that read their status so), results shaped by tensor values
    (``DATA_DEPENDENT_SHAPES``, indexing by a boolean mask), and tensors made from host data (``_from_host_data``: a
    host → device copy on CUDA)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        bool_index = (name == "__getitem__" and len(args) > 1
                      and any(isinstance(i, Tensor) and i.dtype == torch.bool
                              for i in (args[1] if isinstance(args[1], tuple) else (args[1],))))
        host_data = _from_host_data(name, args)
        refused = name in HOST_READS or name in CUDA_STATUS_CHECKS or name in DATA_DEPENDENT_SHAPES
        if refused or bool_index or host_data:
            import sys

            frame = sys._getframe(1)
            what = "indexes by a boolean mask" if bool_index else (
                f"calls {name}, whose result's shape depends on tensor values" if name in DATA_DEPENDENT_SHAPES
                else "calls linear algebra whose CUDA implementation reads its status on the host"
                if name in CUDA_STATUS_CHECKS
                else "makes a tensor from host data (on CUDA a host → device copy that waits for the stream; use a "
                     "Python number or torch.full(..., device=...))" if host_data
                else "reads a tensor's value on the host")
            raise HostReadInCapture(f"the step {what} ({name} at "
                                    f"{frame.f_code.co_filename.split('site-packages/')[-1]}:{frame.f_lineno}), "
                                    f"which a captured graph cannot do; keep the value on the device (torch.where, "
                                    f"masked arithmetic), or declare the step uncapturable (Method.capture_blocker)")
        return func(*args, **(kwargs or {}))


class _EmulatedGraph:
    """The CPU stand-in for ``torch.cuda.CUDAGraph`` (see the module docstring)."""

    def __init__(self) -> None:
        self.ops: list[tuple[Any, Any, Any, Any]] = []
        self._pending_first = False

    @contextlib.contextmanager
    def capture(self):
        rec = _Record()
        with _NoHostReads(), rec:
            yield
        self.ops = rec.ops
        self._pending_first = True  # the capture executed the step: the replay that follows it is that step

    def replay(self) -> None:
        if self._pending_first:
            self._pending_first = False
            return
        with torch.no_grad():
            for func, args, kwargs, out in self.ops:
                new = func(*args, **kwargs)
                old_leaves, _ = tree_flatten(out)
                new_leaves, _ = tree_flatten(new)
                for o, n in zip(old_leaves, new_leaves):
                    if (isinstance(o, Tensor) and isinstance(n, Tensor) and o is not n and not o._is_zerotensor()
                            and not _same_memory(o, n)):  # (autograd's immutable zeros stay zeros)
                        o.copy_(n)  # the result lands where the captured step's result lives, as in a CUDA graph


def _same_memory(a: Tensor, b: Tensor) -> bool:
    """Views (and in-place results) of one tensor: nothing to copy."""
    try:
        return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):
        return False


# --- the trainer's side --------------------------------------------------------------------------------------
class ReplayCheckFailed(EbmlabError):
    pass


@dataclass
class _Graph:
    graph: Any
    static: Tensor
    outputs: dict[str, Any]
    rows: dict[str, int]  # network evaluations (layer rows) one step of this kind adds to the budget
    draws: bool  # an eager step of this kind moved the method's random-number state
    replays: int = 0


CHECKED_REPLAYS = 2  # replays of each kind whose effect on the random-number state is checked (host reads, outside)


def _rng_state(method: Method) -> Tensor | None:
    rng = getattr(method, "rng", None)
    return rng.get_state() if isinstance(rng, torch.Generator) else None


@dataclass
class StepGraphs:
    """Runs the trainer's steps, replaying one captured graph per kind of step (module docstring).

    ``run_step(batch, step)`` is the whole step as the trainer would run it eagerly; ``budget`` (ebmlab.budget) has
    its Python-hook counts added for replayed steps. ``strict``: a failed capture or check is an error (graphs=on,
    emulate); otherwise (graphs=auto) the session goes on eagerly and ``fallback`` says why.

    Two checks guard what the CPU emulation cannot: a capture that fails leaves the method as it was (its own state,
    random-number states and budget counts are restored) before the step runs eagerly; and for the first
    ``CHECKED_REPLAYS`` replays of a kind whose eager steps draw random numbers, the method's generator must have
    moved (a graph that replayed the same noise every step would train on it silently)."""

    method: Method
    backend: str
    run_step: StepFn
    budget: Any = None
    strict: bool = True
    on_fallback: Callable[[str], None] | None = None  # told once why the session stopped replaying (non-strict)
    graphs: dict[tuple, _Graph] = field(default_factory=dict)
    seen: Counter = field(default_factory=Counter)
    draws: dict[tuple, bool] = field(default_factory=dict)
    eager_steps: int = 0
    fallback: str | None = None  # why this session stopped replaying (non-strict only)

    def step(self, batch: Tensor, step: int) -> dict[str, Any]:
        kind = None if self.fallback else self.method.step_kind(step)
        if kind is None:
            self.eager_steps += 1
            return self.run_step(batch, step)
        key = (kind, tuple(batch.shape), batch.dtype)
        g = self.graphs.get(key)
        if g is None:
            if self.seen[key] < WARMUP:
                self.seen[key] += 1
                self.eager_steps += 1
                return self._warmup(key, batch, step)
            captured = self._capture(key, batch, step)
            if captured is None:  # failed, not strict: this step and the rest run eagerly
                self.eager_steps += 1
                return self.run_step(batch, step)
            g = captured
        else:
            before = _rng_state(self.method) if g.draws and g.replays < CHECKED_REPLAYS else None
            g.static.copy_(batch)
            g.graph.replay()
            self.method.replayed(kind)
            if self.budget is not None:
                self.budget.add_rows(g.rows)
            after = _rng_state(self.method)
            if before is not None and after is not None and torch.equal(before, after):
                self._failed(ReplayCheckFailed(
                    f"a replayed {self.method.name} step of kind {kind!r} left its random-number generator where it "
                    f"was, though eager steps of that kind draw from it: the graph would reuse the same noise"))
        g.replays += 1
        return dict(g.outputs)

    @property
    def replayed_steps(self) -> int:
        return sum(g.replays for g in self.graphs.values())

    def summary(self) -> dict[str, Any]:
        """How this session's steps ran, for the run record."""
        return {"replayed_steps": self.replayed_steps, "eager_steps": self.eager_steps,
                "kinds": sorted({k[0] for k in self.graphs}),
                **({"eager_because": self.fallback} if self.fallback else {})}

    def portable_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """A method's ``state_dict`` as a checkpoint stores it: the optimizers as an eager run saves them."""
        return portable_method_state(state)

    def _failed(self, exc: EbmlabError) -> None:
        if self.strict:
            raise exc
        self.fallback = str(exc)
        self.graphs.clear()
        if self.on_fallback is not None:
            self.on_fallback(self.fallback)

    def _warmup(self, key: tuple, batch: Tensor, step: int) -> dict[str, Any]:
        before = _rng_state(self.method)
        if self.backend != "cuda":
            out = self.run_step(batch, step)
        else:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                out = self.run_step(batch, step)
            torch.cuda.current_stream().wait_stream(side)
        after = _rng_state(self.method)
        self.draws[key] = self.draws.get(key, False) or (before is not None and after is not None
                                                          and not torch.equal(before, after))
        return out

    def _capture(self, key: tuple, batch: Tensor, step: int) -> _Graph | None:
        static = batch.clone()
        before = dict(self.budget.rows) if self.budget is not None else {}
        graph: Any
        if self.backend == "cuda":
            graph = torch.cuda.CUDAGraph()
            rng = getattr(self.method, "rng", None)
            if isinstance(rng, torch.Generator) and rng.device.type == "cuda":
                graph.register_generator_state(rng)
            torch.cuda.synchronize()
            saved = (copy.deepcopy(self.method.extra_state()), _rng_state(self.method),
                     torch.cuda.get_rng_state(self.method.device))
            try:
                with torch.cuda.graph(graph):
                    outputs = self.run_step(static, step)
            except RuntimeError as exc:
                first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
                # a capture runs nothing on the device: what the step did in Python is undone, and it runs eagerly
                self.method.load_extra_state(saved[0])
                if saved[1] is not None:
                    self.method.rng.set_state(saved[1])
                torch.cuda.set_rng_state(saved[2], self.method.device)
                if self.budget is not None:
                    self.budget.add_rows({k: before.get(k, 0) - v for k, v in self.budget.rows.items()})
                self._failed(EbmlabError(
                    f"capturing {self.method.name}'s {key[0]!r} step in a CUDA graph failed ({first}); run it with "
                    f"graphs=off, and check it on the CPU with graphs=emulate, which names an operation a capture "
                    f"refuses"))
                return None
        else:
            graph = _EmulatedGraph()
            with graph.capture():
                outputs = self.run_step(static, step)
        rows = ({k: v - before.get(k, 0) for k, v in self.budget.rows.items()} if self.budget is not None else {})
        g = _Graph(graph, static, outputs, rows, self.draws.get(key, False))
        self.graphs[key] = g
        graph.replay()  # the captured step itself (CUDA records without running; the emulation ran it)
        return g


class StepRunner(Protocol):
    """What the trainer calls a step runner — :class:`EagerSteps`, :class:`StepGraphs` (captured CUDA graphs or
    their CPU emulation) and ``compiled.CompiledSteps`` (torch.compile on the CPU) — one type for the three."""

    def step(self, batch: Tensor, step: int) -> dict[str, Any]:
        """One training step (the method's step and the recipe's after-step): its metrics."""
        ...

    def summary(self) -> dict[str, Any]:
        """How this session's steps ran, for the run record ({} when there is nothing to say)."""
        ...

    def portable_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """A method's ``state_dict`` as a checkpoint stores it (the same for eager and compiled steps)."""
        ...


@dataclass
class EagerSteps:
    """The trainer's steps run eagerly, behind the interface of :class:`StepGraphs`."""

    run_step: StepFn

    def step(self, batch: Tensor, step: int) -> dict[str, Any]:
        return self.run_step(batch, step)

    def summary(self) -> dict[str, Any]:
        return {}

    def portable_state(self, state: dict[str, Any]) -> dict[str, Any]:
        return state


def runner(method: Method, placement: Any, budget: Any = None, *, tensor_lrs: bool = False, strict: bool = True,
           on_fallback: Callable[[str], None] | None = None, say: Callable[[str], None] | None = None
           ) -> StepRunner:
    """The step runner of a run placed by ``placement`` (``ebmlab.placement.Placement``): :class:`StepGraphs` when
    its steps are captured, else :class:`EagerSteps`; both run what the trainer calls a step — the method's
    ``train_step`` inside the placement's autocast and the data-parallel step context, then the recipe's
    ``after_step`` (its moving average). ``tensor_lrs``: a learning-rate schedule, read by captured steps from
    tensors; ``strict``, ``on_fallback``: as :class:`StepGraphs`; ``say``: told a compiled step's compile time."""

    def run_step(batch: Tensor, step: int) -> dict[str, Any]:
        with distributed.training_step(placement.world), placement.autocast():
            metrics = method.train_step(batch, step)
        method.recipe.after_step()
        return metrics

    if placement.compiled:
        from .compiled import CompiledSteps

        auto = placement.steps if placement.compile_mode == "auto" else None  # timed eager steps decide
        return CompiledSteps(method, run_step, method.recipe.after_step, budget, say=say, auto_steps=auto)
    if not placement.captured:
        return EagerSteps(run_step)
    prepare(method, placement.graphs, tensor_lrs=tensor_lrs)
    return StepGraphs(method, placement.graphs, run_step, budget, strict=strict, on_fallback=on_fallback)


__all__ = ["backend", "blocker", "EagerSteps", "HostReadInCapture", "portable_method_state",
           "portable_optimizer_state", "prepare", "ReplayCheckFailed", "runner", "StepGraphs", "StepRunner", "WARMUP"]
