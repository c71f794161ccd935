"""The one small training loop. It knows nothing about losses: it feeds batches to ``method.train_step``,
logs what comes back, evaluates, checkpoints atomically and resumes exactly.

Configuration is resolved in this order: the method's Config defaults → ``presets/<method>.toml`` →
``presets/<method>_<data>.toml`` → ``--config FILE`` → ``key=value`` overrides. A file has ``[run]`` and
``[method]`` tables; a flat override goes to whichever of the two has that key.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import torch
from tqdm.auto import tqdm

from . import __version__, parallel
from .config import apply_overrides, field_types, load_toml, to_dict
from .data import get_dataset
from .data.batches import make_batches
from .errors import DivergenceError, EbmlabError
from .methods import Method, get_method
from .options import validate
from .runs import CHECKPOINT_FORMAT, MetricsLogger, RunDir, fault_point, read_json, write_json


@dataclass(frozen=True)
class RunConfig:
    steps: int = 5000
    batch_size: int = 256
    seed: int = 0
    log_every: int = 50
    eval_every: int = 0  # 0: evaluate only at the end
    ckpt_every: int = 1000
    eval_samples: int = 2500
    eval_density: bool = True
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    threads: int = 1  # torch CPU threads; 1 is fastest for the small 2D networks (0: torch's default)
    tensorboard: bool = True
    plots: bool = True
    data_dir: str = ""  # where local copies of MNIST/CIFAR-10 live (else the EBMLAB_DATA environment variable)
    image_size: int = 0  # a user's image folder is resized to this side (0: keep the images' own size)
    batches: Literal["auto", "epochs", "iid", "balanced"] = "auto"  # auto: iid for toy2d (as always), else epochs
    num_workers: int = 0  # > 0: batches are prepared by a DataLoader with this many worker processes
    # the training recipe shared by all methods (ebmlab.recipe)
    lr_schedule: Literal["constant", "linear", "cosine", "step"] = "constant"
    lr_decay_start: int = 0
    lr_end_factor: float = 0.0
    lr_step_every: int = 0
    lr_step_factor: float = 0.1
    grad_clip: float = 0.0  # 0: off
    ema: float = 0.0  # 0: off
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: autocast of each training step (see _autocast)
    channels_last: bool = False  # image data: networks and batches in channels-last memory format


@dataclass(frozen=True)
class ResolvedConfig:
    method: str
    data: str
    run: RunConfig
    method_config: Any
    presets: tuple[str, ...] = ()  # the preset files applied, in order
    sources: dict[str, str] = field(default_factory=dict, compare=False)  # option -> where its value came from

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "data": self.data, "run": to_dict(self.run),
                "method_config": to_dict(self.method_config), "presets": list(self.presets),
                "ebmlab_version": __version__}

    def source(self, name: str) -> str:
        return self.sources.get(name, "default")

    def echo(self) -> str:
        """The resolved configuration in one compact block: non-default values marked with their source."""
        lines = [f"{self.method} on {self.data}; presets applied: {', '.join(self.presets) or 'none'}"]
        for title, cfg in (("run", self.run), (self.method, self.method_config)):
            items = []
            for f in fields(cfg):
                v = getattr(cfg, f.name)
                v = ",".join(map(str, v)) if isinstance(v, tuple) else v
                src = self.source(f.name)
                items.append(f"{f.name}={v}" + ("" if src == "default" else f" [{_short(src)}]"))
            lines.append(f"  {title}: " + "  ".join(items))
        return "\n".join(lines)


def _short(source: str) -> str:
    return {"command line": "cli"}.get(source, source.removeprefix("preset "))


def _preset(name: str) -> dict[str, Any]:
    f = resources.files("ebmlab") / "presets" / f"{name}.toml"
    if not f.is_file():
        return {}
    return load_toml(Path(str(f)))


def _apply_file(run: RunConfig, mcfg: Any, table: dict[str, Any], source: str, method: str,
                sources: dict[str, str]) -> tuple[RunConfig, Any]:
    unknown = set(table) - {"run", "method"}
    if unknown:
        raise EbmlabError(f"{source}: unknown table(s) {sorted(unknown)}; expected [run] and [method]")
    run = apply_overrides(run, table.get("run", {}), what=f"[run] in {source}")
    mcfg = apply_overrides(mcfg, table.get("method", {}), what=f"[method] of {method} in {source}")
    sources.update({k: source for k in table.get("run", {})})
    sources.update({k: source for k in table.get("method", {})})
    return run, mcfg


def dataset_of(data: str, run: RunConfig):
    return get_dataset(data, data_dir=run.data_dir or None, image_size=run.image_size)


def preset_names(method: str, data: str, kind: str) -> list[str]:
    """The presets applied, in order: the method's, its data kind's (binary data take the image presets, then
    their own), its data set's."""
    kinds = {"toy2d": [], "image": ["image"], "binary": ["image", "binary"], "vectors": ["vectors"]}[kind]
    names = [method] + [f"{method}_{k}" for k in kinds]
    if "/" not in data and not data.endswith((".npz", ".npy")):
        names.append(f"{method}_{data}")
    return names


