"""Training speed per method, eager against whole-step graphs (``ebmlab.graphs``), at the GPU issue's setting:
CIFAR-shaped 3×32×32 images (random 8-bit pixels: the speed does not depend on them), batch 64,
``net=dcgan width=64 z_dim=128``.

Per method it measures, in one process, one after the other:
- ``train eager`` / ``train graphs``: ``ebmlab train`` (the Python API, the whole trainer: batches, logging,
  checkpoints) with ``graphs=off`` and ``graphs=auto``; the rate is run.json's (the training loop only);
- ``bare eager``: the method's step (``train_step`` and the recipe) in a bare loop on one device-resident batch;
- ``bare replay`` (the graph ceiling): the same step replayed from its captured graph (``StepGraphs``) in a bare loop;
- ``kernels/step`` and ``GPU ms/step``: device kernels and their summed device time per eager step
  (``torch.profiler``, 5 steps after warm-up; on the CPU: the operations that are not views, each a kernel on a
  GPU, and the profiler's CPU time);
and the ratios the issue's aims are about: train graphs / bare replay (aim ≥ 0.8) and train graphs / train eager
(aim ≥ 3.5). The row ``bib@ebmbb32`` is BiB with EBM-BB's own 32×32 pair (``net=ebmbb32``, d = 8·width: the
paper's at width 64); ``+option=value`` adds options: the last BiB row has EBM-BB's work per step (one LOBPCG
estimate for both players, ``share_jacobian=true``, and no data gradient penalty, ``data_gp_weight=0``, which
ebmlab's image preset adds and EBM-BB does not have). With ``--official REPO --deps DEPS`` it also times EBM-BB's official ``train/train_image.py``
with the same pair on the same data through ``benchmarks/official/ebmbb_image.py`` (which says what had to be
replaced for it to run: its ``InfiniteDataLoader.next`` calls the iterator's ``.next()``, gone from current PyTorch,
and is made to call ``next(...)``), for the ratio bib@ebmbb32 / official (aim ≥ 5×).

    PYTHONPATH=src python benchmarks/gpu/speed.py OUT [--device cuda] [--methods gan,vgan,vae,ebgan,kale,bib]
        [--steps 300 | --steps 2000,bib=400,kale=600] [--bare-steps 200] [--width 64] [--work DIR]
        [--official PATH/EBM-BB --deps DEPS]

The trainer's rate is given twice: over its whole run (run.json: warm-up and capture included) and *steady*, between
its first and last training log (every 50 steps: the first 50 steps, where warm-up and capture happen, left out);
the ceiling ratio is taken on the steady rate, as the bare replay is a steady rate too. A method that fails is
recorded with its error and the others go on; OUT/speed.json and OUT/speed.md are rewritten after every method, so
a run stopped by a time limit keeps what it measured. Run directories and the data go to ``--work`` (default
OUT/work), so that OUT holds only the results.

On the CPU (``--device cpu``, where ``graphs=emulate`` stands in for CUDA graphs and is slower than eager by design)
it checks that the script runs; its numbers say nothing about a GPU. Writes OUT/speed.json and OUT/speed.md.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from ebmlab import graphs
from ebmlab.config import resolve_config
from ebmlab.data.batches import make_batches
from ebmlab.atomic import atomic_write_bytes, write_json
from ebmlab.placement import Placement
from ebmlab.trainer import build_method, train

# BiB three ways: its image defaults with the DCGAN pair; with EBM-BB's own pair; and EBM-BB's recipe on that pair
# (one LOBPCG estimate per step, no data gradient penalty: the work per step of EBM-BB's train_image.py)
EBMBB_RECIPE = "bib@ebmbb32+share_jacobian=true+data_gp_weight=0"
METHODS = ["gan", "vgan", "vae", "ebgan", "kale", "bib", "bib@ebmbb32", EBMBB_RECIPE]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_data(path: Path, n: int = 5000) -> str:
    """Random 8-bit 3×32×32 images as a user data set (CIFAR-10's shape; no download, no real images needed), with
    ``train`` and ``test`` splits, which both ``ebmlab train --data`` and the official runner read."""
    if not path.exists():
        x = np.random.default_rng(0).integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
        np.savez(path, train=x[: n * 9 // 10], test=x[n * 9 // 10:])
    return str(path)


def split(spec: str) -> tuple[str, str, dict[str, str]]:
    """``bib`` → (bib, dcgan, {}); ``bib@ebmbb32+share_jacobian=true`` → (bib, ebmbb32, {share_jacobian: true}):
    the method, its networks and further options (a ``%data`` suffix, :func:`data_of`, is left out). A row on its
    own data set without ``@net`` keeps the method's networks for that data (``bihm%fashion_bin``: sigmoid belief
    nets), given as the empty string."""
    head, *opts = spec.split("%")[0].split("+")
    method, _, net = head.partition("@")
    return method, net or ("" if "%" in spec else "dcgan"), dict(o.split("=", 1) for o in opts)


# data sets a row may name after %: the methods that do not model CIFAR-shaped 8-bit images (semi-supervised
# EBGAN-LN needs labels, BiHM and RWS binary data, KALE's fixed flow base vectors)
VECTORS_DIM = 21  # HEPMASS's dimension (the GEBM paper's UCI sets have 6 to 43)


def data_of(spec: str, cifar: str, work: Path) -> str:
    """The data of a row: the CIFAR-shaped set, or the one after ``%`` (a built-in set such as ``fashion`` or
    ``fashion_bin``, or ``vectors``: 50,000 random 21-dimensional Gaussian vectors, a UCI-sized set)."""
    name = spec.partition("%")[2]
    if not name:
        return cifar
    if name == "vectors":
        path = work / "vectors.npz"
        if not path.exists():
            x = np.random.default_rng(0).standard_normal((50_000, VECTORS_DIM)).astype(np.float32)
            np.savez(path, train=x[:45_000], test=x[45_000:])
        return str(path)
    return name


LOG_EVERY = 50


def overrides(args: argparse.Namespace, net: str = "dcgan", **extra) -> dict:
    common = {"batch_size": 64, "seed": 0, "eval_samples": 100, "eval": "none", "plots": False,
              "loggers": "", "eval_every": 0, "ckpt_every": 10 ** 9, "log_every": LOG_EVERY,
              "device": args.device, **extra}
    if not net:  # a row on its own data set: the method's networks for that data
        return common
    return {"net": net, "width": args.width, "z_dim": 128, **common}


def parse_steps(text: str) -> dict[str, int]:
    """``300`` (every method) or ``2000,bib=400,kale=600`` (a default, then per-method counts)."""
    out: dict[str, int] = {}
    for part in text.split(","):
        name, _, n = part.rpartition("=")
        out[name or "*"] = int(n)
    if "*" not in out:
        raise SystemExit("error: --steps needs a default count, e.g. --steps 2000,bib=400")
    if min(out.values()) < 2 * LOG_EVERY:
        raise SystemExit(f"error: --steps must be at least {2 * LOG_EVERY} (two training logs give the steady rate)")
    return out


def steady_rate(run_dir: Path) -> float | None:
    """Steps per second between the first and the last training log: the logged rate is (step − start) / elapsed
    from the loop's start, so each log gives its elapsed time and two give the rate between them."""
    pts = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r.get("kind") == "train" and r.get("steps_per_s"):
            pts.append((r["step"], r["step"] / r["steps_per_s"]))
    if len(pts) < 2 or pts[-1][1] <= pts[0][1]:
        return None
    return (pts[-1][0] - pts[0][0]) / (pts[-1][1] - pts[0][1])


