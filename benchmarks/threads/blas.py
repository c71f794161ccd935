"""NumPy's BLAS on a busy machine: KID and a stacked-set score timed with the code before ``threads.limit_blas``
and the ``_cubic_kernel`` of ``metrics.features`` (OpenBLAS's default pool: every CPU, spinning waits; the kernel's
cube by ``** 3``) and with today's (the BLAS pool at the command's thread count; the cube as two products),
alternating, ``--repeats`` times; run it while another job keeps the machine busy (the load is printed).

    python benchmarks/threads/blas.py --before OLD_CHECKOUT/src [--repeats 2] > blas.md

``--before``: the ``src`` of a checkout of the commit before (its ``ebmlab`` is imported instead of this one's).
Cases: ``kid`` — ``metrics.features.kid`` of two sets of 500 64-dimensional features (a run's evaluation at
``eval_samples = 500``: 100 subsets of 250) in a process at ``threads.apply(1)`` (before, it set torch's threads
alone); ``score`` — ``ebmlab score X.npy --data stacked_digits --threads 1`` on 26,000 uniform-noise
samples (its classifier features, modes, FD, KID and the references' at 500 compared). Each cell: the wall times of
the ``kid`` call (``kid``) or of the whole process, start-up included (``score``).
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

KID = """
import time, numpy as np
from ebmlab import threads
threads.apply(1)
from ebmlab.metrics.features import kid
rng = np.random.default_rng(0)
a, b = rng.normal(size=(500, 64)), rng.normal(size=(500, 64))
t = time.perf_counter()
kid(a, b)
print(time.perf_counter() - t)
"""


def timed(cmd: list[str], src: Path, refs: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(src), "EBMLAB_REFERENCES": str(refs)}
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, *cmd], env=env, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{p.stderr[-2000:]}")
    wall = time.perf_counter() - t0
    return float(p.stdout.split()[-1]) if cmd[0] == "-c" else wall  # kid: the call's own time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        x = Path(tmp) / "noise.npy"
        np.save(x, np.random.default_rng(0).uniform(0, 16, size=(26000, 3, 8, 8)).astype(np.float32))
        cases = {"kid (500 × 64 features, 100 subsets of 250)": ["-c", KID],
                 "score 26,000 stacked_digits samples, --threads 1": ["-m", "ebmlab", "score", str(x), "--data",
                                                                     "stacked_digits", "--threads", "1"]}
        print(f"load average at the start: {os.getloadavg()}\n")
        print("| case | before | today | ratio |\n|---|---|---|---|")
        for name, cmd in cases.items():
            times: dict[str, list[float]] = {"before": [], "today": []}
            for r in range(args.repeats):
                for label, src in (("before", args.before), ("today", HERE)):
                    refs = Path(tmp) / f"refs-{label}-{r}"  # references computed each time, as a fresh run's
                    times[label].append(timed(cmd, src, refs))
            b, t = sum(times["before"]) / args.repeats, sum(times["today"]) / args.repeats
            cell = {k: ", ".join(f"{v:.1f} s" for v in vs) for k, vs in times.items()}
            print(f"| {name} | {cell['before']} | {cell['today']} | {b / t:.1f}× |", flush=True)
        print(f"\nload average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
