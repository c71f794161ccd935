"""The one small training loop. It knows nothing about losses: it feeds batches to the run's step runner
(``ebmlab.graphs``: the method's ``train_step``, eager or replayed), logs what comes back, evaluates
(``ebmlab.evaluation``), checkpoints atomically and resumes exactly. Where and how the steps run — device,
processes, threads, precision, capture — is decided once, before anything is written (``ebmlab.placement``); the
session's record and clocks are kept by ``ebmlab.sessions.Session``.

The configuration arrives resolved (``ebmlab.config``): the method class and the data set are built once there
and passed down.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from . import distributed, graphs, machine
from .branch import branch, plan_branch
from .budget import Budget
from .config import ResolvedConfig, check_arguments, check_resumable, resolve_config, resume_steps
from .data import check_same_data, user_data_sha256
from .data.batches import make_batches
from .errors import DivergenceError
from .evaluation import announce_classifier, check_keep_best, check_metrics, evaluate, final_eval, finish, log_grid
from .methods import Method
from .placement import RESUMABLE, Placement, build_method, join
from .rng import stream_seed
from .trackers import check_loggers, metrics_logger
from .atomic import check_output_dir, fault_point, read_json, write_json
from .runs import CHECKPOINT_FORMAT, RunDir
from .sessions import Session, StopAtStepEnd
from .trackers import MetricsLogger


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
    finished_before: bool = False  # every step (or the budget) was done in an earlier session: nothing trained now


def train(method: str, data: str, *, out: str | Path | None = None, config_file: str | Path | None = None,
          overrides: dict[str, Any] | None = None, progress: bool = True, stop_after: int | None = None,
          echo: bool = False, branch_from: str | Path | None = None, branch_at: int | None = None) -> TrainResult:
    """Train ``method`` on ``data`` into a run directory; resumes if the directory holds a checkpoint.

    ``stop_after`` stops (after checkpointing) once that many steps are done in total — used to test resume.
    ``echo`` prints the resolved configuration before training. ``branch_from``: a new run starts as a branch of
    that run (``ebmlab.branch``) at its kept checkpoint ``branch_at`` (default: its last one below ``steps``); the
    same call on the branch resumes it.
    """
    check_arguments(method, data, out, config_file, overrides)
    data = str(data)
    cfg = resolve_config(method, data, config_file=config_file, overrides=overrides)
    out = Path(out) if out is not None else cfg.default_out()
    check_output_dir(out)
    run = RunDir(out)
    source = None if branch_from is None else Path(branch_from)
    branch_step = None if source is None else plan_branch(source, out, cfg, branch_at)
    saved_data_sha, saved_steps = check_resumable(run, cfg, RESUMABLE)
    ckpt = run.load_checkpoint(cfg.method) if saved_steps is not None else None
    cfg, extending = resume_steps(cfg, run, saved_steps, int(ckpt["step"]) if ckpt is not None else 0)
    # everything that can refuse the options (the data set, the placement, the method's own checks) runs before the
    # run directory is made or config.json written, so a refused command leaves nothing behind
    rc, ds = cfg.run, cfg.dataset
    check_loggers(rc.loggers)
    check_keep_best(rc)
    check_metrics(rc)
    ds.read()  # a missing or corrupt file is refused here
    data_sha = user_data_sha256(data, ds)
    check_same_data(data, data_sha, saved_data_sha, out)  # a user's file rewritten since the run started is refused
    if source is not None and branch_step is not None:  # and since the run branched from was trained on it
        check_same_data(data, data_sha, read_json(RunDir(source).config_path).get("data_sha256"), source)
    world = join(rc, distributed.world_size_from_env())
    try:
        place = Placement.resolve(rc, ds, world)
        batches = make_batches(ds, rc.batches, rc.batch_size, rc.seed, rank=place.rank,
                               world=place.processes)  # refuses a batch the data cannot give
        method_ = build_method(cfg, place.device, world)
        guided = method_.guided_config() if method_.has_guided_sampler else None
        if guided is not None:  # mcmc_compile=on where nothing compiles: refused before training, not after
            from .samplers.latent import check_compiler

            check_compiler(guided.mcmc_compile, place.device)
        place = place.for_method(method_)
        if place.data_on_device:
            batches.on_device(place.device)
        if echo and place.main:
            print(cfg.echo(), flush=True)
        if (echo or progress) and place.main:
            print(place.describe(), flush=True)  # where and how the steps run, a capture's blocker included
        if place.main and progress:
            if extending:
                print(extending, flush=True)
            announce_classifier(ds)
        if source is not None and branch_step is not None:  # written once nothing can refuse the options any more
            if place.main:
                branch(source, out, cfg, branch_step)
                if progress:
                    print(f"branched from {source} at its kept step {branch_step}", flush=True)
            distributed.barrier(world)
            ckpt = run.load_checkpoint(cfg.method)
        with run.lock() if place.main else contextlib.nullcontext():  # one process trains into a run directory
            if place.main:
                run.clean_temporary()
                write_json(run.config_path, {**cfg.to_dict(), **({"data_sha256": data_sha} if data_sha else {})})
            distributed.barrier(world)
            return _train_loop(cfg, run, ckpt, method_, batches, place, progress=progress and place.main,
                               stop_after=stop_after, echo=(echo or progress) and place.main)
    finally:
        distributed.finish(world)


@dataclass
class _Training:
    """One session of the loop over a run's steps: what it reads and what it keeps between steps."""

    cfg: ResolvedConfig
    run: RunDir
    method: Method
    batches: Any  # ebmlab.data.batches: the batch stream, saved with each checkpoint
    place: Placement
    budget: Budget
    record: Session
    start: int
    stopped_by: str | None  # the budget that ended the run (at its last step), or None
    saved_any: bool  # a checkpoint exists: a divergence keeps it
    cpu_before: float | None  # CPU seconds of the earlier sessions (None: one did not record them)
    logger: MetricsLogger | None = None
    runner: graphs.StepRunner | None = None
    step: int = 0

    @property
    def run_steps(self) -> graphs.StepRunner:
        """The session's step runner (set before the first step)."""
        assert self.runner is not None
        return self.runner

    def log(self, step: int, end: int, metrics: dict[str, Any], bar: tqdm) -> None:
        """At log steps (the only point where metrics leave the device): averaged over the processes, checked
        finite, written and shown."""
        rc = self.cfg.run
        if step % rc.log_every and step != end:
            return
        metrics = distributed.reduce_metrics(metrics, self.place.world)
        _check_finite(metrics, step, self.saved_any, rc.log_every)
        if self.logger is None or step % rc.log_every:
            return
        metrics["steps_per_s"] = self.record.rate(step)
        for name, opt in self.method.optimizers.items():  # the schedule's current learning rates
            metrics[f"lr_{name}"] = float(opt.param_groups[0]["lr"])
        self.logger.log(step, "train", metrics)
        shown = [k for k in self.method.progress_keys if k in metrics] or list(metrics)[:3]
        bar.set_postfix({k: f"{metrics[k]:.3g}" for k in shown}, refresh=False)

    def evaluate(self, step: int) -> None:
        """The evaluation during training, at the steps of ``eval_every`` and ``eval_spacing`` (rank 0)."""
        rc = self.cfg.run
        if self.logger is not None and rc.is_eval_step(step):
            wall, cpu = self.record.times()  # what was trained up to this point (a learning curve's abscissae)
            trained = {"train_seconds": round(self.budget.seconds + wall, 3)}
            if self.cpu_before is not None:
                trained["train_cpu_seconds"] = round(self.cpu_before + cpu, 3)
            with self.record.set_aside(), self.method.recipe.averaged(), _rank0_rng(self.place.world):
                metrics = evaluate(self.method, self.cfg.dataset, rc, step)
                self.logger.log(step, "eval", {**metrics, **trained})
                log_grid(self.logger, self.method, self.cfg.dataset, step)
                if rc.keep_best:
                    self.keep_best(step, metrics)

    def keep_best(self, step: int, metrics: dict[str, Any]) -> None:
        """Run option ``keep_best``: the model of this evaluation kept as best.pt (the checkpoint's state, written
        atomically), then best.json (metric, value, step), when it scores strictly better than the best so far. A
        resumed run reads best.json; evaluations are deterministic, so one redone after a kill scores the same and
        keeps the same model."""
        from .metrics import registry

        name = self.cfg.run.keep_best
        value = metrics.get(name)
        if not registry.improves(name, value, None):  # not a finite number
            return
        best = read_json(self.run.best_record_path) if self.run.best_record_path.is_file() else None
        so_far = best.get("value") if isinstance(best, dict) and best.get("metric") == name else None
        if not registry.improves(name, value, so_far if isinstance(so_far, (int, float)) else None):
            return
        self.run.save_checkpoint({"format": CHECKPOINT_FORMAT, "method": self.cfg.method, "step": step,
                                  "method_state": self.run_steps.portable_state(self.method.state_dict())},
                                 self.run.best_path)
        write_json(self.run.best_record_path, {"metric": name, "value": value, "step": step,
                                               "better": "higher" if registry.higher_is_better(name) else "lower"})

    def checkpoint(self, step: int, keep: bool = False) -> None:
        """The checkpoint at the end of ``step``; ``keep`` (run option ``keep_checkpoints``, at an evaluation step):
        also kept as checkpoints/step-N.pt, the state a run branched there resumes from (``ebmlab.branch``), without
        the budget's stop: a point of the curve, not the run's end."""
        if not _params_finite(self.method):
            raise DivergenceError(f"parameters became non-finite by step {step}; {_kept(self.saved_any)}")
        if self.place.main:
            state = {"format": CHECKPOINT_FORMAT, "method": self.cfg.method, "step": step,
                     "method_state": self.run_steps.portable_state(self.method.state_dict()),
                     **self.batches.state_dict(), "torch_rng": torch.get_rng_state(),
                     "budget": self.budget.state_dict()}
            if keep:
                self.run.save_checkpoint(state, self.run.kept_checkpoint_path(step))
            self.run.save_checkpoint({**state, **({"stopped_by": self.stopped_by} if self.stopped_by else {})})
            self.record.checkpointed(step)  # the seconds up to it, which a session killed later counts for
        self.saved_any = True

    def note_graphs(self) -> None:
        """How this session's steps ran, into its record (captured runs)."""
        summary = self.runner.summary() if self.runner is not None else {}
        if "compile" in summary:
            self.record.note(compile={"mode": self.place.compile_mode, **summary["compile"]})
        elif summary:
            self.record.note(graphs={"backend": self.place.graphs, **summary})

    def result(self, summary: dict[str, Any] | None = None) -> TrainResult:
        wall, cpu = self.record.times()
        return TrainResult(self.run.path, summary or {}, self.method, self.start, self.place.rank,
                           train_seconds=self.budget.seconds + wall,
                           train_cpu_seconds=None if self.cpu_before is None else self.cpu_before + cpu)


