"""Train, evaluate and apply super-resolution models: the Python API behind ``ebmlab sr``.

A run directory holds ``config.json`` (model, data, scale, seed, steps, options), ``checkpoint.pt`` (the model's
state, its optimisers and the step; written atomically, loaded with ``weights_only=True``), ``metrics.jsonl``,
``run.json`` (one record per session), ``summary.json`` and ``grid.png`` after evaluation. Training resumes
exactly: batches are drawn from a generator seeded by (seed, step), so a killed run re-run with the same command
ends with the same parameters as an uninterrupted one. SIGINT or SIGTERM lets the step under way finish, checkpoints
it (with the metrics gathered since the last log line) and stops the run as interrupted, as ``ebmlab train`` does.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..config import parse_override_strings
from ..errors import EbmlabError, did_you_mean, require_int
from ..atomic import atomic_write_bytes, read_json, write_json
from ..runs import CHECKPOINT_FORMAT, RunDir
from ..sessions import Session, StopAtStepEnd
from ..trackers import MetricsLogger
from . import ops
from .base import SRModel, make_config
from .bicubic import Bicubic
from .data import get_sr_data
from .mse import MSE
from .stats import Stats
from .tv import TV

MODELS: dict[str, type[SRModel]] = {"bicubic": Bicubic, "tv": TV, "mse": MSE, "stats": Stats}
CONFIG_FORMAT = "ebmlab-sr-run-1"
DEFAULT_STEPS = {"fashion": 3000, "skimage": 3000}


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """``key=value`` strings as a dict (each value is coerced to its option's type by :func:`build_model`)."""
    return parse_override_strings(pairs or [])


def build_model(model: str, scale: int, options: dict[str, Any]) -> SRModel:
    """The model with its options coerced and checked like a method's (``sr.base.make_config``)."""
    if model not in MODELS:
        raise EbmlabError(f"unknown super-resolution model {model!r}{did_you_mean(model, MODELS)} (choose one of "
                          f"{', '.join(MODELS)})")
    if scale < 2 or scale > 8:
        raise EbmlabError(f"scale must be an integer from 2 to 8, got {scale}")
    cls = MODELS[model]
    return cls(scale, make_config(cls, options))


@contextlib.contextmanager
def cpu_threads(n: int | None) -> Iterator[int]:
    """torch's CPU threads set to ``n`` for the block (0 or None: left as they are), restored after; yields the
    number in use. Under load one thread can be faster than two (``benchmarks/threads``)."""
    before = torch.get_num_threads()
    if n is not None:
        require_int("--threads", n, 0, " (0: torch's default)")
    if n:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def _ckpt_name(model: str) -> str:
    return f"sr-{model}"


def _batch(data_train: Tensor, batch_size: int, seed: int, step: int) -> Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return data_train[torch.randint(len(data_train), (batch_size,), generator=g)]


def train_sr(data: str, model: str, *, out: str | Path, scale: int = 4, steps: int | None = None, seed: int = 0,
             options: dict[str, Any] | None = None, data_dir: str | None = None, crop: int = 64,
             progress: bool = True, ckpt_every: int = 500, log_every: int = 50, evaluate: bool = True,
             n_eval: int = 500, threads: int = 0) -> dict[str, Any]:
    """Train (or fit) ``model`` on ``data`` at ×``scale`` into the run directory ``out``; resume if it exists.
    ``ckpt_every`` must be a multiple of ``log_every`` (so that a resumed run logs exactly what it would have).
    ``threads``: torch's CPU threads for the training and the evaluation (0: torch's default), kept in the run's
    config for its later ``sr eval`` and ``sr upscale`` (a resume may change it)."""
    with cpu_threads(threads):
        return _train_sr(data, model, out=out, scale=scale, steps=steps, seed=seed, options=options,
                         data_dir=data_dir, crop=crop, progress=progress, ckpt_every=ckpt_every,
                         log_every=log_every, evaluate=evaluate, n_eval=n_eval, threads=threads)


def _train_sr(data: str, model: str, *, out: str | Path, scale: int, steps: int | None, seed: int,
              options: dict[str, Any] | None, data_dir: str | None, crop: int, progress: bool, ckpt_every: int,
              log_every: int, evaluate: bool, n_eval: int, threads: int) -> dict[str, Any]:
    if log_every < 1 or ckpt_every < 1 or ckpt_every % log_every:
        raise EbmlabError(f"ckpt_every ({ckpt_every}) must be a positive multiple of log_every ({log_every})")
    for name, v, lo in (("--scale", scale, 2), ("--crop", crop, 1), ("--n-eval", n_eval, 1), ("--seed", seed, 0)):
        require_int(name, v, lo)
    if steps is not None:
        require_int("--steps", steps, 0)

    out = Path(out)
    run = RunDir(out)
    options = dict(options or {})
    steps, options = _check_resumable(run, out, {"model": model, "data": data, "scale": scale, "seed": seed}, steps,
                                      options)
    torch.manual_seed(seed)  # the initial weights depend on the seed alone
    net = build_model(model, scale, options)  # validates the options before anything is written
    if steps and not net.trainable:
        raise EbmlabError(f"--steps {steps}: the {model} model takes no training steps (it is fitted without "
                          f"gradient steps); leave --steps out (or give 0), or train mse or stats")
    sr_data = get_sr_data(data, scale=scale, data_dir=data_dir, crop=crop)
    steps = (DEFAULT_STEPS.get(data, 2000) if net.trainable else 0) if steps is None else steps
    cfg = {"format": CONFIG_FORMAT, "model": model, "data": data, "scale": scale, "seed": seed, "steps": steps,
           "options": net.options, "crop": crop, "data_dir": data_dir, "data_description": sr_data.description,
           "threads": threads}
    out.mkdir(parents=True, exist_ok=True)
    run.clean_temporary()
    write_json(run.config_path, cfg)
    start, fit_info, window = _restore(run, net, model, sr_data, progress)
    session = Session.start(run, start)
    if isinstance(net, Stats):
        net.total_steps = steps
    try:
        session.clock()
        _train_steps(run, net, model, data, sr_data, seed, start, steps, fit_info, window, progress, ckpt_every,
                     log_every)
        session.stop_clock()
    except BaseException as exc:
        session.fail(session.start_step, exc)
        raise
    session.end(steps)
    summary = {"model": model, "data": data, "scale": scale, "steps": steps, "fit": fit_info,
               "train_seconds": round(run.trained_seconds(from_rates=True), 1)}
    write_json(run.summary_path, summary)
    if evaluate:
        summary["test"] = evaluate_sr(out, n=n_eval, progress=progress, net=net, sr_data=sr_data)["test"]
    return summary


def _check_resumable(run: RunDir, out: Path, asked: dict[str, Any], steps: int | None,
                     options: dict[str, Any]) -> tuple[int | None, dict[str, Any]]:
    """A new run's directory checked, or an existing run's arguments (``asked`` and ``options``) checked against
    its config.json: (the steps to train to, the options to train with)."""
    from ..atomic import check_output_dir

    if not run.exists():
        check_output_dir(out)
        run.check_new()
        return steps, options
    cfg = read_json(run.config_path)
    if cfg.get("format") != CONFIG_FORMAT:
        raise EbmlabError(f"{out} holds a training run of another kind ({cfg.get('method', '?')}), not a "
                          f"super-resolution run; choose another --out")
    run.check_resume({**cfg, "options": cfg["options"]}, {**asked, "options": options})
    steps = cfg["steps"] if steps is None else steps
    if steps < cfg["steps"]:
        raise EbmlabError(f"{out} was started for {cfg['steps']} steps; --steps {steps} would end before it")
    return steps, cfg["options"]


def _restore(run: RunDir, net: SRModel, model: str, sr_data: Any, progress: bool
             ) -> tuple[int, dict[str, Any], dict[str, float]]:
    """The checkpoint's state into ``net`` (its step, fit record and the metrics gathered since its last log line,
    which a stop between two lines leaves), or the model fitted anew and saved at step 0."""
    state = run.load_checkpoint(_ckpt_name(model))
    if state is not None:
        net.load_state_dict(state["model"])
        for k, o in net.optimizers().items():
            o.load_state_dict(state["optimizers"][k])
        run.truncate_metrics(state["step"])
        return state["step"], state.get("fit", {}), dict(state.get("window") or {})
    if run.metrics_path.exists():
        run.metrics_path.unlink()
    fit_info = net.fit(sr_data, progress=progress)
    _save(run, net, model, 0, fit_info)
    return 0, fit_info, {}


def _train_steps(run: RunDir, net: SRModel, model: str, data: str, sr_data: Any, seed: int, start: int, steps: int,
                 fit_info: dict[str, Any], window: dict[str, float], progress: bool, ckpt_every: int,
                 log_every: int) -> None:
    """``window``: the latest value of each metric since the last log line (some, like the learned-Φ terms, are not
    produced at every step), as the checkpoint resumed from left it."""
    bs = int(net.options.get("batch_size", 64))
    bar = tqdm(total=steps, initial=start, disable=not progress or steps == 0, desc=f"sr {model}/{data}",
               dynamic_ncols=True)
    logger = MetricsLogger(run)  # the training runs' metrics.jsonl format
    stop = StopAtStepEnd(active=True)  # SIGINT/SIGTERM: this step finishes and is checkpointed, then the run stops
    try:
        stop.install()
        for step in range(start, steps):
            window.update(net.train_step(_batch(sr_data.train, bs, seed, step), step))
            bar.update(1)
            if (step + 1) % log_every == 0 or step + 1 == steps:
                m, window = window, {}
                if not all(np.isfinite(v) for v in m.values()):
                    raise EbmlabError(f"training diverged at step {step + 1} ({m}); the last checkpoint is kept — "
                                      f"lower lr and start a new run")
                logger.log(step + 1, "train", m)
                bar.set_postfix({k: f"{v:.4g}" for k, v in m.items()})
            requested = stop.requested  # read once (ebmlab.trainer: a signal between two reads lost the checkpoint)
            if (step + 1) % ckpt_every == 0 or step + 1 == steps or requested is not None:
                _save(run, net, model, step + 1, fit_info, window)
            if requested is not None and step + 1 < steps:
                raise KeyboardInterrupt(f"{requested} at step {step + 1}: checkpoint saved")
    finally:
        stop.restore()
        bar.close()
        logger.close()


def _save(run: RunDir, net: SRModel, model: str, step: int, fit_info: dict[str, Any],
          window: dict[str, float] | None = None) -> None:
    run.save_checkpoint({"format": CHECKPOINT_FORMAT, "method": _ckpt_name(model), "step": step,
                         "model": net.state_dict(),
                         "optimizers": {k: o.state_dict() for k, o in net.optimizers().items()},
                         "fit": json.loads(json.dumps(fit_info)), "window": dict(window or {})})


def load_sr_run(run_dir: str | Path) -> tuple[dict[str, Any], SRModel]:
    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise EbmlabError(f"run directory {run.path} does not exist; create one with `ebmlab sr train`")
    if not run.exists():
        raise EbmlabError(f"{run.path} is not a run directory (no config.json)")
    cfg = read_json(run.config_path)
    if cfg.get("format") != CONFIG_FORMAT:
        raise EbmlabError(f"{run.path} holds a training run ({cfg.get('method', '?')}), not a super-resolution "
                          f"run; use `ebmlab eval` for it")
    net = build_model(cfg["model"], cfg["scale"], cfg["options"])
    state = run.load_checkpoint(_ckpt_name(cfg["model"]))
    if state is None:
        raise EbmlabError(f"{run.path} has no checkpoint yet; run `ebmlab sr train` to completion first")
    net.load_state_dict(state["model"])
    net.eval()
    if isinstance(net, Stats):
        net.total_steps = cfg["steps"]
    return cfg, net


def evaluate_sr(run_dir: str | Path, *, n: int = 500, n_samples: int = 3, progress: bool = False,
                net: SRModel | None = None, sr_data=None, fd: bool = True, threads: int | None = None) -> dict[str, Any]:
    """Metrics of the run's model on the first ``n`` test images; writes grid.png, and summary.json unless that
    holds an evaluation on more test images: one on fewer (``sr eval -n 20`` after the run's 412) goes beside it,
    into summary-n20.json, and the returned ``summary`` names the file written. ``threads``: torch's CPU threads
    (default: the run's setting, else torch's default). ``progress``: what it is doing, with bars and times left."""
    require_int("-n", n, 1, " (test images)")
    cfg, loaded = load_sr_run(run_dir)
    with cpu_threads(cfg.get("threads", 0) if threads is None else threads) as used:
        return _evaluate_sr(RunDir(run_dir), cfg, net or loaded, n=n, n_samples=n_samples, progress=progress,
                            sr_data=sr_data, fd=fd, threads=used)


def _evaluate_sr(run: RunDir, cfg: dict[str, Any], net: SRModel, *, n: int, n_samples: int, progress: bool,
                 sr_data, fd: bool, threads: int) -> dict[str, Any]:
    from .metrics import all_metrics

    net.eval()
    sr_data = sr_data or get_sr_data(cfg["data"], scale=cfg["scale"], data_dir=cfg.get("data_dir"),
                                     crop=cfg.get("crop", 64))
    x = sr_data.test[:n]
    y = ops.down(x, cfg["scale"])
    _say(progress, f"sr eval: {cfg['model']}, {len(x)} test images of {cfg['data']}, {threads} "
                   f"thread{'s' if threads != 1 else ''}")
    t0 = time.perf_counter()
    xhat = net.predict(y, progress=progress)
    infer_s = time.perf_counter() - t0
    _say(progress, f"sr eval: inference {infer_s:.1f} s; metrics (PSNR, SSIM, statistics distance"
                   f"{', classifier FD' if fd and cfg['data'] == 'fashion' else ''})")
    m = all_metrics(xhat, x, fd_dataset="fashion" if (fd and cfg["data"] == "fashion") else None,
                    data_dir=cfg.get("data_dir"))
    res = {"n_test": len(x), "inference_seconds": round(infer_s, 2),
           "inference_ms_per_image": round(1000 * infer_s / len(x), 2),
           "constraint_max_abs": float((ops.down(xhat, cfg["scale"]) - y).abs().max()), **m}
    samples = None
    if isinstance(net, Stats) and n_samples > 0:
        g = torch.Generator().manual_seed(0)
        k = min(8, len(y))
        _say(progress, f"sr eval: {n_samples} Langevin draws for each of {k} images (the grid's sample columns)")
        samples = torch.stack([net.sample(y[i:i + 1], n_samples, generator=g, start=xhat[i:i + 1])
                               for i in tqdm(range(k), disable=not progress, desc="samples", unit="image",
                                             file=sys.stderr, leave=False)])  # [8, k, 1, H, W]
        res["sample_spread"] = float(samples.std(1).mean())
        res["sample_constraint_max_abs"] = float(
            (ops.down(samples.flatten(0, 1), cfg["scale"]) - y[:len(samples)].repeat_interleave(n_samples, 0))
            .abs().max())
    save_grid(run.path / "grid.png", y[:8], {"bicubic": ops.bicubic(y[:8], cfg["scale"]), cfg["model"]: xhat[:8]},
              x[:8], samples)
    prev = read_json(run.summary_path) if run.summary_path.is_file() else {}
    before = prev.get("test", {}).get("n_test", 0) if isinstance(prev.get("test"), dict) else 0
    path = run.summary_path if len(x) >= before else run.path / f"summary-n{len(x)}.json"
    base = prev if path == run.summary_path else {k: v for k, v in prev.items() if k != "test"}
    write_json(path, {**base, "model": cfg["model"], "data": cfg["data"], "scale": cfg["scale"], "test": res})
    return {"test": res, "summary": str(path)}


def _say(progress: bool, line: str) -> None:
    if progress:
        print(line, file=sys.stderr, flush=True)


def save_grid(path: Path, y: Tensor, columns: dict[str, Tensor], truth: Tensor, samples: Tensor | None = None) -> None:
    """A PNG grid, one row per image: low-res | each column | samples | truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [("low-res", y)] + list(columns.items())
    if samples is not None:
        cols += [(f"sample {k + 1}", samples[:, k]) for k in range(samples.shape[1])]
    cols.append(("truth", truth))
    rows = len(truth)
    fig, axes = plt.subplots(rows, len(cols), figsize=(1.3 * len(cols), 1.3 * rows + 0.3), squeeze=False)
    for c, (title, imgs) in enumerate(cols):
        for r in range(rows):
            ax = axes[r][c]
            if r < len(imgs):
                ax.imshow(imgs[r, 0].detach().float().clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1,
                          interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=7)
    fig.tight_layout(pad=0.2)
    atomic_write_bytes(Path(path), lambda fh: fig.savefig(fh, format="png", dpi=110))
    plt.close(fig)


def _read_image(path: Path) -> np.ndarray:
    from ..data.readers import GREY_MODES, image_values, open_image

    if not path.is_file():
        raise EbmlabError(f"input image {path} does not exist")
    im = open_image(path)
    return image_values(im, im.mode in GREY_MODES)


def upscale_array(net: SRModel, y: Tensor, scale: int, *, tile: int = 32, margin: int = 4,
                  progress: bool = False) -> Tensor:
    """Super-resolve one grey image y [1, 1, h, w] tile by tile (``tile`` low-res pixels read with ``margin``
    more on each side; only each tile's centre is kept, so the seams see the same context as the interior)."""
    h, w = y.shape[-2:]
    out = torch.zeros(1, 1, h * scale, w * scale, dtype=y.dtype)
    parts = ops.tiles(h, w, tile, margin)
    for rr, cc, kr, kc in tqdm(parts, disable=not progress, desc="tiles"):
        res = net.predict(y[..., rr, cc])
        out[..., rr.start * scale + kr.start * scale: rr.start * scale + kr.stop * scale,
            cc.start * scale + kc.start * scale: cc.start * scale + kc.stop * scale] = \
            res[..., kr.start * scale: kr.stop * scale, kc.start * scale: kc.stop * scale]
    return out


def upscale(run_dir: str | Path, inp: str | Path, out: str | Path, *, tile: int = 32, margin: int = 4,
            progress: bool = True, threads: int | None = None) -> dict[str, Any]:
    """Upscale an image file of any size with a trained run; colour images: the luma (ITU-R BT.601) is
    super-resolved by the model and the chroma by bicubic interpolation. ``threads``: torch's CPU threads (default:
    the run's setting)."""
    out = Path(out)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise EbmlabError(f"--out {out}: give a .png or .jpg file name")
    for name, v, lo in (("--tile", tile, 1), ("margin", margin, 0)):
        require_int(name, v, lo, " (low-resolution pixels)")
    cfg, net = load_sr_run(run_dir)
    with cpu_threads(cfg.get("threads", 0) if threads is None else threads):
        return _upscale(cfg, net, Path(inp), out, tile=tile, margin=margin, progress=progress)


def _upscale(cfg: dict[str, Any], net: SRModel, inp: Path, out: Path, *, tile: int, margin: int,
             progress: bool) -> dict[str, Any]:
    from PIL import Image

    from ..atomic import check_output_dir

    a = _read_image(inp)
    check_output_dir(out.parent if str(out.parent) else Path("."))
    s = cfg["scale"]
    if a.ndim == 3:
        m = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
        ycc = a @ m.T
        lum = torch.as_tensor(ycc[..., 0], dtype=torch.float32)[None, None]
        chroma = torch.as_tensor(ycc[..., 1:].transpose(2, 0, 1), dtype=torch.float32)[None]
        big_c = torch.nn.functional.interpolate(chroma, scale_factor=s, mode="bicubic", align_corners=False)[0]
    else:
        lum = torch.as_tensor(a, dtype=torch.float32)[None, None]
    t0 = time.perf_counter()
    with torch.no_grad():
        big = upscale_array(net, lum, s, tile=tile, margin=margin, progress=progress)[0, 0].numpy()
    secs = time.perf_counter() - t0
    if a.ndim == 3:
        ycc = np.stack([big, big_c[0].numpy(), big_c[1].numpy()], -1)
        inv = np.linalg.inv(m)
        img = np.clip(ycc @ inv.T, 0, 1)
    else:
        img = np.clip(big, 0, 1)
    pil = Image.fromarray((img * 255 + 0.5).astype(np.uint8))
    fmt = "PNG" if out.suffix.lower() == ".png" else "JPEG"
    atomic_write_bytes(out, lambda fh: pil.save(fh, format=fmt))
    return {"in": str(inp), "out": str(out), "in_size": list(a.shape[:2]), "out_size": list(img.shape[:2]),
            "seconds": round(secs, 2), "model": cfg["model"]}