def trainer_rate(method: str, data: str, args: argparse.Namespace, mode: str, work: Path) -> dict:
    run = work / f"{method}-{mode}"
    shutil.rmtree(run, ignore_errors=True)  # a fresh run (a run left there would be resumed)
    name, net, opts = split(method)
    res = train(name, data, out=run, progress=False,
                overrides=overrides(args, net, **opts, steps=args.steps_for(method), graphs=mode, eval_density=False))
    sess = json.loads((res.run_dir / "run.json").read_text())["sessions"][-1]
    return {"steps": sess["end_step"], "steps_per_s": sess["steps_per_s"], "steady_steps_per_s": steady_rate(run),
            "graphs": sess.get("graphs")}


def bare(method: str, data: str, args: argparse.Namespace) -> dict:
    """Eager and replayed rates of the step alone, and its kernels per step."""
    name, net, opts = split(method)
    cfg = resolve_config(name, data, overrides=overrides(args, net, **opts, steps=10 ** 6))
    device = torch.device("cuda" if args.device in ("cuda", "auto") and torch.cuda.is_available() else "cpu")
    m = build_method(cfg, device)
    batches = make_batches(cfg.dataset, cfg.run.batches, 64, 0)
    batch = next(iter(batches.stream(0, 1))).to(device)
    if cfg.run.channels_last and cfg.dataset.spec.is_image:  # as the trainer does (build_method converts the nets)
        batch = batch.contiguous(memory_format=torch.channels_last)

    # the trainer's step runners: the step under the placement's bf16 autocast with precision=bf16 (no weight cache
    # when captured), then the recipe's after_step
    place = Placement(device=device, threads=torch.get_num_threads(), precision=cfg.run.precision)
    run_step = graphs.runner(m, place).step

    def timed(fn, n: int) -> float:
        sync(device)
        t0 = time.perf_counter()
        for i in range(n):
            fn(batch, 100 + i)
        sync(device)
        return n / (time.perf_counter() - t0)

    for s in range(1, 4):  # warm-up: optimizer state, workspaces
        run_step(batch, s)
    out: dict = {"bare_eager": timed(run_step, args.bare_steps)}
    acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if device.type == "cuda"
                                                      else [])
    with torch.profiler.profile(activities=acts) as prof:
        for i in range(5):
            run_step(batch, 10 + i)
        sync(device)
    if device.type == "cuda":
        kern = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
        out["kernels_per_step"] = len(kern) / 5
        out["device_ms_per_step"] = sum(e.device_time for e in kern) / 5 / 1000
    else:
        ops = [e for e in prof.events() if e.name.startswith("aten::")]
        out["cpu_ms_per_step"] = sum(e.self_cpu_time_total for e in ops) / 5 / 1000
        # the profiler's aten events include nested calls (matmul → bmm) and views, which launch nothing: count
        # the operations that reach a kernel instead (dispatched, not views), the CPU's proxy for GPU launches
        from bib_step_ops import Ops  # this directory's counter (speed.py runs as a script from it)

        with Ops() as counted:
            for i in range(5):
                run_step(batch, 15 + i)
        out["ops_per_step"] = counted.compute / 5
    if args.eager_only:
        return out
    why = graphs.blocker(m)
    if why:
        out["graphs_blocked"] = why
        return out
    backend = "cuda" if device.type == "cuda" else "emulate"
    runner = graphs.runner(m, replace(place, graphs=backend))
    s = 1000
    while runner.replayed_steps < 2:  # warm-up and capture of the kinds that occur
        runner.step(batch, s)
        s += 1
    out["bare_replay"] = timed(runner.step, args.bare_steps)
    out["kinds"] = sorted({k[0] for k in runner.graphs})
    return out