def _begin(cfg: ResolvedConfig, run: RunDir, ckpt: dict[str, Any] | None, method: Method, batches: Any,
           place: Placement) -> _Training:
    """Restore the checkpoint if there is one (method, batches, RNG, step, budget counts and seconds) and start
    this session's record."""
    rc = cfg.run
    budget = Budget(method.networks, max_seconds=rc.max_seconds, max_evals=rc.max_evals,
                    processes=place.processes, max_cpu_seconds=rc.max_cpu_seconds)
    start, stopped_by, cpu_before = 0, None, 0.0  # type: int, str | None, float | None
    if ckpt is not None:
        method.load_state_dict(ckpt["method_state"])
        batches.load_state_dict(ckpt)
        torch.set_rng_state(ckpt["torch_rng"])
        start = int(ckpt["step"])
        budget.load_state_dict(ckpt.get("budget"))
        stopped_by = ckpt.get("stopped_by")  # a budget ended this run at its step: it is finished
        budget.seconds = run.trained_seconds(resumed_at=start)
        cpu_before = run.trained_cpu_seconds(resumed_at=start)
    else:
        torch.manual_seed(stream_seed(rc.seed, "init"))  # the global generator too: identical runs, identical files
    budget.cpu_seconds = cpu_before or 0.0  # sessions that did not record it: counted as none
    if place.main:
        run.truncate_metrics(start)
    record = Session.start(run if place.main else None, start, place.record(),
                           probe_every=machine.PROBE_EVERY if rc.speed_probe and place.device.type == "cpu" else 0.0)
    return _Training(cfg, run, method, batches, place, budget, record, start, stopped_by, ckpt is not None,
                    cpu_before, step=start)