def resolve_config(method: str, data: str, *, config_file: str | Path | None = None,
                   overrides: dict[str, Any] | None = None) -> ResolvedConfig:
    cls = get_method(method)
    run_keys, m_keys = field_types(RunConfig), field_types(cls.Config)
    # the data set (and so its kind, which picks the presets) may depend on the run's data_dir / image_size
    file_table = load_toml(config_file) if config_file is not None else {}
    run0 = apply_overrides(RunConfig(), {k: v for k, v in file_table.get("run", {}).items()
                                         if k in ("data_dir", "image_size")}, what="run")
    run0 = apply_overrides(run0, {k: v for k, v in (overrides or {}).items() if k in ("data_dir", "image_size")},
                           what="run")
    kind = dataset_of(data, run0).kind
    run, mcfg, sources, applied = RunConfig(), cls.Config(), {}, []
    for name in preset_names(method, data, kind):
        table = _preset(name)
        if table:
            applied.append(name)
            run, mcfg = _apply_file(run, mcfg, table, f"preset {name}", method, sources)
    if config_file is not None:
        run, mcfg = _apply_file(run, mcfg, file_table, str(config_file), method, sources)
    r_over, m_over = {}, {}
    for k, v in (overrides or {}).items():
        if k in run_keys:
            r_over[k] = v
        elif k in m_keys:
            m_over[k] = v
        else:
            raise EbmlabError(
                f"unknown option {k!r} for method {method}; run options: {', '.join(run_keys)}; "
                f"{method} options: {', '.join(m_keys)}"
            )
    run = apply_overrides(run, r_over, what="run")
    mcfg = apply_overrides(mcfg, m_over, what=method)
    sources.update({k: "command line" for k in (overrides or {})})
    validate(run, what="run options")
    validate(mcfg, method=cls, what=f"{method} options")
    return ResolvedConfig(method, data, run, mcfg, tuple(applied), sources)


# options renamed since run directories were written with the old name: {method family: {old: new}}
RENAMED = {"bib": {"eval_samples": "bound_samples"}}  # it shared its name with the run option


def _renamed(cls: type, options: dict[str, Any]) -> dict[str, Any]:
    from .options import method_keys

    table = {old: new for key in method_keys(cls) for old, new in RENAMED.get(key, {}).items()}
    return {table.get(k, k): v for k, v in options.items()}


