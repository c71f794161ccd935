"""Training steps compiled with ``torch.compile`` on the CPU (run option ``compile``).

On a CPU a step of small networks is bound by eager PyTorch's cost per operation, not by its arithmetic: LBT's toy
step runs ~13,900 ATen operations (``benchmarks/lbt/cpu_step_anatomy.md``). A method that offers a compiled step
(``Method.compile_blocker`` returns None; :meth:`Method.compiled_train_step`) writes the arithmetic of its step as one
pure function; :class:`CompiledSteps` compiles it (inductor: fused C++ kernels) and runs the trainer's steps through it.

- **The same numbers.** Draws stay outside the graph: the first two steps of each kind in a session run eagerly,
  the second while the draws it makes from the method's generator are listed (``rng.recording``; the first may
  draw what only a first step draws, such as KALE's initial log-partition estimate); every later step draws that list
  from the same generator and hands it to the compiled step as a tape (``rng.Tape``), so each draw is the eager
  step's. Parameters, optimizer states and checkpoints are the eager step's; the compiled arithmetic differs from
  eager only by float rounding (``tests/test_compiled.py``), and a run may be resumed with or without compile.
- **The cost.** The first compiled call traces and generates code (minutes for LBT from an empty cache, seconds
  from inductor's on-disk cache): the run prints it and records it as ``compile.seconds`` in its session record,
  apart from the steps. ``auto`` times the run's first :data:`AUTO_PROBE_STEPS` steps eagerly and compiles the rest
  only where the estimated saving repays a compile (:class:`AutoProbe`); what it measured and decided is printed and
  recorded (``compile.auto``).
- **Where.** CPU runs of one process in fp32, with a C++ compiler and Python's headers (inductor's code); on CUDA
  the remedy is a captured graph (run option ``graphs``). ``on`` refuses anything else with the reason before the run
  starts; ``auto`` runs eagerly there and says why once.
"""

from __future__ import annotations

import contextlib
import functools
import time
import types
from typing import Any, Callable

import torch
from torch import Tensor

from . import rng
from .errors import EbmlabError

BACKEND = "inductor"  # torch.compile's back-end (the tests trace with aot_eager, which generates no code)
# compile=auto: the eager steps timed before deciding (the first, which warms caches, untimed); the compile's cost
# it assumes, LBT's cold compile (65-74 s on a 2-core CPU; a warm cache takes 10-12 s); the speed-up of a compiled
# step it assumes (LBT: eager 0.50-0.85x the released TF code, compiled 1.16-1.77x, i.e. ~2x; benchmarks/peers)
AUTO_PROBE_STEPS = 20
AUTO_COMPILE_SECONDS = AUTO_DEFAULT_COMPILE = 70.0  # a method's own measured cost (Method.compile_estimate) is used
AUTO_SPEEDUP = 2.0  # where it has one; setting AUTO_COMPILE_SECONDS (tests) overrides every method's
# conv networks: a step's convolutions dominate and a compiled step ran 0.92-1.14x the eager one (GAN and VGAN at the
# stacked-Fashion presets, benchmarks/compile/results.md), so auto never expects a compile to repay itself there
AUTO_CONV_SPEEDUP = 1.0


def compiler_available(device: torch.device) -> bool:
    """Whether ``torch.compile`` can generate code for ``device`` here: for the CPU, a C++ compiler (inductor's
    default ``g++``, or ``$CXX``) and Python's headers, which its generated code includes; Triton for CUDA."""
    import importlib.util
    import os
    import shutil
    import sysconfig
    from pathlib import Path

    if device.type == "cuda":
        return importlib.util.find_spec("triton") is not None
    headers = Path(sysconfig.get_paths()["include"], "Python.h").is_file()
    return device.type == "cpu" and headers and any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "clang++"))


