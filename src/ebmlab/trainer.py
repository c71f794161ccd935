"""The one small training loop. It knows nothing about losses: it feeds batches to ``method.train_step``,
logs what comes back, evaluates (``ebmlab.evaluation``), checkpoints atomically and resumes exactly. It also
places the run: the device, the processes of a data-parallel run (``ebmlab.distributed``), precision.

The configuration arrives resolved (``ebmlab.config``): the method class and the data set are built once there
and passed down.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from . import distributed, graphs
from .config import ResolvedConfig, RunConfig, config_from_dict, resolve_config
from .budget import Budget
from .data import check_same_data, user_data_sha256
from .data.batches import make_batches
from .errors import DivergenceError, EbmlabError
from .evaluation import evaluate, final_eval, finish, log_grid
from .methods import Method
from .recipe import Recipe
from .rng import stream_seed
from .runs import CHECKPOINT_FORMAT, MetricsLogger, RunDir, check_output_dir, fault_point, read_json, write_json


# run options a resumed run may change: how long it runs and where, not what it computes
PLACEMENT = ("steps", "device", "threads", "num_workers", "data_on_device", "graphs")
# data_on_device=auto holds the training split on a CUDA device when it takes at most this fraction of the free memory
AUTO_DATA_FRACTION = 0.25


def pick_device(name: str, world: distributed.World | None = None) -> torch.device:
    """The device of this process: with several processes on GPUs, the one of its local rank."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise EbmlabError("device=cuda was requested but CUDA is not available on this machine; use --device cpu "
                          "or --device auto (device=cpu / device='cpu' in a config or the Python API)")
    if name == "cuda" and world is not None:
        torch.cuda.set_device(world.local_rank)
        return torch.device("cuda", world.local_rank)
    if name == "cuda":  # with its index, so that it equals the device of the tensors made on it ("cuda" != "cuda:0")
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device(name)


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
    if cfg.run.channels_last and ds.spec.is_image:
        for m in {**method.networks, **method.frozen}.values():
            m.to(memory_format=torch.channels_last)
    if world is not None:
        distributed.attach(method)  # every process starts from rank 0's parameters
    method.recipe = Recipe(method, cfg.run, world)  # its average and clip run at each optimizer_step
    return method


def _check_finite(metrics: dict[str, float], step: int, saved_any: bool = True, log_every: int = 1) -> None:
    bad = {k: v for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)}
    if bad:
        when = f"at step {step}" if log_every == 1 else f"by step {step} (checked every log_every={log_every} steps)"
        raise DivergenceError(
            f"training diverged {when}: non-finite {', '.join(f'{k}={v}' for k, v in bad.items())}; "
            f"{_kept(saved_any)} — lower the learning rates (or change the options with another --out) and run again"
        )


def _params_finite(method: Method) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in method.parameters())


@dataclass
class TrainResult:
    run_dir: Path
    summary: dict[str, Any]
    method: Method
    resumed_from: int
    rank: int = 0  # the process's rank in a distributed run (only rank 0 writes and evaluates)
    train_seconds: float | None = None  # wall time of the training loop, summed over sessions (ebmlab.budget)
    # CPU time of the process (all its threads) in the training loop, summed over sessions; None when a session did
    # not record it. On a CPU shared with other jobs it is the compute the run used, whatever else ran beside it.
    train_cpu_seconds: float | None = None


def _check_types(method: Any, data: Any, out: Any, config_file: Any, overrides: Any) -> None:
    """The Python API's arguments, checked before any work (the CLI always passes these types)."""
    if not isinstance(method, str):
        raise EbmlabError(f"method must be a method name (str), got {type(method).__name__} {method!r}")
    if not isinstance(data, (str, Path)):
        raise EbmlabError(f"data must be a data set name or path (str), got {type(data).__name__} {data!r}")
    for name, v in (("out", out), ("config_file", config_file)):
        if v is not None and not isinstance(v, (str, Path)):
            raise EbmlabError(f"{name} must be a path (str or Path), got {type(v).__name__} {v!r}")
    if overrides is not None and (not isinstance(overrides, dict) or not all(isinstance(k, str) for k in overrides)):
        raise EbmlabError(f"overrides must be a dict of option name -> value, got {type(overrides).__name__}")