def official(args: argparse.Namespace, data: str, work: Path) -> dict:
    """EBM-BB's train_image.py at the same width on the same data (benchmarks/official/ebmbb_image.py, without its
    stacked-mode score: the data here are random pixels), its iterations per second, whole and steady."""
    script = Path(__file__).resolve().parents[1] / "official" / "ebmbb_image.py"
    d = work / "official"
    d.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, str(script), "official", "--repo", args.official, "--deps", args.deps,
                        "--data", data, "--steps", str(args.steps_for("bib@ebmbb32")), "--seed", "0",
                        "--width", str(args.width), "--threads", str(torch.get_num_threads()), "--out", str(d),
                        "--no-score", *(["--cuda"] if args.device == "cuda" else [])], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    rec: dict = {"rc": p.returncode, "wall_s": round(wall, 1), "tail": (p.stdout + p.stderr)[-800:]}
    js = d / "official.json"
    if p.returncode == 0 and js.exists():
        rec.update({k: v for k, v in json.loads(js.read_text()).items() if "rate" in k or "steps" in k
                    or k == "iterations"})
    return rec


def table(rows: dict, env: dict, official_rec: dict | None = None) -> str:
    units = "kernels/step | device ms/step" if env["gpu"] else "non-view ops/step | CPU ms/step (no GPU)"
    lines = [f"{env['device']}, torch {env['torch']}, width {env['width']}, batch 64, trainer steps "
             f"{env['steps']}; load {env['load_start'][0]:.1f} → {env.get('load_end', (float('nan'),))[0]:.1f}, "
             f"{env.get('wall_s', '?')} s in all",
             "", "steps/s; *steady*: between the trainer's first and last training log (warm-up and capture left out)",
             "", "| method | train eager (steady) | train graphs (steady) | bare eager | bare replay (ceiling) | "
             f"graphs / ceiling | graphs / eager | {units} | kinds |", "|---|---|---|---|---|---|---|---|---|---|"]

    def num(v, fmt=".1f"):
        return "–" if v is None else format(v, fmt)

    for m, r in rows.items():
        if "error" in r:
            lines.append(f"| {m} | failed: {r['error'].splitlines()[-1][:120]} |||||||||")
            continue
        te, tg = r["train_eager"], r.get("train_graphs", {"steps_per_s": None})
        tes, tgs = te.get("steady_steps_per_s"), tg.get("steady_steps_per_s")
        ceil = r.get("bare_replay")
        k = r.get("kernels_per_step", r.get("ops_per_step"))
        ms = r.get("device_ms_per_step", r.get("cpu_ms_per_step"))
        lines.append(f"| {m} | {num(te['steps_per_s'])} ({num(tes)}) | {num(tg['steps_per_s'])} ({num(tgs)}) | "
                     f"{num(r['bare_eager'])} | {num(ceil)} | "
                     f"{num(tgs / ceil if ceil and tgs else None, '.2f')} | "
                     f"{num(tgs / tes if tes and tgs else None, '.2f')} | "
                     f"{num(k, '.0f')} | {num(ms, '.2f')} | "
                     f"{', '.join(r.get('kinds', [])) or r.get('graphs_blocked', '')} |")
    off = official_rec
    if off:
        if off.get("rc") != 0:
            lines += ["", f"EBM-BB's train_image.py failed (exit {off.get('rc')}): {off.get('tail', '')[-300:]!r}"]
        else:
            o = off.get("steady_steps_per_s") or off.get("steps_per_s")
            lines += ["", f"EBM-BB's official train_image.py, same networks (d = 8·width), batch 64, same data: "
                          f"{off.get('steps_per_s', 0):.1f} steps/s whole run, {num(o)} steady."]
            for name, r in rows.items():
                if name.startswith("bib@ebmbb32") and "error" not in r:
                    mode = "with graphs" if "train_graphs" in r else "eager"
                    b = r.get("train_graphs", r["train_eager"]).get("steady_steps_per_s")
                    lines.append(f"{name} {mode} (steady) / official (steady) = "
                                 f"{num(b / o if b and o else None, '.2f')}" + (" (aim ≥ 5)" if "graphs" in mode else ""))
    return "\n".join(lines) + "\n"


