"""Gradient-based MCMC as pure functions — ULA, MALA, HMC and kinetic (underdamped) Langevin — and :func:`run`, the
loop that chains their steps (warm-up, step-size adaptation, thinning, compiled steps).

Every sampler is a pair ``init(x0, energy_fn) -> state`` and
``step(state, energy_fn, *, ..., generator) -> (state, info)``. One job per module: the shared pieces (states, the
Metropolis test, the latent-space energy, :class:`Algorithm`) in ``samplers.core``, the kernels in
``samplers.langevin`` (ULA, MALA, kinetic Langevin) and ``samplers.hamiltonian`` (HMC), step-size adaptation in
``samplers.adapt``, the loop here; every name is also importable from here.

Conventions
-----------
* ``energy_fn(x: Tensor[b, D]) -> Tensor[b]`` is an unnormalised negative log-density (nats),
  one chain per row. Rows must be independent (``energy_fn(x)[i]`` depends on ``x[i]`` only —
  e.g. no BatchNorm in training mode), because ``grad E`` is taken of ``energy_fn(x).sum()``.
  The target is ``p(x) ∝ exp(-E(x))``.
* Gradients are taken with ``torch.autograd.grad`` on a detached leaf with
  ``create_graph=False``, so no graph survives a step and parameters of ``energy_fn`` receive
  no ``.grad``. Call the samplers outside ``torch.inference_mode``.
* ``step_size`` may be a float, a 0-d tensor or a tensor ``[b]`` (one step size per chain).
* All randomness is drawn from the explicit ``generator``; results are bit-reproducible for a
  given seed, device and dtype. Work happens in the dtype of ``x0``.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import torch
from torch import Tensor

# compiler_available is patched in tests as mcmc.compiler_available
from ..compiled import cache_message, compiler_available, os_error_in, own_code
from ..syncs import scalar_like
from ..types import EnergyFn
from .adapt import DualAveraging, dual_averaging_init, dual_averaging_update, tune_step_size
from .core import (Algorithm, EnergyGrad, KineticState, State, StepInfo, _eager, energy_and_grad,
                   functional_energy_and_grad, latent_energy, metropolis_accept)
from .hamiltonian import hmc, hmc_step, leapfrog
from .langevin import (kinetic_langevin, kinetic_langevin_init, kinetic_langevin_step, langevin_init, mala,
                       mala_step, ula, ula_step)



# --------------------------------------------------------------------------------------------
# The run loop
# --------------------------------------------------------------------------------------------
COMPILE_BACKEND = "inductor"  # torch.compile's backend for compile=on|auto (the tests trace with aot_eager)
# compile="auto" times the first AUTO_PROBE_STEPS steps eagerly (the first one, which warms caches, untimed) and
# compiles the rest only when the time a compiled step saves over them repays a compile: a cold compile measured at
# 11-22 s on a 2-core CPU, up to ~50 s for HMC (AUTO_COMPILE_SECONDS), compiled steps 1.25-4.5x the eager ones
# (AUTO_SPEEDUP, the middle of that range; benchmarks/peers/README.md). A 500-step HMC chain of 6.7 s runs eagerly.
# Those figures are the MLP energies'. A convolutional pair on the CPU is outside them: KALE's spectrally normalised
# conv pair on stacked Fashion-MNIST (520 chains of 100 kinetic steps, 1 thread, beside two training jobs) took 60 s
# eagerly, 72 s compiled with a warm inductor cache (no faster a step) and 218 s under auto (a cold compile of about
# 150 s, decided on the 20 s assumed here) — leave such chains eager (compile=off, the default).
AUTO_PROBE_STEPS = 8
AUTO_COMPILE_SECONDS = 20.0
AUTO_SPEEDUP = 2.0
# compiled samplers whose step is one graph run the steps after warm-up in blocks of this many per compiled call: a
# call's fixed cost (dynamo's guards and the wrapper, ~39 us on a 2-core CPU) is paid once a block, not once a step
COMPILE_BLOCK = 8
COMPILE_CHOICES = (False, True, "auto", "off", "on")


_T = TypeVar("_T")


class _Stepper:
    """One step of ``algorithm``: eager, or its ``apply`` compiled into one graph (energy, gradient and update; the
    draws stay eager, from the same generator in the same order). ``compile_seconds``: the wall time of setting up
    ``torch.compile`` and of the first compiled calls (tracing and code generation). When the first call cannot
    trace the step into one graph: the algorithm's ``compile_part`` (HMC: its leapfrog step compiled alone, said in
    ``note``), else eagerly with a warning under ``auto`` and a ValueError under ``on``."""

    def __init__(self, algorithm: Algorithm, energy_fn: EnergyFn, mode: bool | str, static: dict[str, Any]):
        self.algorithm, self.energy_fn, self.mode, self.static = algorithm, energy_fn, mode, static
        self.compiled: Callable[..., Any] | None = None
        self.part: EnergyGrad | None = None  # compile_part's energy-and-gradient, after the whole step failed
        self.note: str | None = None
        self.compile_seconds: float | None = None  # the first calls of the step and of the block, summed
        self._block: Callable[..., Any] | None = None  # the compiled block of steps (block)
        self._called: set[str] = set()  # which compiled functions have had their first (compiling) call
        self._setup = 0.0  # torch.compile's own imports (dynamo, inductor: seconds on a first use), counted in
        self._kw: dict[str, Any] = {"fullgraph": True, "dynamic": False, "backend": COMPILE_BACKEND}
        if mode and algorithm.apply is None:
            raise ValueError(f"compile: {algorithm.name!r} has no draws/apply split to compile")
        if mode:
            t0 = time.perf_counter()
            self.compiled = torch.compile(own_code(self._flat), **self._kw)
            self._setup = time.perf_counter() - t0

    def _flat(self, cls: type, fields: tuple[Tensor, ...], draws: tuple[Tensor, ...],
              kw: dict[str, Tensor]) -> tuple[tuple[Tensor, ...], tuple[Tensor | None, ...]]:
        assert self.algorithm.apply is not None
        new, info = self.algorithm.apply(cls(*fields), functional_energy_and_grad(self.energy_fn), draws,
                                         **kw, **self.static)
        return (tuple(getattr(new, f.name) for f in dataclasses.fields(new)),
                (info.acceptance_prob, info.is_accepted, info.energy_error))

    def __call__(self, state: Any, generator: torch.Generator, kw: dict[str, Any]) -> tuple[Any, StepInfo]:
        if self.compiled is None and self.part is None:
            return self.algorithm.step(state, self.energy_fn, generator=generator, **kw, **self.static)
        assert self.algorithm.draws is not None and self.algorithm.apply is not None
        draws = self.algorithm.draws(state, generator, **self.static)
        if self.compiled is None:
            return self._steps(state, (draws,), kw)[:2]
        tensors = {k: scalar_like(v, state.x) for k, v in kw.items()}  # a new value must not recompile
        return self._first_timed("step", lambda: self._compiled_step(state, draws, tensors),
                                 lambda: self._steps(state, (draws,), kw)[:2])

    def _first_timed(self, name: str, call: Callable[[], _T], fallback: Callable[[], _T]) -> _T:
        """``call()``, the first call of each compiled function timed into ``compile_seconds`` (torch.compile's
        set-up counted once); when that first call cannot trace the step into one graph: ``fallback()`` through
        the algorithm's compiled part, else eagerly (see the class)."""
        first, t0 = name not in self._called, time.perf_counter()
        try:
            out = call()
        except (torch._dynamo.exc.TorchDynamoException, AssertionError) as exc:  # torch's tracing asserts too
            if not first:
                raise
            self._whole_failed(exc)
            out = self._part_or_eager(fallback)
        if first and (self.compiled is not None or self.part is not None):  # something compiled ran
            self._called.add(name)
            self.compile_seconds = (self.compile_seconds or self._setup) + time.perf_counter() - t0
        return out

    def _whole_failed(self, exc: Exception) -> None:
        err = os_error_in(exc)
        if err is not None:  # the file system, not the energy: said as such, whatever the mode
            raise ValueError(f"compile={self.mode}: {cache_message(err)} (compile=off)") from None
        self.compiled = None
        if self.algorithm.compile_part is not None:
            self.part = self.algorithm.compile_part(self.energy_fn, **self._kw)
            self.note = (f"compile={self.mode}: {self.algorithm.name}'s step could not be traced whole "
                         f"({type(exc).__name__}); its compiled part runs, the rest eagerly")
            return
        self._cannot_compile(exc)

    def _cannot_compile(self, exc: Exception) -> None:
        if self.mode != "auto":
            raise ValueError(f"compile=on: the energy cannot be compiled into one graph ({type(exc).__name__}): "
                             f"{exc}") from None
        warnings.warn(f"compile=auto: the energy could not be compiled into one graph ({type(exc).__name__}); "
                      f"the chains run eagerly", stacklevel=5)
        self.note = None

    def _part_or_eager(self, fallback: Callable[[], _T]) -> _T:
        if self.part is None:
            return fallback()
        try:
            return fallback()
        except (torch._dynamo.exc.TorchDynamoException, AssertionError) as exc:
            self.part = None
            self._cannot_compile(exc)
            return fallback()

    def _steps(self, state: Any, draws: tuple[tuple[Tensor, ...], ...], kw: dict[str, Any]
               ) -> tuple[Any, StepInfo, Tensor]:
        """The steps of ``draws`` one call at a time, through the compiled part (:attr:`part`) or eagerly: the last
        state and step information, and the acceptances' sum."""
        apply = self.algorithm.apply
        assert apply is not None
        energy_grad = self.part if self.part is not None else _eager(self.energy_fn)
        acc = None
        for d in draws:
            state, info = apply(state, energy_grad, d, **kw, **self.static)
            acc = info.acceptance_prob if acc is None else acc + info.acceptance_prob
        assert acc is not None
        return state, info, acc

    def _flat_block(self, cls: type, fields: tuple[Tensor, ...], draws: tuple[tuple[Tensor, ...], ...],
                    kw: dict[str, Tensor]) -> tuple[tuple[Tensor, ...], Tensor]:
        assert self.algorithm.apply is not None
        state, eg, acc = cls(*fields), functional_energy_and_grad(self.energy_fn), None
        for d in draws:
            state, info = self.algorithm.apply(state, eg, d, **kw, **self.static)
            acc = info.acceptance_prob if acc is None else acc + info.acceptance_prob
        assert acc is not None
        return tuple(getattr(state, f.name) for f in dataclasses.fields(state)), acc

    def blocked(self, n: int) -> bool:
        """Whether :meth:`block` runs ``n`` steps as one compiled call (a step compiled whole; ``n`` > 1)."""
        return self.compiled is not None and n > 1

    def block(self, state: Any, generator: torch.Generator, kw: dict[str, Any], n: int) -> tuple[Any, Tensor]:
        """``n`` steps as one compiled call (:meth:`blocked`), their draws made first, in the order the ``n`` steps
        make them (a step's draws depend only on the state's shapes): the same chain as ``n`` single steps to
        float rounding. Returns the state after them and the sum of their acceptance probabilities."""
        assert self.algorithm.draws is not None
        draws = tuple(self.algorithm.draws(state, generator, **self.static) for _ in range(n))
        tensors = {k: scalar_like(v, state.x) for k, v in kw.items()}
        if self._block is None:
            self._block = torch.compile(own_code(self._flat_block), **self._kw)
        fields = tuple(getattr(state, f.name) for f in dataclasses.fields(state))

        def compiled() -> tuple[Any, Tensor]:
            assert self._block is not None
            out, acc = self._block(type(state), fields, draws, tensors)
            return type(state)(*out), acc

        def fallback() -> tuple[Any, Tensor]:
            new, _, acc = self._steps(state, draws, kw)
            return new, acc

        return self._first_timed("block", compiled, fallback)

    def _compiled_step(self, state: Any, draws: tuple[Tensor, ...], tensors: dict[str, Tensor]) -> tuple[Any, StepInfo]:
        assert self.compiled is not None
        fields = tuple(getattr(state, f.name) for f in dataclasses.fields(state))
        out, (prob, acc, err) = self.compiled(type(state), fields, draws, tensors)
        return type(state)(*out), StepInfo(prob, acc, err)