def os_error_in(exc: BaseException) -> OSError | None:
    """The OSError behind a compile's failure (a cache directory that cannot be written, a full disk), found by
    walking the exception's causes (dynamo wraps a back-end's error in ``BackendCompilerFailed.inner_exception``);
    None when the failure has another cause (an energy or step that cannot be traced)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError):
            return e
        todo += [getattr(e, "inner_exception", None), e.__cause__, e.__context__]
    return None


def cache_message(err: OSError) -> str:
    """One line for a compile that failed on the file system: the cause (errno), the path, the way out."""
    import errno
    import os

    why = os.strerror(err.errno) if err.errno else str(err)
    where = f" ({err.filename})" if err.filename else ""
    hint = "free some space" if err.errno == errno.ENOSPC else "make it writable"
    return (f"the compile could not write its cache: {why}{where}; {hint}, or set TORCHINDUCTOR_CACHE_DIR to a "
            f"writable directory with free space, or run without compiling")


def own_code(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` (a function, bound method or ``functools.partial``) with a copy of its code object of its own.

    ``torch.compile`` keeps its compiled graphs, and counts recompiles against its limit (8), per code object: the
    same function compiled for a new sampler run or a new method instance (another energy, other networks) fails
    its guards and recompiles, and the ninth in a process would be refused. A copy per run or instance compiles
    apart, and its graphs go with it. A ``functools.partial`` becomes a plain function of its own code calling the
    partial's function: ``torch.compile`` wraps a partial in one frame (``external_utils.inner``) whose code every
    compiled partial of the process shares, so the ninth partial compiled hit the limit however its function was
    copied."""
    if isinstance(fn, functools.partial):
        func, args, keywords = own_code(fn.func), fn.args, fn.keywords

        def bound(*more: Any, **kw: Any) -> Any:
            return func(*args, *more, **{**keywords, **kw})

        return own_code(bound)
    if isinstance(fn, types.MethodType):
        return types.MethodType(own_code(fn.__func__), fn.__self__)
    assert isinstance(fn, types.FunctionType), f"own_code takes a Python function, got {type(fn).__name__}"
    copy = types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    copy.__kwdefaults__, copy.__qualname__ = fn.__kwdefaults__, fn.__qualname__
    return copy


def blocker(method: Any, device: torch.device, processes: int, precision: str) -> str | None:
    """Why ``method``'s steps are not compiled in this run, or None."""
    if device.type != "cpu":
        return f"compiled steps are the CPU path; on {device.type} steps are replayed from captured graphs (graphs)"
    if processes > 1:
        return "a data-parallel step averages gradients between processes inside its step, which is not compiled"
    if precision != "fp32":
        return f"compiled steps run in fp32 (precision={precision})"
    if BACKEND == "inductor" and not compiler_available(device):
        return "no C++ compiler (g++ or $CXX) with Python's headers was found for inductor's code"
    return method.compile_blocker()


def decide(mode: str, method: Any, device: torch.device, processes: int, precision: str, steps: int) -> str | None:
    """None when run option ``compile`` = ``mode`` compiles this run's steps, else why not (``off``: "off").
    ``on`` refuses a run it cannot compile (EbmlabError, before anything is written)."""
    if mode == "off":
        return "off"
    why = blocker(method, device, processes, precision)
    if why and mode == "on":
        raise EbmlabError(f"compile=on: {method.name}'s steps cannot be compiled here: {why}; use compile=auto "
                          f"(compiles where it can) or compile=off")
    if why is None and mode == "auto" and steps <= AUTO_PROBE_STEPS:
        why = f"compile=auto times {AUTO_PROBE_STEPS} eager steps before it decides; the run has {steps}"
    return why