def train(method: str, data: str, *, out: str | Path | None = None, config_file: str | Path | None = None,
          overrides: dict[str, Any] | None = None, progress: bool = True, stop_after: int | None = None,
          echo: bool = False) -> TrainResult:
    """Train ``method`` on ``data`` into a run directory; resumes if the directory holds a checkpoint.

    ``stop_after`` stops (after checkpointing) once that many steps are done in total — used to test resume.
    ``echo`` prints the resolved configuration before training.
    """
    _check_types(method, data, out, config_file, overrides)
    data = str(data)
    cfg = resolve_config(method, data, config_file=config_file, overrides=overrides)
    out = Path(out) if out is not None else Path("runs") / f"{method}-{_data_label(data)}-s{cfg.run.seed}"
    check_output_dir(out)
    run = RunDir(out)
    saved_data_sha = None
    if run.exists():
        raw = read_json(run.config_path)
        saved = config_from_dict(raw, run.config_path).to_dict()
        saved_data_sha = raw.get("data_sha256")
        if saved.get("method") != method:
            raise EbmlabError(f"{out} holds a run of method {saved.get('method')!r}, not {method!r}; "
                              f"choose another --out for a new run")
        if saved.get("data") != data:
            raise EbmlabError(f"{out} holds a run on data set {saved.get('data')!r}, not {data!r}; choose another --out")
        now = cfg.to_dict()
        diffs = [f"{sect}.{k}: saved {saved[sect].get(k)!r}, now {v!r}"
                 for sect in ("run", "method_config") for k, v in now[sect].items()
                 if not (sect == "run" and k in PLACEMENT) and saved[sect].get(k) != v]
        if diffs:
            raise EbmlabError(f"{out} was created with different options ({'; '.join(diffs)}); "
                              f"resume with the same options or choose another --out")
    else:
        run.check_new()
    # everything that can refuse the options (the data set, the device, the method's own checks) runs before the
    # run directory is made or config.json written, so a refused command leaves nothing behind
    rc = cfg.run
    ds = cfg.dataset
    if rc.threads > 0:
        torch.set_num_threads(rc.threads)
    elif ds.kind == "toy2d":
        torch.set_num_threads(1)  # benchmarks/threads: one thread is the fastest for the 2D toys' small networks
    getattr(ds, "arrays", None)  # read (and checksum) the files now: a missing or corrupt one is refused here
    data_sha = user_data_sha256(data, ds)
    check_same_data(data, data_sha, saved_data_sha, out)  # a user's file rewritten since the run started is refused
    world = _join(rc, distributed.world_size_from_env())
    try:
        batches = make_batches(ds, rc.batches, rc.batch_size, rc.seed, rank=world.rank if world else 0,
                               world=world.size if world else 1)  # refuses a batch the data cannot give
        device = pick_device(rc.device, world)
        if rc.max_cpu_seconds and device.type != "cpu":
            raise EbmlabError(f"max_cpu_seconds counts CPU time, which says nothing of the work on the {device.type} "
                              f"device; use max_seconds (wall time) or max_evals there, or device=cpu")
        graphs.backend(rc.graphs, device)  # graphs=on without CUDA is refused here, before anything is written
        method = build_method(cfg, device, world)
        if _data_on_device(rc, ds, device):
            batches.on_device(device)
        main = world is None or world.is_main
        if echo and main:
            print(cfg.echo(), flush=True)
        if main and progress:
            _announce_classifier(ds)
        with run.lock() if main else contextlib.nullcontext():  # one process trains into a run directory
            if main:
                run.clean_temporary()
                write_json(run.config_path, {**cfg.to_dict(), **({"data_sha256": data_sha} if data_sha else {})})
            distributed.barrier(world)
            return _train_loop(cfg, run, ds, method, batches, progress=progress and main, stop_after=stop_after,
                               world=world)
    finally:
        distributed.finish(world)


def _data_on_device(rc: RunConfig, ds, device: torch.device) -> bool:
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


def _data_label(data: str) -> str:
    """A data set's name in a default run directory: a built-in name, or a user file's or folder's stem (a path
    would nest directories, and an absolute one would leave runs/)."""
    from .data import file_label, is_path

    return file_label(data) if is_path(data) else data