def _compile_mode(compile: bool | str, n_total: int, device: torch.device) -> bool | str:
    if compile not in COMPILE_CHOICES:
        raise ValueError(f"compile must be off, on or auto (or False/True); got {compile!r}.")
    if compile in (False, "off"):
        return False
    if compile == "auto":
        return "auto" if n_total > AUTO_PROBE_STEPS and compiler_available(device) else False
    if COMPILE_BACKEND == "inductor" and not compiler_available(device):
        raise ValueError(f"compile=on needs a compiler for torch.compile on {device.type} (a C++ compiler and "
                         f"Python's headers for the CPU, Triton for CUDA); none was found: use off or auto")
    return "on"


@dataclass(frozen=True)
class RunResult:
    """Output of :func:`run`.

    final_state: state after the last step.
    samples: ``[n_kept, b, D]`` states kept every ``thin`` steps after warm-up, or ``None``.
    acceptance_rate: per-chain mean acceptance probability over the post-warm-up steps, ``[b]``.
    mean_acceptance: its mean over chains (float).
    step_size: the step size used after warm-up (adapted if requested), or ``None``.
    """

    final_state: State | KineticState
    samples: Tensor | None
    acceptance_rate: Tensor
    mean_acceptance: float
    step_size: float | Tensor | None
    compile_seconds: float | None = None
    compile_note: str | None = None  # compile="auto": what it measured and decided


