"""Threads on a busy machine: each command timed with the code before ``ebmlab.threads`` (torch's default threads,
OpenMP's default waiting), with ``--threads 1``/``threads=1``, and with the new default (the CPUs this process may
use, 1 on 2D data, waiting threads asleep), alternating, ``--repeats`` times; run it while another job keeps the
machine busy (say so in the record, with the load printed here).

    python benchmarks/threads/busy.py --before OLD_CHECKOUT/src --kale-ring8 RUN_DIR [--repeats 2] > busy.md

``--before``: the ``src`` of a checkout of the commit before (its ``ebmlab`` is imported instead of this one's);
``--kale-ring8``: a finished run of the README's main job (KALE on ring8), which ``sample`` reads. The image commands
train their own 10-step runs on stacked digits (KALE to sample from; a GAN to evaluate: a KALE evaluation draws
26,000 Langevin chains for the stacked modes, over an hour a variant on a busy 2-core machine). ``--cases`` picks
commands by the start of their names (e.g. ``eval``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[2] / "src"


def timed(cmd: list[str], src: Path, env_extra: dict[str, str]) -> float:
    env = {**{k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}, "PYTHONPATH": str(src), **env_extra}
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "ebmlab", *cmd], env=env, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{p.stderr[-2000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--kale-ring8", type=Path, required=True)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--cases", default="", help="comma-separated starts of the commands' names to run (default all)")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp())
    img_run = work / "kale-digits"
    # the image run for sample/eval, trained once by the new code at one thread
    gan_run = work / "gan-digits"
    for m, d in (("kale", img_run), ("gan", gan_run)):
        timed(["train", m, "--data", "stacked_digits", "--out", str(d), "--no-progress", "steps=10", "eval=none",
               "threads=1", "plots=false", "loggers="], HERE, {})
    cases = {
        "train kale stacked_digits, 10 steps, eval=none": lambda extra: [
            "train", "kale", "--data", "stacked_digits", "--out", str(work / f"t{time.monotonic_ns()}"),
            "--no-progress", "steps=10", "eval=none", "plots=false", "loggers=", *extra.get("opt", [])],
        "sample the main job's run (KALE ring8), -n 2500": lambda extra: [
            "sample", str(a.kale_ring8), "-n", "2500", "--out", str(work / "s.npy"), *extra.get("flag", [])],
        "sample KALE stacked_digits, -n 500": lambda extra: [
            "sample", str(img_run), "-n", "500", "--out", str(work / "si.npy"), *extra.get("flag", [])],
        "eval GAN stacked_digits": lambda extra: ["eval", str(gan_run), "--json", *extra.get("flag", [])],
    }
    variants = {
        "before (torch's threads, spinning waits)": (a.before, {}, {}),
        "one thread": (HERE, {}, {"opt": ["threads=1"], "flag": ["--threads", "1"]}),
        "new default": (HERE, {}, {}),
    }
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs\n")
    print("| command | " + " | ".join(variants) + " |\n|---|" + "---|" * len(variants))
    chosen = [c for c in a.cases.split(",") if c]
    for name, make in cases.items():
        if chosen and not name.startswith(tuple(chosen)):
            continue
        times: dict[str, list[float]] = {v: [] for v in variants}
        for _ in range(a.repeats):
            for v, (src, env, extra) in variants.items():
                if v.startswith("before") and name.startswith(("sample", "eval")) and extra:
                    continue
                times[v].append(timed(make(extra), src, env))
        print(f"| {name} | " + " | ".join(", ".join(f"{t:.1f} s" for t in ts) for ts in times.values()) + " |",
              flush=True)
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