def _announce_classifier(ds) -> None:
    """Say up front when the evaluations of this run will first train the data set's domain classifier."""
    if not ds.spec.is_image or (ds.train_labels is None and not getattr(ds, "stacked", False)):
        return
    from .metrics.classifier import classifier_dir, classifier_name, has_classifier

    if not has_classifier(ds):
        print(f"note: the first evaluation will train the domain classifier of {classifier_name(ds)} behind the "
              f"image metrics (once, stored in {classifier_dir()}; on Fashion-MNIST about 3 minutes on 2 cores)",
              flush=True)


def _join(rc: RunConfig, size: int) -> distributed.World | None:
    """Join torchrun's process group when launched by it, after a batch the processes cannot share is refused."""
    if size > 1 and rc.batch_size % size:
        raise EbmlabError(f"batch_size={rc.batch_size} is not divisible by the {size} processes; choose a "
                          f"global batch that is a multiple of --nproc_per_node × nodes")
    return distributed.init(rc.device) if size > 1 else None


def step_autocast(method: Method, rc: RunConfig, captured: bool = False):
    """bf16 autocast around a training step (precision=bf16). bfloat16 keeps float32's exponent range, so no
    gradient scaler is needed; fp16 is not offered because its scaler would have to wrap each of the methods' own
    backward passes, gradient penalties (double backward) included. A captured step (``ebmlab.graphs``) keeps no
    cache of cast weights between steps, which its replays could not refresh."""
    if rc.precision == "bf16":
        return torch.autocast(method.device.type, dtype=torch.bfloat16, cache_enabled=not captured)
    return contextlib.nullcontext()


