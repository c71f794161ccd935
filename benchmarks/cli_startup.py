"""Start-up time of the command line and of the package import, against `import torch` alone (the cost the lazy
imports avoid). Each command runs --repeats times in a fresh interpreter; the median is reported.

    python benchmarks/cli_startup.py --repeats 10 --out benchmarks/cli_startup.md
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "ebmlab --help": [shutil.which("ebmlab") or "ebmlab", "--help"],
    "ebmlab train --help": [shutil.which("ebmlab") or "ebmlab", "train", "--help"],
    "python -c 'import ebmlab'": [sys.executable, "-c", "import ebmlab"],
    "python -c 'import torch' (reference)": [sys.executable, "-c", "import torch"],
    "ebmlab list (imports torch: lists methods)": [shutil.which("ebmlab") or "ebmlab", "list"],
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = []
    for label, cmd in COMMANDS.items():
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True)
            times.append(time.perf_counter() - t0)
        rows.append((label, statistics.median(times), min(times), max(times)))
        print(f"{label}: median {rows[-1][1]:.3f} s")
    load = os.getloadavg()
    lines = ["# Start-up time of the CLI and the package\n",
             f"Command: `python benchmarks/cli_startup.py --repeats {args.repeats}`; {os.cpu_count()} cores; "
             f"1-min load average at the end {load[0]:.2f}; {time.strftime('%Y-%m-%d %H:%M')}. Each command in a fresh "
             f"interpreter, {args.repeats} times. Aim: `ebmlab --help` ≤ 0.5 s.\n",
             "| command | median (s) | min (s) | max (s) |", "|---|---|---|---|"]
    lines += [f"| `{label}` | {med:.3f} | {lo:.3f} | {hi:.3f} |" for label, med, lo, hi in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
