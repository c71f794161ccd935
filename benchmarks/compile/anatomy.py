"""Where an eager training step's CPU time goes: its operator count and the share of its profiled CPU time spent in
matrix products and convolutions (the work a compiler cannot remove); the rest — the fixed cost of many small
operations, elementwise kernels, optimizer updates — is what compiling the step can fuse away, so 1 / (that share)
bounds the speed-up a compiled step can reach (Amdahl).

    python benchmarks/compile/anatomy.py gan:ring8 vgan:ring8 ...
"""

from __future__ import annotations

import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

GEMM = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::mkldnn_convolution",
        "aten::convolution_backward")


def main() -> None:
    torch.set_num_threads(1)
    from ebmlab.config import resolve_config
    from ebmlab.data.batches import make_batches
    from ebmlab.placement import build_method

    for spec in sys.argv[1:]:
        method, data = spec.split(":")
        cfg = resolve_config(method, data, overrides={"threads": 1})
        m = build_method(cfg, torch.device("cpu"))
        b = make_batches(cfg.dataset, cfg.run.batches, cfg.run.batch_size, 0)
        xs = [x for _, x in zip(range(60), b.stream(0, 60))]
        for i in range(10):
            m.train_step(xs[i], i + 1)
        t0 = time.perf_counter()
        for i in range(10, 40):
            m.train_step(xs[i], i + 1)
        per = (time.perf_counter() - t0) / 30
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for i in range(40, 60):
                m.train_step(xs[i], i + 1)
        ev = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in ev)
        gemm = sum(e.self_cpu_time_total for e in ev if e.key in GEMM)
        ops = sum(e.count for e in ev) / 20
        print(f"| {method} | {data} | {cfg.run.batch_size} | {per * 1e3:.2f} | {ops:.0f} | {100 * gemm / total:.0f} % | "
              f"{total / max(gemm, 1):.2f}× |", flush=True)


if __name__ == "__main__":
    main()