class _AutoCompile:
    """compile="auto"'s decision (module constants AUTO_*): the chain's first steps run eagerly and are timed; at
    step AUTO_PROBE_STEPS the eager time of the steps left is estimated, and the rest of the chain is compiled when
    what compiling saves of it (1 − 1/AUTO_SPEEDUP) exceeds a compile's cost. The decision and its numbers are kept
    in ``note`` (``RunResult.compile_note``). Compiled steps are the eager steps to float rounding, so where the
    chain switches changes no number beyond that."""

    def __init__(self, total: int):
        self.total, self.t0 = total, 0.0
        self.note: str | None = None

    def __call__(self, i: int, stepper: _Stepper) -> _Stepper:
        if i == 1:
            self.t0 = time.perf_counter()
        if i != AUTO_PROBE_STEPS:
            return stepper
        per_step = (time.perf_counter() - self.t0) / (AUTO_PROBE_STEPS - 1)
        left = self.total - i
        saved = left * per_step * (1 - 1 / AUTO_SPEEDUP)
        compiles = saved > AUTO_COMPILE_SECONDS
        self.note = (f"compile=auto: {left} steps left at {per_step * 1e3:.3g} ms an eager step; compiling would save "
                     f"about {saved:.3g} s against a compile of about {AUTO_COMPILE_SECONDS:.0f} s: "
                     + ("compiled from here" if compiles else "the chain ran eagerly"))
        return _Stepper(stepper.algorithm, stepper.energy_fn, "auto", stepper.static) if compiles else stepper