def config_from_dict(d: Any, where: str | Path = "config.json") -> ResolvedConfig:
    """The configuration saved in a run directory; a file that was emptied or edited by hand is refused."""
    try:
        if not isinstance(d, dict) or not isinstance(d.get("run"), dict) or not isinstance(d.get("method_config"), dict) \
                or not isinstance(d.get("method"), str) or not isinstance(d.get("data"), str):
            raise EbmlabError("expected an object with keys method, data, run, method_config")
        cls = get_method(d["method"])
        run = apply_overrides(RunConfig(), d["run"], what="run")
        mcfg = apply_overrides(cls.Config(), _renamed(cls, d["method_config"]), what=d["method"])
        validate(run, what="run options")
        validate(mcfg, method=cls, what=f"{d['method']} options")
    except EbmlabError as exc:
        raise EbmlabError(f"{where} is not a valid ebmlab run configuration ({exc}); it was damaged or edited by "
                          f"hand — restore it, or start a new run with another --out") from None
    return ResolvedConfig(d["method"], d["data"], run, mcfg, tuple(d.get("presets", ())))


def pick_device(name: str, world: parallel.World | None = None) -> torch.device:
    """The device of this process: with several processes on GPUs, the one of its local rank."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise EbmlabError("device=cuda was requested but CUDA is not available; use device=cpu or device=auto")
    if name == "cuda" and world is not None:
        torch.cuda.set_device(world.local_rank)
        return torch.device("cuda", world.local_rank)
    return torch.device(name)


def build_method(cfg: ResolvedConfig, device: torch.device | None = None,
                 world: parallel.World | None = None) -> Method:
    """Construct the method with parameters initialised from the run seed (without touching global RNG state);
    with several processes, wired to average gradients over them (``ebmlab.parallel``)."""
    cls = get_method(cfg.method)
    ds = dataset_of(cfg.data, cfg.run)
    device = device or pick_device(cfg.run.device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.run.seed)
        gen = torch.Generator(device=device).manual_seed(cfg.run.seed + 1)
        try:
            method = cls(cfg.method_config, spec=ds.spec, device=device, generator=gen)
        except ValueError as exc:  # an architecture that does not fit the data (nets.build says which)
            raise EbmlabError(f"{cfg.method} on {cfg.data}: {exc}") from None
    if cfg.run.channels_last and ds.spec.is_image:
        for m in {**method.networks, **method.frozen}.values():
            m.to(memory_format=torch.channels_last)
    if world is not None:
        parallel.attach(method, world)  # before the recipe's hooks: its gradient clip sees the averaged gradient
    from .recipe import Recipe

    method.recipe = Recipe(method, cfg.run)
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
    out = Path(out) if out is not None else Path("runs") / f"{method}-{data}-s{cfg.run.seed}"
    check_output_dir(out)
    run = RunDir(out)
    if run.exists():
        saved = config_from_dict(read_json(run.config_path), run.config_path).to_dict()
        if saved.get("method") != method:
            raise EbmlabError(f"{out} holds a run of method {saved.get('method')!r}, not {method!r}; "
                              f"choose another --out for a new run")
        if saved.get("data") != data:
            raise EbmlabError(f"{out} holds a run on data set {saved.get('data')!r}, not {data!r}; choose another --out")
        now = cfg.to_dict()
        diffs = [f"{sect}.{k}: saved {saved[sect].get(k)!r}, now {v!r}"
                 for sect in ("run", "method_config") for k, v in now[sect].items()
                 if not (sect == "run" and k == "steps") and saved[sect].get(k) != v]
        if diffs:
            raise EbmlabError(f"{out} was created with different options ({'; '.join(diffs)}); "
                              f"resume with the same options or choose another --out")
    # everything that can refuse the options (the data set, the device, the method's own checks) runs before the
    # run directory is made or config.json written, so a refused command leaves nothing behind
    rc = cfg.run
    if rc.threads > 0:
        torch.set_num_threads(rc.threads)
    ds = dataset_of(cfg.data, rc)
    getattr(ds, "arrays", None)  # read (and checksum) the files now: a missing or corrupt one is refused here
    world = _join(rc, parallel.world_size_from_env())
    try:
        device = pick_device(rc.device, world)
        method = build_method(cfg, device, world)
        main = world is None or world.is_main
        if echo and main:
            print(cfg.echo(), flush=True)
        if main:
            if not run.exists():
                out.mkdir(parents=True, exist_ok=True)
            run.clean_temporary()
            write_json(run.config_path, cfg.to_dict())
        parallel.barrier(world)
        return _train_loop(cfg, run, ds, method, progress=progress and main, stop_after=stop_after, world=world)
    finally:
        parallel.finish(world)


def _join(rc: RunConfig, size: int) -> parallel.World | None:
    """Join torchrun's process group when launched by it, after a batch the processes cannot share is refused."""
    if size > 1 and rc.batch_size % size:
        raise EbmlabError(f"batch_size={rc.batch_size} is not divisible by the {size} processes; choose a "
                          f"global batch that is a multiple of --nproc_per_node × nodes")
    return parallel.init(rc.device) if size > 1 else None


