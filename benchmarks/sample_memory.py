"""Peak memory of drawing many samples from a run: the batches kept as a list of small tensors and joined at the
end (how ``ebmlab sample`` gathered them before) against ``ebmlab.api.draw_samples``, which fills one array
allocated at the first batch.

A tiny GAN run on ring8 (2D samples) is trained into a temporary directory; each way of gathering then runs in a
fresh interpreter (so that one does not inherit the other's heap) and reports its resident memory after loading the
run and the peak while drawing (Linux: the peak, VmHWM, is reset after loading through /proc/self/clear_refs).

Usage: python benchmarks/sample_memory.py [--n 3000000] [--batch 1000] [--out benchmarks/sample_memory.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench_report import emit  # this directory is first on the path when the script runs

CHILD = r"""
import gc, json, sys, torch
from ebmlab.api import draw_samples, load_run

def status_mb(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024

run, n, batch, way = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
cfg, method, step = load_run(run, "cpu")
gc.collect()
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # resets the peak (VmHWM) to the present RSS: loading the run's own peak is not counted
before = status_mb("VmRSS")
if way == "list_then_join":
    gen = torch.Generator().manual_seed(0)
    chunks = []
    with torch.no_grad():
        for i in range(0, n, batch):
            chunks.append(method.sample(min(batch, n - i), generator=gen).detach().cpu())
    x = torch.cat(chunks)
else:
    x, _ = draw_samples(run, n, batch_size=batch, loaded=(cfg, method, step))
print(json.dumps({"before_mb": before, "peak_mb": status_mb("VmHWM"), "shape": list(x.shape)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=3_000_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    from ebmlab.cli import main as cli

    t0 = time.time()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        run = str(Path(tmp) / "gan")
        assert cli(["train", "gan", "--data", "ring8", "--steps", "5", "--out", run, "--no-progress",
                    "eval_samples=100", "eval_density=false", "plots=false", "loggers="]) == 0
        for way in ("list_then_join", "draw_samples"):
            out = subprocess.run([sys.executable, "-c", CHILD, run, str(args.n), str(args.batch), way],
                                 capture_output=True, text=True, check=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            rows.append((way, r))
            print(way, r, flush=True)
    array_mb = args.n * 2 * 4 / 2 ** 20
    lines = ["# Peak memory of drawing samples\n",
             f"Command: `python benchmarks/sample_memory.py --n {args.n} --batch {args.batch}`; {platform.machine()}, "
             f"{os.cpu_count()} cores, torch {torch.__version__}; {time.strftime('%Y-%m-%d %H:%M')}. {args.n} 2D "
             f"samples of a tiny GAN run on ring8 in batches of {args.batch}: the float32 array itself is "
             f"{array_mb:.0f} MB.\n",
             "| gathering | peak RSS (MB) | RSS before drawing (MB) | increase (MB) | increase / array |",
             "|---|---|---|---|---|"]
    for way, r in rows:
        inc = r["peak_mb"] - r["before_mb"]
        lines.append(f"| {way} | {r['peak_mb']:.0f} | {r['before_mb']:.0f} | {inc:.0f} | {inc / array_mb:.1f}× |")
    lines += ["", f"Total {time.time() - t0:.0f} s; 1-min load average {os.getloadavg()[0]:.2f} at the end."]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