def _train_loop(cfg: ResolvedConfig, run: RunDir, ckpt: dict[str, Any] | None, method: Method, batches: Any,
                place: Placement, *, progress: bool, stop_after: int | None, echo: bool = False) -> TrainResult:
    """``progress``: the bar and the graphs fallback's line; ``echo``: lines said whatever the bar (the compile
    time of a compiled step: without it a --no-progress run would record it in run.json only)."""
    rc, ds = cfg.run, cfg.dataset
    t = _begin(cfg, run, ckpt, method, batches, place)
    if t.start >= rc.steps or t.stopped_by is not None:
        return _finished_before(t, progress)
    t.logger = metrics_logger(run, t.start, rc, cfg.to_dict()) if place.main else None
    end = rc.steps if stop_after is None else min(rc.steps, stop_after)
    say = (lambda why: print(f"graphs: {why}; the run goes on eagerly (graphs=off skips the attempt)", flush=True)
           ) if progress else None
    t.runner = graphs.runner(method, place, t.budget, tensor_lrs=rc.lr_schedule != "constant",
                             strict=rc.graphs != "auto", on_fallback=say,
                             say=(lambda line: print(line, flush=True)) if echo else None)
    bar = tqdm(total=rc.steps, initial=t.start, disable=not progress, desc=f"{cfg.method}/{cfg.data}",
               dynamic_ncols=True, mininterval=0.5)
    stop = StopAtStepEnd(active=place.processes == 1)
    try:
        stop.install()
        end = _steps(t, end, bar, stop)
        stop.restore()  # from here on (final evaluation, plots) a signal stops at once: finishing is resumable
        t.budget.stop()
        bar.close()
        t.record.stop_clock()  # the training loop only: the final evaluation is not training
        finished = end == rc.steps or t.stopped_by is not None
        if finished and place.main:
            t.note_graphs()
            t.record.evaluating(end)  # a kill in the (long) final evaluation keeps the training loop's record
            if t.stopped_by is not None and progress:
                print(f"{t.stopped_by}: the budget is used up at step {end} ({t.budget.total_evals} network "
                      f"evaluations, {t.budget.seconds + t.record.times()[0]:.0f} s of training); finishing the "
                      f"run there", flush=True)
            method.recipe.use_averaged()  # training is over: the averages (EMA) are evaluated, plotted, reported
            final_eval(method, ds, cfg, run, t.logger, progress, end)
    except BaseException as exc:
        t.note_graphs()
        t.record.fail(t.step, exc)  # the record says how the session ended, not "running" for ever
        raise
    finally:
        stop.restore()
        t.budget.stop()
        bar.close()
        if t.logger is not None:
            t.logger.close()
    if not place.main:
        return TrainResult(run.path, {}, method, t.start, place.rank)
    t.note_graphs()
    t.record.end(end)
    if not finished:
        return t.result()
    return t.result(finish(method, ds, cfg, run, progress=progress, step=end,
                           budget=t.budget.report(end, t.stopped_by)))


