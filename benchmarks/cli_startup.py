"""Start-up time of the command line and of the package import, against `import torch` alone (the cost the lazy
imports avoid). Each command runs --repeats times in a fresh interpreter; the median is reported.

    python benchmarks/cli_startup.py --repeats 10 --out benchmarks/cli_startup.md
    python benchmarks/cli_startup.py --repeats 10 --before /tmp/old/src   # also each command on an older source tree

The last row times a training command from its start to its first step (``EBMLAB_KILL_AT=step:1`` ends it there):
what a user waits before a run trains, and what every process of the kill-and-resume tests pays.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench_report import emit  # this directory is first on the path when the script runs

COMMANDS = {
    "ebmlab --help": [shutil.which("ebmlab") or "ebmlab", "--help"],
    "ebmlab train --help": [shutil.which("ebmlab") or "ebmlab", "train", "--help"],
    "python -c 'import ebmlab'": [sys.executable, "-c", "import ebmlab"],
    "python -c 'import torch' (reference)": [sys.executable, "-c", "import torch"],
    "ebmlab list (imports torch: lists methods)": [shutil.which("ebmlab") or "ebmlab", "list"],
    "ebmlab train gan --data ring8, to its first step": [sys.executable, "-m", "ebmlab", "train", "gan", "--data",
                                                         "ring8", "--no-progress", "--out", "{tmp}"],
}
FIRST_STEP = "ebmlab train gan --data ring8, to its first step"


def time_command(label: str, cmd: list[str], src: str | None) -> float:
    env = {**os.environ, "EBMLAB_KILL_AT": "step:1" if label == FIRST_STEP else ""}
    if src:  # the package from another source tree, with the same interpreter and libraries
        env["PYTHONPATH"] = src
        if cmd[0] != sys.executable:  # the `ebmlab` script would import the installed package: use -m
            cmd = [sys.executable, "-m", "ebmlab", *cmd[1:]]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [c.replace("{tmp}", f"{tmp}/run") for c in cmd]
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, env=env)
        dt = time.perf_counter() - t0
    if res.returncode != (-9 if label == FIRST_STEP else 0):
        raise SystemExit(f"{label}: exit {res.returncode}\n{res.stderr.decode()[-2000:]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--out", default=None)
    ap.add_argument("--before", default=None, help="another source tree's src/: each command on it too, alternated")
    args = ap.parse_args()
    rows = []
    for label, cmd in COMMANDS.items():
        trees = [None, args.before] if args.before else [None]
        times: dict = {t: [] for t in trees}
        for _ in range(args.repeats):
            for t in trees:  # alternated, so that a change of the machine's load falls on both
                times[t].append(time_command(label, cmd, t))
        for t in trees:
            name = label if t is None else f"{label} (before: {t})"
            rows.append((name, statistics.median(times[t]), min(times[t]), max(times[t])))
            print(f"{name}: median {rows[-1][1]:.3f} s")
    load = os.getloadavg()
    lines = ["# Start-up time of the CLI and the package\n",
             f"Command: `python benchmarks/cli_startup.py --repeats {args.repeats}"
             f"{' --before ' + args.before if args.before else ''}`; {os.cpu_count()} cores; "
             f"1-min load average at the end {load[0]:.2f}; {time.strftime('%Y-%m-%d %H:%M')}. Each command in a fresh "
             f"interpreter, {args.repeats} times. Aim: `ebmlab --help` ≤ 0.5 s.\n",
             "| command | median (s) | min (s) | max (s) |", "|---|---|---|---|"]
    lines += [f"| `{label}` | {med:.3f} | {lo:.3f} | {hi:.3f} |" for label, med, lo, hi in rows]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