def write(out: Path, result: dict) -> None:
    """speed.json and speed.md, each written whole and renamed into place."""
    md = table(result["rows"], result["env"], result.get("official"))
    write_json(out / "speed.json", result)
    atomic_write_bytes(out / "speed.md", lambda fh: fh.write(md.encode()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--steps", default="300", help="trainer steps: N, or N,method=M,... per method")
    ap.add_argument("--bare-steps", type=int, default=200)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--work", type=Path, help="run directories and data (default OUT/work)")
    ap.add_argument("--eager-only", action="store_true",
                    help="eager rates only (no graph rows): a CPU comparison of steps, e.g. BiB beside the official code")
    ap.add_argument("--official", help="a checkout of gengcong940126/EBM-BB")
    ap.add_argument("--deps", help="its dependencies (see benchmarks/official/ebmbb_image.py)")
    args = ap.parse_args()
    steps = parse_steps(args.steps)
    args.steps_for = lambda m: steps.get(m, steps["*"])
    work = args.work or args.out / "work"
    args.out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    data = make_data(work / "cifar_shaped.npz")
    env = {"device": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu",
           "torch": torch.__version__, "width": args.width, "steps": args.steps,
           "threads": torch.get_num_threads(), "gpu": args.device == "cuda", "load_start": os.getloadavg(),
           "python": platform.python_version()}
    t0 = time.perf_counter()
    mode = "auto" if args.device == "cuda" else "emulate"
    result: dict = {"env": env, "rows": {}, "command": " ".join(sys.argv)}
    for m in args.methods.split(","):
        t = time.perf_counter()
        try:
            d = data_of(m, data, work)
            r = {"train_eager": trainer_rate(m, d, args, "off", work)}
            if not args.eager_only:
                r["train_graphs"] = trainer_rate(m, d, args, mode, work)
            r.update(bare(m, d, args))
        except Exception as e:  # recorded; the other methods are still measured
            r = {"error": "".join(traceback.format_exception(e))[-3000:]}
        r["wall_s"] = round(time.perf_counter() - t, 1)
        result["rows"][m] = r
        print(m, json.dumps(r), flush=True)
        env.update(load_end=os.getloadavg(), wall_s=round(time.perf_counter() - t0, 1))
        write(args.out, result)
    if args.official:
        result["official"] = official(args, data, work)
        print("official", json.dumps(result["official"]), flush=True)
        write(args.out, result)
    print(table(result["rows"], env, result.get("official")))


if __name__ == "__main__":
    main()
