"""The data-interface redesign changes no 2D result: train every method on a toy set with fixed options and
seed, and write the final metrics as JSON. Run it on the code before and after the change and compare.

    PYTHONPATH=<old checkout>/src python benchmarks/redesign/toy_same_numbers.py --out before.json
    python benchmarks/redesign/toy_same_numbers.py --out after.json
    python benchmarks/redesign/toy_same_numbers.py --compare before.json after.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time

RUNS = {  # method: (data, overrides) — short runs, every method once
    "gan": ("ring8", {}), "vgan": ("grid25", {}), "kale": ("ring8", {"mcmc_steps": 50}),
    "bib": ("ring8", {}), "bib_jac_diff": ("ring8", {}), "bib_mi_gp": ("ring8", {}), "bib_mi_diff": ("ring8", {}),
    "bib_onesided": ("ring8", {}), "vae": ("ring8", {}), "lbt": ("ring8", {"unroll_steps": 2}),
    "lbt_gan": ("ring8", {"unroll_steps": 2}), "ebgan": ("ring8", {"tau_search": False}),
    "ebgan_pt": ("grid25", {"tau_search": False}),
}
COMMON = {"steps": 150, "seed": 3, "eval_samples": 1000, "tensorboard": False, "plots": False, "log_every": 50}


def run(out: str) -> None:
    import ebmlab

    res = {}
    for m, (data, over) in RUNS.items():
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as d:
            r = ebmlab.train(m, data, out=f"{d}/run", overrides={**COMMON, **over}, progress=False)
        res[m] = {"data": data, "metrics": {k: v for k, v in r.summary["metrics"].items()
                                            if isinstance(v, (int, float))}}
        print(f"{m:14s} {data:8s} {time.perf_counter() - t0:6.1f}s", flush=True)
    with open(out, "w") as fh:
        json.dump({"module": ebmlab.__file__, "runs": res}, fh, indent=1)


def compare(a: str, b: str) -> int:
    ra, rb = json.load(open(a))["runs"], json.load(open(b))["runs"]
    bad = 0
    for m in ra:
        ma, mb = ra[m]["metrics"], rb.get(m, {}).get("metrics", {})
        diff = {k: (ma[k], mb.get(k)) for k in ma
                if not (mb.get(k) == ma[k] or (isinstance(ma[k], float) and math.isnan(ma[k]) and
                                               isinstance(mb.get(k), float) and math.isnan(mb[k])))}
        print(f"{m:14s} {len(ma)} metrics, {'identical' if not diff else f'{len(diff)} differ: {diff}'}")
        bad += bool(diff)
    return 1 if bad else 0


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--out")
    p.add_argument("--compare", nargs=2)
    a = p.parse_args()
    sys.exit(compare(*a.compare) if a.compare else run(a.out))