_BUDGETS = (None, "max_evals", "max_seconds", "max_cpu_seconds")


def _used_up(t: _Training) -> str | None:
    """Which budget is used up at this step (``Budget.used_up``); a budget in seconds under several processes by
    rank 0's clocks, so that every process stops at the same step."""
    used = t.budget.used_up(*t.record.times())
    rc = t.cfg.run
    if t.place.world is None or not (rc.max_seconds or rc.max_cpu_seconds):
        return used
    return _BUDGETS[distributed.rank0_choice(_BUDGETS.index(used), t.place.world, t.place.device)]


def _steps(t: _Training, end: int, bar: tqdm, stop: StopAtStepEnd) -> int:
    """The steps after ``t.start`` up to ``end``, or up to the step at which a budget is used up (returned)."""
    rc, method = t.cfg.run, t.method
    has_buffers = t.place.processes > 1 and any(True for m in method.networks.values() for _ in m.buffers())
    stream = t.batches.stream(t.start, end, num_workers=rc.num_workers)
    t.record.clock()
    t.budget.start()
    t.record.maybe_probe()  # the machine's speed as the loop starts (run option speed_probe)
    for step, batch in zip(range(t.start + 1, end + 1), stream):
        t.step = step
        batch = t.place.to_device(batch)
        method.recipe.before_step(step)
        method.prepare_step(step)
        metrics = t.run_steps.step(batch, step)
        if has_buffers and t.place.world is not None:
            distributed.broadcast_buffers(method, t.place.world)
        t.log(step, end, metrics, bar)
        t.evaluate(step)
        t.record.maybe_probe()
        t.stopped_by = _used_up(t)
        if t.stopped_by is not None:
            end = step  # the budget is used up: this step is the run's last
        # read once: a signal that lands after this line (during the checkpoint, the bar) is this step's no more,
        # and stops the run after the next one, with its checkpoint; read twice, a signal between the two reads
        # stopped the run here without one
        requested = stop.requested
        keep = rc.keep_checkpoints and rc.is_eval_step(step)
        if keep or step % rc.ckpt_every == 0 or step == end or requested is not None:
            t.checkpoint(step, keep=keep)
        bar.update(1)
        fault_point(f"step:{step}")
        if t.stopped_by is not None:
            break
        if requested is not None:
            raise KeyboardInterrupt(f"{requested} at step {step}: checkpoint saved")
    return end


def _finished_before(t: _Training, progress: bool) -> TrainResult:
    """A run whose steps were all done (or whose budget ended it) in an earlier session: its summary, anew."""
    if not t.place.main:
        return TrainResult(t.run.path, {}, t.method, t.start, t.place.rank)
    t.method.recipe.use_averaged()
    last = t.start if t.stopped_by is not None else t.cfg.run.steps
    summary = finish(t.method, t.cfg.dataset, t.cfg, t.run, step=last, budget=t.budget.report(last, t.stopped_by))
    t.record.end(last, timed=False)
    return TrainResult(t.run.path, summary, t.method, t.start, train_seconds=t.budget.seconds,  # nothing trained now
                       train_cpu_seconds=t.run.trained_cpu_seconds(), finished_before=True)


def _rank0_rng(world: distributed.World | None):
    """Rank 0's evaluation during a distributed run must not move its global RNG away from the other processes'."""
    return torch.random.fork_rng(devices=[]) if world is not None else contextlib.nullcontext()


def _kept(saved_any: bool) -> str:
    return ("the last good checkpoint is kept" if saved_any else
            "no checkpoint had been written yet, so the run starts again from step 0")


__all__ = ["TrainResult", "build_method", "train"]