class AutoProbe:
    """compile=auto's decision: the session's first steps run eagerly and are timed; after AUTO_PROBE_STEPS of them
    the eager time of the steps left is estimated, and the rest is compiled when what compiling saves of it
    (1 − 1/AUTO_SPEEDUP) exceeds a compile's cost (AUTO_COMPILE_SECONDS). ``compiles``: None while timing, then the
    decision; ``note``: its numbers, said and recorded."""

    def __init__(self, total: int, speedup: float = AUTO_SPEEDUP, compile_seconds: float = AUTO_COMPILE_SECONDS):
        self.total, self.seen, self.t0 = total, 0, 0.0
        self.speedup, self.compile_seconds = speedup, compile_seconds  # the method's measured ones, where it has them
        self.compiles: bool | None = None
        self.note: str | None = None

    def tick(self, step: int) -> None:
        """Called before each eager step of the probe (``step``: the run's step about to run)."""
        if self.seen == 1:
            self.t0 = time.perf_counter()
        if self.seen == AUTO_PROBE_STEPS:
            per_step = (time.perf_counter() - self.t0) / (AUTO_PROBE_STEPS - 1)
            left = self.total - step + 1  # the step about to run (the trainer counts from 1) and those after it
            saved = left * per_step * max(0.0, 1 - 1 / self.speedup)
            self.compiles = saved > self.compile_seconds
            self.note = (f"compile=auto: {left} steps left at {per_step * 1e3:.3g} ms an eager step; compiling "
                         f"(a compiled step {self.speedup:.2f}× the eager one) would save about {saved:.3g} s against "
                         f"a compile of about {self.compile_seconds:.0f} s: "
                         + ("compiled from here" if self.compiles else "the run goes on eagerly"))
        self.seen += 1


def writes_buffers(module: torch.nn.Module) -> bool:
    """Whether a forward pass of ``module`` updates buffers in place (BatchNorm's running statistics, spectral
    norm's power-iteration vectors). The compiled steps built on :func:`grad_carrying` carry both, and LBT's carries
    its generator's; LBT refuses an estimator that writes them (its look-ahead unrolls copies of the estimator's)."""
    from torch.nn.utils.parametrizations import _SpectralNorm

    for mod in module.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm) and mod.track_running_stats:
            return True
        if isinstance(mod, _SpectralNorm):
            return True
    return False


def _carrying(nets: tuple[torch.nn.Module, ...], buffers: list[dict[str, Tensor]], fn: Callable[[Any], Any],
              arg: Any) -> Any:
    """``fn(arg)`` with each of ``nets`` holding the tensors of ``buffers`` as its buffers (nested reparametrisations,
    not an ``ExitStack``, which dynamo does not trace)."""
    from torch.nn.utils.stateless import _reparametrize_module

    if not nets:
        return fn(arg)
    if not buffers[0]:
        return _carrying(nets[1:], buffers[1:], fn, arg)
    with _reparametrize_module(nets[0], buffers[0]):
        return _carrying(nets[1:], buffers[1:], fn, arg)


def grad_carrying(loss: Callable[[dict[str, Tensor]], tuple[Tensor, Any]], params: dict[str, Tensor],
                  nets: tuple[torch.nn.Module, ...] = ()) -> tuple[dict[str, Tensor], tuple[Tensor, Any]]:
    """``torch.func.grad_and_value(loss, has_aux=True)(params)`` with the buffers of ``nets`` carried: they enter
    the transform as inputs (not differentiated), so that a forward pass in training mode updates them in place —
    BatchNorm's running statistics, the ladder's population statistics —, into the nets' own tensors, as the eager
    step does (``torch.func`` refuses an in-place write to a tensor it did not receive; under ``torch.compile`` the
    write is an input mutation, copied back after the graph)."""
    buffers = [dict(net.named_buffers()) for net in nets]
    if not any(buffers):
        return torch.func.grad_and_value(loss, has_aux=True)(params)

    def f(q: dict[str, Tensor], b: list[dict[str, Tensor]]) -> tuple[Tensor, Any]:
        return _carrying(nets, b, loss, q)

    return torch.func.grad_and_value(f, has_aux=True)(params, buffers)


