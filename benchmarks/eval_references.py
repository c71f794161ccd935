"""The references a run is scored beside (real data, noise, one image repeated), computed and then read back from
the store that keeps them (``ebmlab.metrics.evaluators.stored_reference``): each in a fresh process with one
thread, the process's CPU time for the three, and whether the read-back numbers are the computed ones.

    python benchmarks/eval_references.py --data stacked_fashion --n 1000 --out benchmarks/eval_references.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from bench_report import emit  # this directory is first on the path when the script runs

CHILD = """
import json, sys, time, torch
torch.set_num_threads(1)
from ebmlab.data import get_dataset
from ebmlab.metrics import evaluators as ev
ds = get_dataset(sys.argv[1])
t = time.process_time()
out = [ev.real_reference(ds, int(sys.argv[2])), ev.noise_floor(ds, int(sys.argv[2])),
       ev.collapse_reference(ds, int(sys.argv[2]))]
print(json.dumps({"cpu_s": time.process_time() - t, "refs": out}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="stacked_fashion")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--out")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as store:
        env = {**os.environ, "EBMLAB_REFERENCES": store}
        runs = []
        for _ in ("computed", "read"):
            t = time.perf_counter()
            r = subprocess.run([sys.executable, "-c", CHILD, a.data, str(a.n)], env=env, capture_output=True,
                               text=True, check=True)
            runs.append({**json.loads(r.stdout.splitlines()[-1]), "wall_s": time.perf_counter() - t})
        kept = len(os.listdir(store))
    import torch

    lines = [f"# The references of {a.data} at {a.n} samples: computed, then read back", "",
             f"Command: `python benchmarks/eval_references.py --data {a.data} --n {a.n}"
             + (f" --out {a.out}`" if a.out else "`")
             + f"; {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} (1-min, at the end); torch {torch.__version__};"
             f" {time.strftime('%Y-%m-%d %H:%M')}", "",
             "| | CPU-s (the three references, 1 thread) | wall of the process (s) |", "|---|---|---|"]
    for name, r in zip(("computed (an empty store)", "read back (the same store)"), runs):
        lines.append(f"| {name} | {r['cpu_s']:.2f} | {r['wall_s']:.1f} |")
    same = json.dumps(runs[0]["refs"]) == json.dumps(runs[1]["refs"])
    lines += ["", f"Files kept: {kept}. The numbers read back are the computed ones: {'yes' if same else 'NO'} "
                  f"(their JSON compared byte for byte)."]
    emit(lines, a.out)


if __name__ == "__main__":
    main()
