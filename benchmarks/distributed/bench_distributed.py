"""Distributed training on this machine: host synchronisations per step (this version and an older checkout),
step rate at world size 1 and 2 (torchrun, gloo), and the slow distributed tests.

usage: python benchmarks/distributed/bench_distributed.py [--before PATH_TO_OLD_CHECKOUT] [--steps 400]
Writes benchmarks/distributed/results.json and results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
METHODS = ["gan", "vgan", "bib", "vae", "kale", "ebgan", "lbt"]


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def count(method: str, src: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, str(HERE / "count_syncs.py"), method, "ring8", "100"], env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def rate(method: str, n: int, steps: int, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as d:
        args = ["-m", "ebmlab", "train", method, "--data", "ring8", "--steps", str(steps), "--no-progress",
                "--out", f"{d}/run", "batches=epochs", "batch_size=256", "eval_samples=200", "eval_density=false",
                "plots=false", "loggers=", f"log_every={steps}", f"ckpt_every={steps}", *extra]
        cmd = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}"] if n > 1
               else [sys.executable]) + args
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        wall = time.perf_counter() - t0
        rec = json.loads((Path(d) / "run" / "run.json").read_text())["sessions"][-1]
    return {"method": method, "processes": n, "steps": steps, "steps_per_s": rec["steps_per_s"],
            "wall_s": round(wall, 1), "load": load()}


def render(res: dict) -> str:
    lines = ["# Distributed training on this machine", "",
             f"Command: `python benchmarks/distributed/{res['command']}` — {res['machine']}, CPU only (no GPU was "
             f"available), total wall time {res['wall_s']} s, load average at start {res['load_start']}, at end "
             f"{res['load_end']}.", "",
             "## Host synchronisations per training step", "",
             "Counted by `count_syncs.py` (a TorchFunctionMode around the training loop: item, float, int, bool, "
             "tolist, numpy, index, nonzero) over 100 steps of ring8 with log_every=50 and one checkpoint, so "
             "the log and checkpoint reads are included in the average; torch.optim's reads of its CPU step "
             "counters are no device wait and are listed apart. *before*: the commit before this change (0cda643, checked out with `git worktree` and passed as --before), whose methods "
             "returned Python floats (one `.item()` per metric per step) and whose trainer checked them every step.",
             "", "| method | before (per step) | now (per step) | now: where they are |", "|---|---:|---:|---|"]
    for row in res["syncs"]:
        now = row["now"]
        kinds = ", ".join(f"{k} {v}" for k, v in now["by_kind"].items() if k != "optimizer_step_counter")
        before = f"{row['before']['per_step']:.2f}" if "before" in row else "—"
        lines.append(f"| {row['method']} | {before} | {now['per_step']:.2f} | {kinds} in 100 steps |")
    lines += ["", "What is left is per run, not per step: one `tolist` per log step (all metrics in one transfer, "
              "averaged over the processes first) and one `bool` per parameter tensor at a checkpoint (the "
              "non-finite check that keeps the last good checkpoint).", "",
              "## Step rate at 1 and 2 processes", "",
              f"ring8, batch_size=256 (global), batches=epochs, {res['rates'][0]['steps']} steps, one thread per "
              f"process; 1 process: `python -m ebmlab train ...`, 2 processes: `torchrun --standalone "
              f"--nproc_per_node 2 -m ebmlab train ...`, run one after the other.", "",
              "| method | processes | steps/s | wall (s, with start-up) | load at end |", "|---|---:|---:|---:|---|"]
    for r in res["rates"]:
        lines.append(f"| {r['method']} | {r['processes']} | {r['steps_per_s']:.1f} | {r['wall_s']} | {r['load']} |")
    by = {(r["method"], r["processes"]): r["steps_per_s"] for r in res["rates"]}
    ratios = ", ".join(f"{m} {by[(m, 2)] / by[(m, 1)]:.2f}×" for m in dict.fromkeys(r["method"] for r in res["rates"]))
    lines += ["", f"Ratio 2 processes / 1 process: {ratios}. This machine has 2 cores, and the 2D networks are "
              "small, so each process's half batch costs about as much as the full batch (the per-step cost is "
              "launch overhead, not arithmetic) and the all-reduces are added on top: data parallelism gives no "
              "speed-up here. It is for GPUs and nodes, where each process has its own device.", "",
              "## Slow distributed tests", "",
              f"`{res['slow_tests']['command']}`: {res['slow_tests']['tail']} (exit {res['slow_tests']['returncode']}, "
              f"{res['slow_tests']['wall_s']} s) — LBT's look-ahead through the differentiable all-reduce equals "
              "the one-process run in float64.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--render", action="store_true", help="only rewrite results.md from results.json")
    ap.add_argument("--before", type=Path, help="an older checkout to count host synchronisations against")
    ap.add_argument("--steps", type=int, default=400)
    a = ap.parse_args()
    if a.render:
        (HERE / "results.md").write_text(render(json.loads((HERE / "results.json").read_text())))
        return
    t_start = time.perf_counter()
    res: dict = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "load_start": load(),
                 "machine": f"{os.cpu_count()} cores", "syncs": [], "rates": []}
    for m in METHODS:
        row = {"method": m, "now": count(m, ROOT / "src")}
        if a.before:
            row["before"] = count(m, a.before / "src")
        res["syncs"].append(row)
        print(m, {k: v["per_step"] for k, v in row.items() if isinstance(v, dict)}, flush=True)
    for m, extra in (("gan", []), ("bib", ["g_batchnorm=false"])):
        for n in (1, 2):
            r = rate(m, n, a.steps, extra)
            res["rates"].append(r)
            print(r, flush=True)
    t0 = time.perf_counter()
    tests = subprocess.run([sys.executable, "-m", "pytest", "-o", "addopts=--import-mode=importlib", "-q", "-m",
                            "slow", "tests/test_distributed.py", "-p", "no:cacheprovider"], cwd=ROOT,
                           capture_output=True, text=True)
    res["slow_tests"] = {"command": "pytest -m slow tests/test_distributed.py", "returncode": tests.returncode,
                         "tail": tests.stdout.strip().splitlines()[-1], "wall_s": round(time.perf_counter() - t0, 1)}
    res["wall_s"] = round(time.perf_counter() - t_start, 1)
    res["load_end"] = load()
    (HERE / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    (HERE / "results.md").write_text(render(res))
    print(json.dumps(res["slow_tests"]))


if __name__ == "__main__":
    main()
