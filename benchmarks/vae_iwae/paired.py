"""Paired comparison of trained VAE/IWAE runs: L_k per test point for every run on the same points with the same
evaluation seed, and the mean and standard error of each run's difference to the first run (the test-point spread
cancels in the difference, so this se is the one that tells two runs apart).

    python benchmarks/vae_iwae/paired.py RUN_DIR [RUN_DIR ...] --k 5000 --points 1000 --data fashion_dynbin
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from ebmlab.api import load_run
from ebmlab.data import get_dataset


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--k", type=int, default=5000)
    ap.add_argument("--points", type=int, default=1000)
    ap.add_argument("--data", default="fashion_dynbin")
    a = ap.parse_args()
    x = get_dataset(a.data).test[:a.points]
    per = {}
    for r in a.runs:
        t = time.time()
        _, m, step = load_run(r, device="cpu")
        b = m.estimator.log_density_bounds(x, generator=torch.Generator().manual_seed(0), ks=(a.k,))
        per[r] = b[f"iwae_{a.k}"]
        print(f"{r}: step {step}, mean L_{a.k} = {float(per[r].mean()):.3f} ({time.time() - t:.0f} s)", flush=True)
    ref = a.runs[0]
    rows = []
    for r in a.runs:
        d = per[r] - per[ref]
        rows.append({"run": r, f"L_{a.k}": float(per[r].mean()), "minus_first": float(d.mean()),
                     "paired_se": float(d.std() / len(d) ** 0.5)})
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
