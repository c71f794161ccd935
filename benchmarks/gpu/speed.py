"""Training speed per method, eager against whole-step graphs (``ebmlab.graphs``), at the GPU issue's setting:
CIFAR-shaped 3×32×32 images (random 8-bit pixels: the speed does not depend on them), batch 64,
``net=dcgan width=64 z_dim=128``.

Per method it measures, in one process, one after the other:
- ``train eager`` / ``train graphs``: ``ebmlab train`` (the Python API, the whole trainer: batches, logging,
  checkpoints) with ``graphs=off`` and ``graphs=auto``; the rate is run.json's (the training loop only);
- ``bare eager``: the method's step (``train_step`` and the recipe) in a bare loop on one device-resident batch;
- ``bare replay`` (the graph ceiling): the same step replayed from its captured graph (``StepGraphs``) in a bare loop;
- ``kernels/step`` and ``GPU ms/step``: device kernels and their summed device time per eager step
  (``torch.profiler``, 5 steps after warm-up; on the CPU: operator calls and CPU time);
and the ratios the issue's aims are about: train graphs / bare replay (aim ≥ 0.8) and train graphs / train eager
(aim ≥ 3.5). With ``--official REPO --deps DEPS`` it also times EBM-BB's official ``train/train_image.py`` at the
same width through ``benchmarks/official/ebmbb_image.py`` (which says what had to be replaced for it to run: its
``InfiniteDataLoader.next`` calls the iterator's ``.next()``, gone from current PyTorch, and is made to call
``next(...)``), for the BiB row's ratio (aim ≥ 5×).

    PYTHONPATH=src python benchmarks/gpu/speed.py OUT [--device cuda] [--methods gan,vgan,vae,ebgan,kale,bib]
        [--steps 300] [--bare-steps 200] [--width 64] [--official PATH/EBM-BB --deps DEPS]

On the CPU (``--device cpu``, where ``graphs=emulate`` stands in for CUDA graphs and is slower than eager by design)
it checks that the script runs; its numbers say nothing about a GPU. Writes OUT/speed.json and OUT/speed.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ebmlab import graphs
from ebmlab.config import resolve_config
from ebmlab.data.batches import make_batches
from ebmlab.trainer import build_method, train

METHODS = ["gan", "vgan", "vae", "ebgan", "kale", "bib"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_data(path: Path, n: int = 5000) -> str:
    """Random 8-bit 3×32×32 images as a user data set (CIFAR-10's shape; no download, no real images needed)."""
    if not path.exists():
        rng = np.random.default_rng(0)
        np.savez(path, x=rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8))
    return str(path)


def overrides(args: argparse.Namespace, **extra) -> dict:
    return {"batch_size": 64, "net": "dcgan", "width": args.width, "z_dim": 128, "seed": 0, "eval_samples": 100,
            "plots": False, "tensorboard": False, "eval_every": 0, "ckpt_every": 10 ** 9, "log_every": 100,
            "device": args.device, **extra}


def trainer_rate(method: str, data: str, args: argparse.Namespace, mode: str, out: Path) -> dict:
    shutil.rmtree(out / f"{method}-{mode}", ignore_errors=True)  # a fresh run (a run left there would be resumed)
    res = train(method, data, out=out / f"{method}-{mode}", progress=False,
                overrides=overrides(args, steps=args.steps, graphs=mode, eval_density=False))
    sess = json.loads((res.run_dir / "run.json").read_text())["sessions"][-1]
    return {"steps_per_s": sess["steps_per_s"], "graphs": sess.get("graphs")}


def bare(method: str, data: str, args: argparse.Namespace) -> dict:
    """Eager and replayed rates of the step alone, and its kernels per step."""
    cfg = resolve_config(method, data, overrides=overrides(args, steps=10 ** 6))
    device = torch.device("cuda" if args.device in ("cuda", "auto") and torch.cuda.is_available() else "cpu")
    m = build_method(cfg, device)
    batches = make_batches(cfg.dataset, cfg.run.batches, 64, 0)
    batch = next(iter(batches.stream(0, 1))).to(device)

    def run_step(b, s):
        out = m.train_step(b, s)
        m.recipe.after_step()
        return out

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
        out["ops_per_step"] = len(ops) / 5
        out["cpu_ms_per_step"] = sum(e.self_cpu_time_total for e in ops) / 5 / 1000
    why = graphs.blocker(m)
    if why:
        out["graphs_blocked"] = why
        return out
    backend = "cuda" if device.type == "cuda" else "emulate"
    graphs.prepare(m, backend, tensor_lrs=False)
    runner = graphs.StepGraphs(m, backend, run_step)
    s = 1000
    while runner.replayed_steps < 2:  # warm-up and capture of the kinds that occur
        runner.step(batch, s)
        s += 1
    out["bare_replay"] = timed(runner.step, args.bare_steps)
    out["kinds"] = sorted({k[0] for k in runner.graphs})
    return out


