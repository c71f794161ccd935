"""What moves the stats model's numbers: the start of the inference and its number of L-BFGS iterations.

usage: python benchmarks/sr/ablation_infer.py RUNS_DIR OUT_JSON [--n 200]
RUNS_DIR: bench_sr.py's run directories for Fashion-MNIST (uses RUNS_DIR/stats and RUNS_DIR/mse). For each start
(the model's own pixel-regression head, bicubic) and iterations in (0, 5, 15, 50, 150), the estimate projected onto
{Dx = y, 0 <= x <= 1}: PSNR, SSIM, statistics distance, gradient ratio and the model's energy ||Phi(x) - Psi(y)||^2.
"""

from __future__ import annotations

import json
import sys
import time

import torch

from ebmlab.sr import api, ops
from ebmlab.sr.data import get_sr_data
from ebmlab.sr.metrics import all_metrics, eval_phi


def main() -> None:
    runs, out = sys.argv[1], sys.argv[2]
    n = int(sys.argv[sys.argv.index("--n") + 1]) if "--n" in sys.argv else 200
    d = get_sr_data("fashion", scale=4)
    x = d.test[:n]
    y = ops.down(x, 4)
    phi_e = eval_phi(x)
    _, net = api.load_sr_run(f"{runs}/stats")
    _, mse = api.load_sr_run(f"{runs}/mse")
    rows = [{"start": "mse model (no inference)", "iters": None,
             **all_metrics(mse.predict(y), x, phi=phi_e)}]
    print(json.dumps(rows[-1]), flush=True)
    with torch.no_grad():
        starts = {"own pixel head": net._init(y), "bicubic": ops.bicubic(y, 4)}
        t = net.target(y)
    for name, init in starts.items():
        for it in (0, 5, 15, 50, 150):
            t0 = time.perf_counter()
            xh = ops.project_box(net.infer(y, iters=it, init=init, target=t), y, 4)
            secs = time.perf_counter() - t0
            with torch.no_grad():
                e = float(net.energy(xh, t).mean())
            rows.append({"start": name, "iters": it, "infer_s": round(secs, 1), "energy": round(e, 1),
                         **all_metrics(xh, x, phi=phi_e)})
            print(json.dumps(rows[-1]), flush=True)
    with open(out, "w") as fh:
        json.dump({"command": " ".join(sys.argv), "n": n, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