def _check_run(algorithm: Algorithm, adapt_step_size: bool | str, n_warmup: int, initial: Any,
               thin: int | None) -> None:
    """:func:`run`'s refusals of its arguments."""
    if adapt_step_size not in (False, True, "global", "per_chain"):
        raise ValueError(f"adapt_step_size must be False, True (global) or 'per_chain'; got {adapt_step_size!r}.")
    if adapt_step_size and not algorithm.adaptable:
        raise ValueError(
            f"adapt_step_size=True needs a Metropolis-adjusted sampler (mala or hmc); "
            f"got {algorithm.name!r}, whose acceptance is always 1."
        )
    if adapt_step_size and (n_warmup <= 0 or not isinstance(initial, (int, float))):
        raise ValueError(
            "adapt_step_size=True needs n_warmup > 0 and an initial scalar step_size=...; got "
            f"n_warmup={n_warmup}, step_size={initial!r}."
        )
    if thin is not None and thin < 1:
        raise ValueError(f"thin must be None or >= 1, got {thin}.")


def run(
    algorithm: Algorithm,
    x0: Tensor,
    energy_fn: EnergyFn,
    *,
    n_steps: int,
    generator: torch.Generator,
    n_warmup: int = 0,
    thin: int | None = None,
    adapt_step_size: bool | str = False,
    target_accept: float = 0.65,
    progress: bool = False,
    compile: bool | str = False,
    **step_kwargs: Any,
) -> RunResult:
    """Run ``n_warmup + n_steps`` steps of ``algorithm`` from ``x0 [b, D]`` (``b`` chains).

    ``x0`` may also be ``[b, *event]`` (images): the chains then run on the flattened coordinates with
    ``energy_fn`` called on the event shape, and ``final_state.x`` and ``samples`` come back in that shape.

    Args:
        algorithm: one of :data:`ula`, :data:`mala`, :data:`hmc`, :data:`kinetic_langevin`.
        n_steps: steps after warm-up (statistics and kept samples come from these only).
        n_warmup: steps before; with ``adapt_step_size`` the step size is tuned there.
        thin: keep every ``thin``-th post-warm-up state in ``samples``; ``None`` keeps none (use
            ``final_state``, e.g. one draw per independent chain).
        adapt_step_size: tune one global ``step_size`` during warm-up toward ``target_accept``
            (0.65 suits HMC; ~0.57 is optimal for MALA) with :func:`tune_step_size` on the
            chain-averaged acceptance probability, then freeze it at its last value. A global
            step size is less noisy than per-chain ones and keeps every chain on the same kernel.
            ``"per_chain"``: one step size per chain by dual averaging (:func:`dual_averaging_update`),
            frozen at each chain's averaged iterate after warm-up (``step_size`` comes back ``[b]``):
            for chains whose targets differ in scale (a batch of posteriors, tempered replicas).
        progress: show a ``tqdm`` progress bar.
        compile: ``off`` (False, the default), ``on`` (True): each step's arithmetic — the energy, its gradient
            by ``torch.func.grad`` and the update — runs as one ``torch.compile``d graph, the draws staying eager
            (the same generator, the same order): the same numbers to float rounding, fewer and larger operations.
            The first step pays the compile (``RunResult.compile_seconds``; 10–40 s on a CPU), and every call of
            ``run`` compiles afresh. ``auto``: time the first steps eagerly and compile the rest where that repays
            a compile (:class:`_AutoCompile`; its numbers in ``RunResult.compile_note``), with a compiler available;
            run eagerly, with a warning, when the energy cannot be traced into one graph (``on`` raises).
        **step_kwargs: passed to ``algorithm.step`` (``step_size``, ``n_leapfrog``, or
            ``gamma`` and ``kappa`` for kinetic Langevin).
    """
    initial = step_kwargs.get("step_size")
    _check_run(algorithm, adapt_step_size, n_warmup, initial, thin)
    if x0.dim() > 2:  # any event shape: the chains run on the flattened coordinates (the kernels are coordinate-wise)
        event = tuple(x0.shape[1:])
        res = run(algorithm, x0.flatten(1), lambda v: energy_fn(v.reshape(-1, *event)), n_steps=n_steps,
                  generator=generator, n_warmup=n_warmup, thin=thin, adapt_step_size=adapt_step_size,
                  target_accept=target_accept, progress=progress, compile=compile, **step_kwargs)
        return dataclasses.replace(
            res, final_state=dataclasses.replace(res.final_state, x=res.final_state.x.reshape(-1, *event)),
            samples=None if res.samples is None else res.samples.reshape(res.samples.shape[0], -1, *event))

    state = algorithm.init(x0, energy_fn)
    total = n_warmup + n_steps
    static = {k: v for k, v in step_kwargs.items() if k != "step_size"}
    step_kwargs = {k: v for k, v in step_kwargs.items() if k == "step_size"}
    mode = _compile_mode(compile, total, x0.device)
    auto = _AutoCompile(total) if mode == "auto" else None
    stepper = _Stepper(algorithm, energy_fn, False if auto else mode, static)
    bar = None
    if progress:
        from tqdm.auto import tqdm  # optional dependency, imported only when asked for

        bar = tqdm(total=total, desc=algorithm.name)

    acc_sum = torch.zeros(x0.shape[0], dtype=x0.dtype, device=x0.device)
    kept: list[Tensor] = []
    per_chain = adapt_step_size == "per_chain"
    da = dual_averaging_init(float(initial or 0.0), x0.shape[0], device=x0.device) if per_chain else None
    if da is not None:  # [b] from the first step (the same values): a compiled step keeps one shape
        step_kwargs["step_size"] = da.log_eps.exp().to(x0.dtype)
    block = COMPILE_BLOCK if thin is None else math.gcd(COMPILE_BLOCK, thin)
    i = 0
    while i < total:
        if auto is not None:
            stepper = auto(i, stepper)
        if i >= n_warmup and total - i >= block and stepper.blocked(block):  # after warm-up: blocks of steps
            state, acc = stepper.block(state, generator, step_kwargs, block)
            acc_sum += acc
            i += block
            if thin is not None and (i - n_warmup) % thin == 0:
                kept.append(state.x)
            if bar is not None:
                bar.update(block)
            continue
        state, info = stepper(state, generator, step_kwargs)
        if da is not None and i < n_warmup:
            da = dual_averaging_update(da, info.acceptance_prob, target=target_accept)
            log_eps = da.log_eps if i + 1 < n_warmup else da.log_eps_bar  # after warm-up: the averaged iterate
            step_kwargs = {**step_kwargs, "step_size": log_eps.exp().to(x0.dtype)}
        elif adapt_step_size and i < n_warmup:
            eps = tune_step_size(step_kwargs["step_size"], info.acceptance_prob.mean().item(),
                                 i + 1, target=target_accept)
            step_kwargs = {**step_kwargs, "step_size": eps}
        if i >= n_warmup:
            acc_sum += info.acceptance_prob
            if thin is not None and (i - n_warmup + 1) % thin == 0:
                kept.append(state.x)
        i += 1
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    acc = acc_sum / max(n_steps, 1)
    return RunResult(
        final_state=state,
        samples=torch.stack(kept) if kept else None,
        acceptance_rate=acc,
        mean_acceptance=acc.mean().item(),
        step_size=step_kwargs.get("step_size"),
        compile_seconds=stepper.compile_seconds,
        compile_note="; ".join(n for n in (auto.note if auto else None, stepper.note) if n) or None,
    )


__all__ = ["Algorithm", "compiler_available", "dual_averaging_init", "dual_averaging_update", "DualAveraging",
           "energy_and_grad", "EnergyGrad", "functional_energy_and_grad", "hmc", "hmc_step", "kinetic_langevin",
           "kinetic_langevin_init", "kinetic_langevin_step", "KineticState", "langevin_init", "latent_energy",
           "leapfrog", "mala", "mala_step", "metropolis_accept", "run", "RunResult", "State", "StepInfo",
           "tune_step_size", "ula", "ula_step"]