def official(args: argparse.Namespace, out: Path) -> dict:
    """EBM-BB's train_image.py at the same width (benchmarks/official/ebmbb_image.py), its iterations per second."""
    script = Path(__file__).resolve().parents[1] / "official" / "ebmbb_image.py"
    d = out / "official"
    d.mkdir(exist_ok=True)
    subprocess.run([sys.executable, str(script), "prepare", "--out", str(d)], check=True)
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, str(script), "official", "--repo", args.official, "--deps", args.deps,
                        "--data", str(d / "sf32.npz"), "--steps", str(args.steps), "--seed", "0",
                        "--width", str(args.width), "--threads", str(torch.get_num_threads()), "--out", str(d),
                        *(["--cuda"] if args.device == "cuda" else [])], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    rec: dict = {"rc": p.returncode, "wall_s": round(wall, 1), "tail": (p.stdout + p.stderr)[-800:]}
    js = d / "official.json"
    if p.returncode == 0 and js.exists():
        rec.update({k: v for k, v in json.loads(js.read_text()).items() if "rate" in k or "steps" in k})
    return rec


def table(rows: dict, env: dict) -> str:
    units = "kernels/step | device ms/step" if env["gpu"] else "aten ops/step | CPU ms/step (no GPU)"
    lines = [f"{env['device']}, torch {env['torch']}, width {env['width']}, batch 64, {env['steps']} trainer steps; "
             f"load {env['load_start'][0]:.1f} → {env.get('load_end', (float('nan'),))[0]:.1f}, "
             f"{env.get('wall_s', '?')} s in all",
             "", "| method | train eager | train graphs | bare eager | bare replay | graphs / ceiling | graphs / "
             f"eager | {units} | kinds |", "|---|---|---|---|---|---|---|---|---|---|"]
    for m, r in rows.items():
        te, tg = r["train_eager"]["steps_per_s"], r["train_graphs"]["steps_per_s"]
        ceil = r.get("bare_replay")
        k = r.get("kernels_per_step", r.get("ops_per_step"))
        ms = r.get("device_ms_per_step", r.get("cpu_ms_per_step"))
        lines.append(f"| {m} | {te:.1f} | {tg:.1f} | {r['bare_eager']:.1f} | "
                     f"{f'{ceil:.1f}' if ceil else '–'} | {f'{tg / ceil:.2f}' if ceil else '–'} | "
                     f"{f'{tg / te:.2f}' if te else '–'} | "
                     f"{k:.0f} | {ms:.2f} | {', '.join(r.get('kinds', [])) or r.get('graphs_blocked', '')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--bare-steps", type=int, default=200)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--official", help="a checkout of gengcong940126/EBM-BB")
    ap.add_argument("--deps", help="its dependencies (see benchmarks/official/ebmbb_image.py)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data = make_data(args.out / "cifar_shaped.npz")
    env = {"device": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu",
           "torch": torch.__version__, "width": args.width, "steps": args.steps,
           "threads": torch.get_num_threads(), "gpu": args.device == "cuda", "load_start": os.getloadavg(),
           "python": platform.python_version()}
    t0 = time.perf_counter()
    mode = "auto" if args.device == "cuda" else "emulate"
    rows: dict = {}
    for m in args.methods.split(","):
        r = {"train_eager": trainer_rate(m, data, args, "off", args.out),
             "train_graphs": trainer_rate(m, data, args, mode, args.out), **bare(m, data, args)}
        rows[m] = r
        print(m, json.dumps(r), flush=True)
    env.update(load_end=os.getloadavg(), wall_s=round(time.perf_counter() - t0, 1))
    result = {"env": env, "rows": rows, "command": " ".join(sys.argv)}
    if args.official:
        result["official"] = official(args, args.out)
        print("official", json.dumps(result["official"]), flush=True)
    (args.out / "speed.json").write_text(json.dumps(result, indent=1))
    (args.out / "speed.md").write_text(table(rows, env))
    print(table(rows, env))


if __name__ == "__main__":
    main()
