"""A change that only moves code changes no result: train every method on a toy set (and the binary methods on
a binary set), then every method once on an image set, with fixed options and seed, and write the final metrics as
JSON. Run it on the code before and after the change and compare.

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
    "ebgan_pt": ("grid25", {"tau_search": False}), "vgan_vcd": ("ring8", {}),
    "bihm": ("digits_bin", {}), "rws": ("digits_bin", {}),
}
# one image run per method: a few steps on 8x8 digits (a 3-layer conv pair), evaluated on 200 samples
IMAGE_STEPS = {"steps": 20, "log_every": 10, "eval_samples": 200, "ckpt_every": 20}
IMAGE_RUNS = {m: "digits" for m in RUNS if m not in ("bihm", "rws")}
COMMON = {"steps": 150, "seed": 3, "eval_samples": 1000, "loggers": "", "plots": False, "log_every": 50}


def run(out: str, only: list[str] | None = None) -> None:
    import ebmlab

    todo = [(m, data, {**COMMON, **over}) for m, (data, over) in RUNS.items()]
    todo += [(m, data, {**COMMON, **RUNS[m][1], **IMAGE_STEPS}) for m, data in IMAGE_RUNS.items()]
    res = {}
    for m, data, over in todo:
        key = m if data == RUNS[m][0] else f"{m}@{data}"
        if only and key not in only:
            continue
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as d:
            r = ebmlab.train(m, data, out=f"{d}/run", overrides=over, progress=False)
        res[key] = {"data": data, "metrics": {k: v for k, v in r.summary["metrics"].items()
                                              if isinstance(v, (int, float))}}
        print(f"{key:20s} {data:10s} {time.perf_counter() - t0:6.1f}s", flush=True)
    with open(out, "w") as fh:
        json.dump({"module": ebmlab.__file__, "runs": res}, fh, indent=1)


def compare(a: str, b: str) -> int:
    ra, rb = json.load(open(a))["runs"], json.load(open(b))["runs"]
    bad = 0
    for m in ra:
        if m not in rb:
            print(f"{m:14s} not in {b}")
            continue
        ma, mb = ra[m]["metrics"], rb.get(m, {}).get("metrics", {})
        diff = {k: (ma[k], mb.get(k)) for k in ma
                if not (mb.get(k) == ma[k] or (isinstance(ma[k], float) and math.isnan(ma[k]) and
                                               isinstance(mb.get(k), float) and math.isnan(mb[k])))}
        new = sorted(set(mb) - set(ma))
        print(f"{m:14s} {len(ma)} metrics, {'identical' if not diff else f'{len(diff)} differ: {diff}'}"
              + (f"; new: {', '.join(new)}" if new else ""))
        bad += bool(diff)
    return 1 if bad else 0


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--out")
    p.add_argument("--compare", nargs=2)
    p.add_argument("--only", help="comma-separated run keys (e.g. kale@digits): run just those")
    a = p.parse_args()
    sys.exit(compare(*a.compare) if a.compare else run(a.out, a.only.split(",") if a.only else None))
