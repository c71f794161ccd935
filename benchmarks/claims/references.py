"""The reference rows of the image claims' recorded benches: for each stacked set at the evaluation count the
benches used (eval_samples=1000; modes over 26,000 draws), the real data's, uniform noise's and a collapsed set's
(one training image repeated) metrics, scored as a model's samples are, with the same domain classifier.

    python benchmarks/claims/references.py --out benchmarks/claims/references.json

A claim's recorded result names this file (``references = "benchmarks/claims/references.json"``); its verdict then
uses the metric only if the real data beat both references on it (`ebmlab.claims.verdict`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from ebmlab.metrics import collapse_reference, noise_floor, real_reference


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", default="stacked_fashion,stacked_digits")
    ap.add_argument("--n", type=int, default=1000)
    a = ap.parse_args()
    t0 = time.perf_counter()
    out = {"command": f"python benchmarks/claims/references.py --out {a.out} --data {a.data} --n {a.n}",
           "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
           "load_1min": round(os.getloadavg()[0], 2)}
    for d in a.data.split(","):
        out[d] = {"n": a.n, "real": real_reference(d, a.n), "noise": noise_floor(d, a.n)["noise_floor"],
                  "collapsed": collapse_reference(d, a.n)["collapse_floor"]}
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1, default=float)
    for d in a.data.split(","):
        print(d, {k: {m: out[d][k].get(m) for m in ("modes", "clf_precision", "clf_recall", "clf_fd", "mode_kl")}
                  for k in ("real", "noise", "collapsed")})


if __name__ == "__main__":
    main()