def check_output_dir(out: Path) -> None:
    """Refuse an output directory that cannot be created or written, before any work is done."""
    import os

    for part in out.parts:
        if len(part.encode()) > 255:
            raise EbmlabError(f"--out {out}: the name {part[:40]}... is {len(part.encode())} bytes, longer than the "
                              f"file system allows (255); choose a shorter name")
    if out.exists() and not out.is_dir():
        raise EbmlabError(f"--out {out} is an existing file, not a directory; choose another --out")
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise EbmlabError(f"--out {out} goes through {probe}, which is a file; choose another --out")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise EbmlabError(f"--out {out}: {probe} is not writable (read-only file system or no permission); "
                          f"choose a directory you can write to")


def _autocast(method: Method, rc: RunConfig):
    """bf16 autocast around a training step (precision=bf16). bfloat16 keeps float32's exponent range, so no
    gradient scaler is needed; fp16 is not offered because its scaler would have to wrap each of the methods' own
    backward passes, gradient penalties (double backward) included."""
    if rc.precision == "bf16":
        return torch.autocast(method.device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _train_loop(cfg: ResolvedConfig, run: RunDir, ds, method, *, progress: bool,
                stop_after: int | None, world: parallel.World | None = None) -> TrainResult:
    rc = cfg.run
    main = world is None or world.is_main
    batches = make_batches(ds, rc.batches, rc.batch_size, rc.seed, rank=world.rank if world else 0,
                           world=world.size if world else 1)
    start = 0
    ckpt = run.load_checkpoint(cfg.method)
    if ckpt is not None:
        method.load_state_dict(ckpt["method_state"])
        batches.load_state_dict(ckpt)
        torch.set_rng_state(ckpt["torch_rng"])
        start = int(ckpt["step"])
    else:
        torch.manual_seed(rc.seed)  # the global generator too, so two identical runs save identical checkpoints
    record = None
    if main:
        run.truncate_metrics(start)
        record = run.start_record(cfg, method.device, start, world.size if world else 1)
    recipe = method.recipe
    if start >= rc.steps:
        if not main:
            return TrainResult(run.path, {}, method, start, world.rank)
        recipe.use_averaged()
        summary = _finish(method, ds, cfg, run)
        run.end_record(record, rc.steps, 0.0)
        return TrainResult(run.path, summary, method, start)

    logger = MetricsLogger(run, start, tensorboard=rc.tensorboard) if main else None
    end = rc.steps if stop_after is None else min(rc.steps, stop_after)
    saved_any = ckpt is not None
    has_buffers = world is not None and any(True for m in method.networks.values() for _ in m.buffers())
    channels_last = rc.channels_last and ds.spec.is_image

    def checkpoint(step: int) -> None:
        nonlocal saved_any
        if not _params_finite(method):
            raise DivergenceError(f"parameters became non-finite by step {step}; {_kept(saved_any)}")
        if main:
            run.save_checkpoint({"format": CHECKPOINT_FORMAT, "method": cfg.method, "step": step,
                                 "method_state": method.state_dict(), **batches.state_dict(),
                                 "torch_rng": torch.get_rng_state()})
        saved_any = True

    keys = getattr(method, "progress_keys", ())
    bar = tqdm(total=rc.steps, initial=start, disable=not progress, desc=f"{cfg.method}/{cfg.data}",
               dynamic_ncols=True, mininterval=0.5)
    t0, step = time.perf_counter(), start
    try:
        stream = batches.stream(start, end, num_workers=rc.num_workers)
        for step, batch in zip(range(start + 1, end + 1), stream):
            batch = batch.to(method.device, non_blocking=True)
            if channels_last and batch.dim() == 4:
                batch = batch.contiguous(memory_format=torch.channels_last)
            recipe.before_step(step)
            with parallel.training_step(world), _autocast(method, rc):
                metrics = method.train_step(batch, step)
            recipe.after_step()
            if has_buffers:
                parallel.broadcast_buffers(method, world)
            if step % rc.log_every == 0 or step == end:  # the only point where metrics leave the device
                metrics = parallel.reduce_metrics(metrics, world)
                _check_finite(metrics, step, saved_any, rc.log_every)
                if main and step % rc.log_every == 0:
                    metrics["steps_per_s"] = (step - start) / (time.perf_counter() - t0)
                    logger.log(step, "train", metrics)
                    shown = [k for k in keys if k in metrics] or list(metrics)[:3]
                    bar.set_postfix({k: f"{metrics[k]:.3g}" for k in shown}, refresh=False)
            if main and rc.eval_every and step % rc.eval_every == 0 and step < rc.steps:
                with recipe.averaged(), _rank0_rng(world):
                    logger.log(step, "eval", evaluate(method, ds, rc, step))
                    _log_grid(logger, method, ds, step)
            if step % rc.ckpt_every == 0 or step == end:
                checkpoint(step)
            bar.update(1)
            fault_point(f"step:{step}")
        bar.close()
        if end == rc.steps and main:
            recipe.use_averaged()  # training is over: the averages (EMA) are what is evaluated, plotted, reported
            _final_eval(method, ds, cfg, run, logger, progress)
    finally:
        bar.close()
        if logger is not None:
            logger.close()
    elapsed = time.perf_counter() - t0
    if not main:
        return TrainResult(run.path, {}, method, start, world.rank)
    run.end_record(record, end, (end - start) / elapsed if elapsed > 0 else 0.0)
    if end < rc.steps:
        return TrainResult(run.path, {}, method, start)
    return TrainResult(run.path, _finish(method, ds, cfg, run, progress=progress), method, start)


def _rank0_rng(world: parallel.World | None):
    """Rank 0's evaluation during a distributed run must not move its global RNG away from the other processes'."""
    return torch.random.fork_rng(devices=[]) if world is not None else contextlib.nullcontext()


def _kept(saved_any: bool) -> str:
    return ("the last good checkpoint is kept" if saved_any else
            "no checkpoint had been written yet, so the run starts again from step 0")


def _final_eval(method: Method, ds, cfg: ResolvedConfig, run: RunDir, logger: MetricsLogger | None,
                progress: bool = False) -> dict[str, Any]:
    """The final evaluation line of metrics.jsonl: reused if a previous session logged it, else computed."""
    rc = cfg.run
    for rec in reversed(run.read_metrics()):
        if rec.get("kind") == "eval" and rec.get("step") == rc.steps:
            return {k: v for k, v in rec.items() if k not in ("step", "kind")}
    if progress:
        print(f"final evaluation ({rc.eval_samples} samples)...", flush=True)
    final = evaluate(method, ds, rc, rc.steps)
    fault_point("final_eval")
    own = logger is None
    logger = logger or MetricsLogger(run, rc.steps, tensorboard=rc.tensorboard)
    try:
        logger.log(rc.steps, "eval", final)
        _log_grid(logger, method, ds, rc.steps)
    finally:
        if own:
            logger.close()
    return final


def _log_grid(logger: MetricsLogger, method: Method, ds, step: int) -> None:
    """A grid of 64 samples (fixed seed) into TensorBoard at evaluation steps, for image data."""
    if logger.tb is None or not ds.spec.is_image:
        return
    from .plots import image_grid, model_grid_samples

    logger.image(step, "samples", image_grid(model_grid_samples(method), ds.spec.value_range or (0.0, 1.0)))


def evaluate(method: Method, ds, rc: RunConfig, step: int) -> dict[str, Any]:
    from .metrics import evaluate_method

    return evaluate_method(method, ds, n_samples=rc.eval_samples, seed=rc.seed + 10_000 + step, density=rc.eval_density)


def protocol(ds, rc: RunConfig) -> dict[str, Any]:
    """How the reported numbers were computed (sample counts, seeds, splits, feature extractor)."""
    out = {"eval_samples": rc.eval_samples, "test_split": f"{ds.n_test} fixed test points"}
    if ds.kind == "toy2d":
        out.update(hq_threshold="3 sigma", density="grid quadrature (exact up to grid error)")
    elif ds.kind in ("image", "binary") and (ds.train_labels is not None or getattr(ds, "stacked", False)):
        from .metrics.classifier import classifier_name

        out["features"] = (f"penultimate layer of the {classifier_name(ds)} domain classifier (clf_*; not Inception, "
                           f"not FID); real_vs_real compares {rc.eval_samples} train images with the test split")
        if getattr(ds, "stacked", False):
            out["modes"] = "26,000 samples, each channel labelled by the base classifier; KL(q || uniform over 1000)"
    else:
        out["distances"] = "MMD^2 (RBF, median bandwidth), sliced W1 (200 directions), exact W1 up to 3000 points"
    return out


def _finish(method: Method, ds, cfg: ResolvedConfig, run: RunDir, progress: bool = False) -> dict[str, Any]:
    """The end of a run: final evaluation line, plots, then summary.json, written last so that it marks a finished
    run; a kill anywhere in here is completed by running the same command again."""
    from .metrics import real_reference

    rc = cfg.run
    if run.summary_path.is_file():
        done = read_json(run.summary_path)
        if isinstance(done, dict) and done.get("step") == rc.steps:
            return done
    metrics = _final_eval(method, ds, cfg, run, None, progress)
    summary = {"method": cfg.method, "data": cfg.data, "step": rc.steps, "seed": rc.seed, "metrics": metrics,
               "real_vs_real": real_reference(ds, rc.eval_samples), "protocol": protocol(ds, rc)}
    if rc.plots:
        from .plots import plot_run

        if progress:
            print("plots...", flush=True)
        plot_run(method, ds, run)
    if rc.tensorboard:
        _tensorboard_final(run, cfg, metrics)
    fault_point("summary")
    write_json(run.summary_path, summary)
    return summary


def _tensorboard_final(run: RunDir, cfg: ResolvedConfig, metrics: dict[str, Any]) -> None:
    """The run's plots as images and its options with the final metrics as hparams (TensorBoard's HPARAMS tab)."""
    from matplotlib.image import imread
    from torch.utils.tensorboard import SummaryWriter

    from .present import is_bookkeeping

    rc = cfg.run
    with SummaryWriter(str(run.tb)) as tb:
        for png in sorted(run.plots.glob("*.png")) if run.plots.is_dir() else []:
            img = imread(png)
            tb.add_image(f"plots/{png.stem}", img[..., :3], rc.steps, dataformats="HWC")
        hp = {"method": cfg.method, "data": cfg.data}
        for section in (to_dict(rc), to_dict(cfg.method_config)):
            for k, v in section.items():
                hp[k] = ",".join(map(str, v)) if isinstance(v, list) else v
        final = {f"final/{k}": float(v) for k, v in metrics.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool) and not is_bookkeeping(k, v)
                 and math.isfinite(v)}
        tb.add_hparams(hp, final, run_name="hparams", global_step=rc.steps)