class _StopAtStepEnd:
    """SIGINT/SIGTERM while training: the step under way finishes, a checkpoint is saved at it, then the run stops
    as interrupted (KeyboardInterrupt), so that running the same command again loses no step. A second signal stops
    at once (the last checkpoint is kept). Installed only in a process's main thread and for one-process runs: the
    ranks of a distributed run would each stop at a different step unless they agreed, which costs a collective per
    step; there, a signal ends the run at the last checkpoint as before."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, active: bool) -> None:
        self.active = active and threading.current_thread() is threading.main_thread()
        self.requested: str | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested is not None:  # the second signal: at once
            self.restore()
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name
        print(f"\nebmlab: {self.requested}: stopping after this step with a checkpoint (again to stop at once)",
              file=sys.stderr, flush=True)

    def install(self) -> None:
        if self.active:
            for sig in self.SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        """The handlers as they were (idempotent)."""
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


def _train_loop(cfg: ResolvedConfig, run: RunDir, ds, method, batches, *, progress: bool,
                stop_after: int | None, world: distributed.World | None = None) -> TrainResult:
    rc = cfg.run
    main = world is None or world.is_main
    start = 0
    budget = Budget(method.networks, max_seconds=rc.max_seconds, max_evals=rc.max_evals,
                    processes=world.size if world else 1, max_cpu_seconds=rc.max_cpu_seconds)
    ckpt = run.load_checkpoint(cfg.method)
    stopped_by = None
    if ckpt is not None:
        method.load_state_dict(ckpt["method_state"])
        batches.load_state_dict(ckpt)
        torch.set_rng_state(ckpt["torch_rng"])
        start = int(ckpt["step"])
        budget.load_state_dict(ckpt.get("budget"))
        stopped_by = ckpt.get("stopped_by")  # a budget ended this run at its step: it is finished
    else:
        torch.manual_seed(stream_seed(rc.seed, "init"))  # the global generator too, so two identical runs save identical checkpoints
    record = None
    trained: tuple[float, float] | None = None  # the training loop's wall and CPU seconds, once it has ended
    budget.seconds = sum(float(s.get("train_seconds") or 0.0) for s in run.sessions()) if ckpt is not None else 0.0
    if main:
        run.truncate_metrics(start)
        record = run.start_record(cfg, method.device, start, world.size if world else 1,
                                  data_on_device=batches.device is not None)
    recipe = method.recipe
    if start >= rc.steps or stopped_by is not None:
        if not main:
            return TrainResult(run.path, {}, method, start, world.rank)
        recipe.use_averaged()
        last = start if stopped_by is not None else rc.steps
        summary = finish(method, ds, cfg, run, step=last, budget=budget.report(last, stopped_by))
        run.end_record(record, last, 0.0)
        return TrainResult(run.path, summary, method, start, train_seconds=budget.seconds,  # nothing trained now
                           train_cpu_seconds=_cpu_seconds(run.sessions()))

    logger = MetricsLogger(run, start, tensorboard=rc.tensorboard) if main else None
    end = rc.steps if stop_after is None else min(rc.steps, stop_after)
    saved_any = ckpt is not None
    has_buffers = world is not None and any(True for m in method.networks.values() for _ in m.buffers())
    channels_last = rc.channels_last and ds.spec.is_image

    # whole steps replayed from captured graphs (ebmlab.graphs): the step below, as it runs eagerly, is what is captured
    backend = graphs.backend(rc.graphs, method.device)
    why = graphs.blocker(method, world) if backend else None
    line = graphs.describe(backend, why, cfg.method)
    if line and main and progress:
        print(line, flush=True)
    captured = backend is not None and why is None

    def run_step(batch: torch.Tensor, step: int) -> dict[str, Any]:
        with distributed.training_step(world), step_autocast(method, rc, captured):
            metrics = method.train_step(batch, step)
        recipe.after_step()
        return metrics

    runner = None
    if captured:
        assert backend is not None
        graphs.prepare(method, backend, tensor_lrs=rc.lr_schedule != "constant")
        say = (lambda why: print(f"graphs: {why}; the run goes on eagerly (graphs=off skips the attempt)", flush=True)
               ) if main and progress else None
        runner = graphs.StepGraphs(method, backend, run_step, budget, strict=rc.graphs != "auto", on_fallback=say)
    if record is not None and backend is not None:  # run.json says how this session's steps ran
        record["graphs"] = {"backend": backend, **({"eager_because": why} if why else {})}

    def note_graphs() -> None:
        if record is not None and runner is not None:
            record["graphs"].update(runner.summary())

    def method_state() -> dict[str, Any]:  # the optimizers as an eager run saves them (numbers for learning rates)
        return method.state_dict() if runner is None else graphs.portable_method_state(method.state_dict())

    def checkpoint(step: int) -> None:
        nonlocal saved_any
        if not _params_finite(method):
            raise DivergenceError(f"parameters became non-finite by step {step}; {_kept(saved_any)}")
        if main:
            run.save_checkpoint({"format": CHECKPOINT_FORMAT, "method": cfg.method, "step": step,
                                 "method_state": method_state(), **batches.state_dict(),
                                 "torch_rng": torch.get_rng_state(),
                                 "budget": budget.state_dict(),
                                 **({"stopped_by": stopped_by} if stopped_by else {})})
        saved_any = True

    keys = getattr(method, "progress_keys", ())
    bar = tqdm(total=rc.steps, initial=start, disable=not progress, desc=f"{cfg.method}/{cfg.data}",
               dynamic_ncols=True, mininterval=0.5)
    t0, c0, step = time.perf_counter(), time.process_time(), start
    elapsed = elapsed_cpu = 0.0
    cpu_before = _cpu_seconds(run.sessions()) if ckpt is not None else 0.0
    budget.cpu_seconds = cpu_before or 0.0  # sessions that did not record it: counted as none
    stop = _StopAtStepEnd(active=world is None or world.size == 1)
    try:
        stop.install()
        stream = batches.stream(start, end, num_workers=rc.num_workers)
        budget.start()
        pin = method.device.type == "cuda"  # host batches: page-locked, so that the copy overlaps the step
        for step, batch in zip(range(start + 1, end + 1), stream):
            if batch.device != method.device:
                batch = (batch.pin_memory() if pin else batch).to(method.device, non_blocking=True)
            if channels_last and batch.dim() == 4:
                batch = batch.contiguous(memory_format=torch.channels_last)
            recipe.before_step(step)
            method.prepare_step(step)
            metrics = runner.step(batch, step) if runner is not None else run_step(batch, step)
            if has_buffers:
                distributed.broadcast_buffers(method, world)
            if step % rc.log_every == 0 or step == end:  # the only point where metrics leave the device
                metrics = distributed.reduce_metrics(metrics, world)
                _check_finite(metrics, step, saved_any, rc.log_every)
                if main and step % rc.log_every == 0:
                    metrics["steps_per_s"] = (step - start) / (time.perf_counter() - t0)
                    for name, opt in method.optimizers.items():  # the schedule's current learning rates
                        metrics[f"lr_{name}"] = float(opt.param_groups[0]["lr"])
                    logger.log(step, "train", metrics)
                    shown = [k for k in keys if k in metrics] or list(metrics)[:3]
                    bar.set_postfix({k: f"{metrics[k]:.3g}" for k in shown}, refresh=False)
            if main and rc.eval_every and step % rc.eval_every == 0 and step < rc.steps:
                with recipe.averaged(), _rank0_rng(world):
                    logger.log(step, "eval", evaluate(method, ds, rc, step))
                    log_grid(logger, method, ds, step)
            stopped_by = budget.used_up(time.perf_counter() - t0, time.process_time() - c0)
            if stopped_by is not None:
                end = step  # the budget is used up: this step is the run's last
            if step % rc.ckpt_every == 0 or step == end or stop.requested is not None:
                checkpoint(step)
            bar.update(1)
            fault_point(f"step:{step}")
            if stopped_by is not None:
                break
            if stop.requested is not None:
                raise KeyboardInterrupt(f"{stop.requested} at step {step}: checkpoint saved")
        stop.restore()  # from here on (final evaluation, plots) a signal stops at once: finishing is resumable
        budget.stop()
        bar.close()
        elapsed = time.perf_counter() - t0  # the training loop only: the final evaluation is not training
        elapsed_cpu = time.process_time() - c0
        finished = end == rc.steps or stopped_by is not None
        trained = (elapsed, elapsed_cpu)
        rate = (end - start) / elapsed if elapsed > 0 else 0.0
        if finished and main:
            if record is not None:  # a kill in the (long) final evaluation keeps the training loop's record
                note_graphs()
                run.end_record(record, end, rate, status="evaluating", train_seconds=elapsed, cpu_seconds=elapsed_cpu)
            if stopped_by is not None and progress:
                print(f"{stopped_by}: the budget is used up at step {end} ({budget.total_evals} network "
                      f"evaluations, {budget.seconds + elapsed:.0f} s of training); finishing the run there",
                      flush=True)
            recipe.use_averaged()  # training is over: the averages (EMA) are what is evaluated, plotted, reported
            final_eval(method, ds, cfg, run, logger, progress, end)
    except BaseException as exc:
        if record is not None:  # the record says how the session ended, not "running" for ever
            try:
                wall, cpu_s = trained or (time.perf_counter() - t0, time.process_time() - c0)
                note_graphs()
                run.end_record(record, step, (step - start) / max(wall, 1e-9),
                               status="interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                               train_seconds=wall, cpu_seconds=cpu_s)
            except OSError:
                pass  # a full disk: the record is informative only, the original error is reported
        raise
    finally:
        stop.restore()
        budget.stop()
        bar.close()
        if logger is not None:
            logger.close()
    if not main:
        return TrainResult(run.path, {}, method, start, world.rank)
    note_graphs()
    run.end_record(record, end, rate, train_seconds=elapsed, cpu_seconds=elapsed_cpu)
    cpu = None if cpu_before is None else cpu_before + elapsed_cpu
    if not finished:
        return TrainResult(run.path, {}, method, start, train_seconds=budget.seconds + elapsed, train_cpu_seconds=cpu)
    return TrainResult(run.path, finish(method, ds, cfg, run, progress=progress, step=end,
                                        budget=budget.report(end, stopped_by)), method, start,
                       train_seconds=budget.seconds + elapsed, train_cpu_seconds=cpu)


def _cpu_seconds(sessions: list[dict[str, Any]]) -> float | None:
    """The training-loop CPU seconds of earlier sessions, summed; None when one that trained did not record them."""
    trained = [s for s in sessions if s.get("end_step") is not None and s.get("end_step") != s.get("start_step")]
    if any("train_cpu_seconds" not in s for s in trained):
        return None
    return sum(float(s["train_cpu_seconds"]) for s in trained)


def _rank0_rng(world: distributed.World | None):
    """Rank 0's evaluation during a distributed run must not move its global RNG away from the other processes'."""
    return torch.random.fork_rng(devices=[]) if world is not None else contextlib.nullcontext()


def _kept(saved_any: bool) -> str:
    return ("the last good checkpoint is kept" if saved_any else
            "no checkpoint had been written yet, so the run starts again from step 0")


__all__ = ["TrainResult", "build_method", "pick_device", "step_autocast", "train"]
