"""CPU seconds of one KALE training step with a claims run's arm options, on one thread: to tell a slower machine
from slower code (run it with two checkouts on one machine, one after the other, and compare).

    python benchmarks/kale/step_time.py RUN_DIR/config.json [LABEL]

RUN_DIR is a KALE run (e.g. ``claims-runs/medium/arms/kale-stacked_fashion32-4042fe8c35/s0``); its method options
and batch size are rebuilt with ``resolve_config`` on the checkout this runs from (``PYTHONPATH=CHECKOUT/src`` for
another one). Step 1 (the burst of ``n_critic_burst`` energy steps) is run first and not timed; then 30 ordinary
steps on one fixed random batch in [−1, 1] (the data do not change the step's cost).
"""

from __future__ import annotations

import json
import sys
import time

import torch


def main() -> None:
    torch.set_num_threads(1)
    from ebmlab.config import resolve_config
    from ebmlab.trainer import build_method

    c = json.load(open(sys.argv[1]))
    label = sys.argv[2] if len(sys.argv) > 2 else "this checkout"
    mc = {k: (",".join(map(str, v)) if isinstance(v, list) else v) for k, v in c["method_config"].items()
          if v is not None}
    cfg = resolve_config(c["method"], c["data"], overrides={**mc, "batch_size": c["run"]["batch_size"]})
    k = build_method(cfg, torch.device("cpu"))
    b, shape = c["run"]["batch_size"], k.spec.shape
    x = torch.rand(b, *shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    k.train_step(x, 1)  # the burst: not timed
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(2, 32):
        k.train_step(x, i)
    print(f"{label}: {30 / (time.perf_counter() - t0):.3f} steps/s wall, "
          f"{(time.process_time() - c0) / 30:.3f} CPU-s a step")


if __name__ == "__main__":
    main()