def load_run(run_dir: str | Path, device: str | None = None) -> tuple[ResolvedConfig, Method, int]:
    """Rebuild the method of a run directory from its latest checkpoint: (config, method, step)."""
    run = RunDir(run_dir)
    cfg = config_from_dict(run.require(), run.config_path)
    method = build_method(cfg, pick_device(device or cfg.run.device))
    ckpt = run.load_checkpoint(cfg.method)
    if ckpt is None:
        raise EbmlabError(f"{run_dir} has no checkpoint yet; train it first with `ebmlab train {cfg.method} --data {cfg.data} --out {run_dir}`")
    method.load_state_dict(ckpt["method_state"])
    method.recipe.use_averaged()  # evaluation and sampling use the moving averages when the run keeps them
    return cfg, method, int(ckpt["step"])


def sample_run(run_dir: str | Path, n: int, *, seed: int = 0, guided: Any = None, base_only: bool = False,
               progress: bool = False) -> torch.Tensor:
    """n samples [n, D] from a trained run; the same seed gives the same samples.

    ``guided`` (a :class:`ebmlab.guided.GuidedConfig`) draws energy-guided latent samples instead, from any method
    with both a generator and an energy; ``base_only`` draws from the generator alone.
    """
    if n < 1:
        raise EbmlabError(f"-n must be a positive number of samples, got {n}")
    cfg, method, _ = load_run(run_dir)
    method.train(False)
    gen = torch.Generator(device=method.device).manual_seed(seed)
    if guided is not None:
        from .guided import guided_samples

        return guided_samples(method, n, guided, generator=gen, progress=progress)[0].detach().cpu()
    with torch.no_grad():
        if base_only:
            return method.generate(torch.randn(n, method.latent_dim, generator=gen, device=method.device)).cpu()
        return method.sample(n, generator=gen).cpu()


