"""LBT's CPU step with the look-ahead's Adam update as a loop over parameters (SRC_A) and as multi-tensor
torch._foreach_* operations (SRC_B): milliseconds a step on one thread at batch 8 / 256 / 512, the two code trees
measured in alternating rounds (each round a fresh process per tree, 20 steps per batch after 3), median over rounds.

    python benchmarks/lbt/foreach_step.py --a <checkout before>/src --b src --rounds 5 --out foreach_step.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

WORKER = r"""
import json, math, sys, time, torch
torch.set_num_threads(1)
from ebmlab.methods.lbt import LBT, LBTConfig
def ring(n):
    g = torch.Generator().manual_seed(2)
    a = 2 * math.pi * torch.randint(0, 8, (n,), generator=g) / 8
    return torch.stack([a.cos(), a.sin()], 1) + 0.01 * torch.randn(n, 2, generator=g)
out = {}
for b in (8, 256, 512):
    torch.manual_seed(0)
    m = LBT(LBTConfig(), data_dim=2, device=torch.device("cpu"), generator=torch.Generator().manual_seed(1))
    x = ring(b)
    for i in range(3):
        m.train_step(x, i + 1)
    ts = []
    for i in range(20):
        t0 = time.perf_counter(); m.train_step(x, 4 + i); ts.append(time.perf_counter() - t0)
    out[b] = 1000 * sorted(ts)[len(ts) // 2]
print(json.dumps(out))
"""


def one(src: str) -> dict[str, float]:
    r = subprocess.run([sys.executable, "-c", WORKER], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONPATH": src})
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True, help="src directory of the loop version")
    ap.add_argument("--b", required=True, help="src directory of the multi-tensor version")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    load0 = os.getloadavg()[0]
    runs: dict[str, list[dict[str, float]]] = {"a": [], "b": []}
    for _ in range(a.rounds):
        runs["a"].append(one(a.a))
        runs["b"].append(one(a.b))
    med = {k: {b: statistics.median(r[b] for r in v) for b in v[0]} for k, v in runs.items()}
    res = {"command": " ".join(sys.argv), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
           "load_1min_before": load0, "load_1min_after": os.getloadavg()[0], "ms_per_step": med,
           "speedup_b_over_a": {b: med["a"][b] / med["b"][b] for b in med["a"]}, "rounds": runs}
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps({k: res[k] for k in ("ms_per_step", "speedup_b_over_a", "load_1min_before")}, indent=1))


if __name__ == "__main__":
    main()