class CompiledSteps:
    """The trainer's steps through the method's compiled step (module docstring), behind the interface of
    ``graphs.EagerSteps``. ``run_step`` is the eager step; ``wrap`` the context of a step (the data-parallel and
    autocast contexts of the runner) and ``after`` what follows one (the recipe's moving average)."""

    def __init__(self, method: Any, run_step: Callable[[Tensor, int], dict[str, Any]],
                 after: Callable[[], None], budget: Any = None, backend: str | None = None,
                 say: Callable[[str], None] | None = None, auto_steps: int | None = None):
        self.method, self.run_step, self.after, self.budget = method, run_step, after, budget
        self.backend = backend or BACKEND
        self.draws: dict[tuple[Any, ...], list[rng.Draw]] = {}
        self.seen: dict[tuple[Any, ...], int] = {}  # eager steps of each kind so far (the first two are eager)
        self.rows: dict[tuple[Any, ...], dict[str, int]] = {}  # network evaluations of a step of the kind
        self.compile_seconds: float | None = None
        self.say = say  # told the compile time once (the trainer's progress output), or None
        speedup, cold = getattr(method, "compile_estimate", (AUTO_SPEEDUP, AUTO_COMPILE_SECONDS))
        if any(isinstance(m, torch.nn.modules.conv._ConvNd) for net in getattr(method, "networks", {}).values()
               for m in net.modules()):
            speedup = AUTO_CONV_SPEEDUP  # convolution-bound steps: the 2D presets' estimate does not carry over
        # compile=auto: timed eager steps first, then the decision from the method's measured speed-up and compile
        self.probe = AutoProbe(auto_steps, speedup, cold if AUTO_COMPILE_SECONDS == AUTO_DEFAULT_COMPILE else
                               AUTO_COMPILE_SECONDS) if auto_steps is not None else None

    def compile(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return torch.compile(own_code(fn), fullgraph=True, dynamic=False, backend=self.backend)

    def step(self, batch: Tensor, step: int) -> dict[str, Any]:
        if self.probe is not None and not self.probe.compiles:
            if self.probe.compiles is None:
                self.probe.tick(step)
                if self.probe.note is not None and self.say is not None:
                    self.say(self.probe.note)
            if not self.probe.compiles:
                return self.run_step(batch, step)
        kind = self.method.step_kind(step)
        key = (kind, tuple(batch.shape))
        if kind is None:
            return self.run_step(batch, step)
        seen = self.seen.get(key, 0)
        if seen == 0:  # the first step of its kind runs eagerly and is not listed: a method may draw there what only
            self.seen[key] = 1  # its first step draws (KALE's initial log-partition estimate)
            return self.run_step(batch, step)
        if key not in self.draws:  # the second step of its kind: eager, its draws and network evaluations listed
            before = self.budget.rows if self.budget is not None else {}
            with rng.recording(self.method.rng) as draws:
                metrics = self.run_step(batch, step)
            self.draws[key] = draws
            self.rows[key] = {k: v - before[k] for k, v in self.budget.rows.items()} if self.budget else {}
            return metrics
        noise = rng.redraw(self.draws[key], self.method.rng)
        t0 = time.perf_counter()
        # the budget's counting hooks are out of the compiled call (their Python counts would become guards that
        # change at every step); the step's evaluations, counted in its eager first step, are added instead
        with self.budget.paused() if self.budget is not None else contextlib.nullcontext():
            try:
                metrics = self.method.compiled_train_step(batch, step, noise, self.compile)
            except Exception as exc:
                err = os_error_in(exc) if self.compile_seconds is None else None
                if err is None:
                    raise
                raise EbmlabError(f"compile=on: {cache_message(err)} (compile=off)") from None
        if self.budget is not None:
            self.budget.add_rows(self.rows[key])
        if self.compile_seconds is None:
            self.compile_seconds = time.perf_counter() - t0
            if self.say is not None:
                self.say(f"compile: the step compiled in {self.compile_seconds:.1f} s (its first call, one step "
                         f"included)")
        noise.check_used()
        self.after()
        return metrics

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": self.backend}
        if self.compile_seconds is not None:
            out["seconds"] = round(self.compile_seconds, 2)
        if self.probe is not None and self.probe.note is not None:
            out["auto"] = self.probe.note
        return {"compile": out} if len(out) > 1 else {}

    def portable_state(self, state: dict[str, Any]) -> dict[str, Any]:
        return state


__all__ = ["grad_carrying", "writes_buffers", "AUTO_COMPILE_SECONDS", "AUTO_CONV_SPEEDUP", "AUTO_PROBE_STEPS", "AUTO_SPEEDUP", "AutoProbe", "BACKEND", "CompiledSteps", "blocker", "cache_message", "compiler_available", "decide", "os_error_in", "own_code"]