def evaluate_run(run_dir: str | Path, *, probe: bool = False, inception: str | None = None,
                 ais_steps: int = 0, progress: bool = False) -> dict[str, Any]:
    """Evaluate the latest checkpoint of a run: metrics plus the real-vs-real reference; ``probe`` adds the
    linear-probe test error of the energy's/discriminator's frozen features (``metrics.probe``)."""
    from .metrics import real_reference

    cfg, method, step = load_run(run_dir)
    ds = dataset_of(cfg.data, cfg.run)
    if progress:
        import sys

        extra = (", linear probe" if probe else "") + (", AIS" if ais_steps else "") + (", FID/IS" if inception else "")
        print(f"evaluating {cfg.method} on {cfg.data} at step {step}: {cfg.run.eval_samples} samples{extra}...",
              file=sys.stderr, flush=True)
    metrics = evaluate(method, ds, cfg.run, step)
    if probe:
        from .metrics.probe import linear_probe

        metrics.update(linear_probe(method, ds, seed=cfg.run.seed))
    if ais_steps > 0:
        if not method.has_energy:
            raise EbmlabError(f"--ais needs a method with an energy; {cfg.method} has none")
        from .metrics.likelihood import ais_report

        metrics.update(ais_report(method, ds, n_steps=ais_steps, seed=cfg.run.seed))
    reference = dict(real_reference(ds, cfg.run.eval_samples))
    if inception is not None:  # real FID/IS with the user's Inception weights (metrics.inception)
        from .metrics.inception import fid_is

        if not ds.spec.is_image:
            raise EbmlabError(f"FID/IS need image data; {cfg.data} holds {ds.kind} samples")
        n = min(cfg.run.eval_samples, ds.n_test)
        method.train(False)
        with torch.no_grad():
            x = method.sample(n, generator=torch.Generator(device=method.device).manual_seed(cfg.run.seed + 20_000))
        vr = ds.spec.value_range or (0.0, 1.0)
        metrics.update(fid_is(x.cpu(), ds.test[:n], inception, vr))
        reference.update(fid_is(ds.train[:n], ds.test[:n], inception, vr))
    return {"method": cfg.method, "data": cfg.data, "step": step, "metrics": metrics,
            "real_vs_real": reference, "protocol": protocol(ds, cfg.run)}


__all__ = ["ResolvedConfig", "RunConfig", "TrainResult", "build_method", "evaluate_run", "load_run",
           "resolve_config", "sample_run", "train"]
