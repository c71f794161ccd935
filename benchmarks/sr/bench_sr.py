"""Super-resolution benchmark: every model on Fashion-MNIST (×4, 28 → 7) and scikit-image crops (×4, 64 → 16).

usage: python benchmarks/sr/bench_sr.py OUT_DIR [--data fashion,skimage] [--steps fashion=3000,skimage=1000] [--jobs 2]
Trains bicubic, tv, mse, stats (fixed Φ) and stats with a learned Φ into OUT_DIR/DATA/MODEL (each a normal
`ebmlab sr train` run directory, resumable), evaluates them on the same test images, evaluates the stats model
also from the bicubic start (init=bicubic instead of its own pixel-regression head), and writes
OUT_DIR/results.json, results.md and one comparison grid per data set
(low-res | bicubic | tv | mse | stats | stats-learned | stats from bicubic | 2 samples | truth).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from ebmlab.sr import api, ops
from ebmlab.sr.data import get_sr_data
from ebmlab.sr.metrics import all_metrics

RUNS = [("bicubic", {}), ("tv", {}), ("mse", {}), ("stats", {}), ("stats-learned", {"phi": "learned"})]
N_EVAL = {"fashion": 500, "skimage": 225}  # skimage: every second test crop (both test images)
BATCH = {"fashion": 64, "skimage": 16}


def _train(args) -> dict:
    data, name, opts, steps, out = args
    torch.set_num_threads(1)
    model = name.split("-")[0]
    if model in ("mse", "stats"):
        opts = {"batch_size": BATCH[data], **opts}
    t0 = time.perf_counter()
    api.train_sr(data, model, out=out, steps=steps if model in ("mse", "stats") else None, options=opts,
                 progress=False, evaluate=False)
    return {"data": data, "name": name, "wall_s": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--data", default="fashion,skimage")
    ap.add_argument("--steps", default="fashion=3000,skimage=1000")
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    out = Path(a.out)
    datas = a.data.split(",")
    t_start = time.perf_counter()
    load0 = os.getloadavg()
    steps = {k: int(v) for k, v in (kv.split("=") for kv in a.steps.split(","))}
    jobs = [(d, n, o, steps[d], str(out / d / n)) for d in datas for n, o in RUNS]
    with ProcessPoolExecutor(a.jobs) as ex:
        walls = list(ex.map(_train, jobs))
    torch.set_num_threads(2)
    results = {"command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), "steps": steps, "walls": walls,
               "rows": []}
    for d in datas:
        data = get_sr_data(d, scale=4)
        x = data.test[:: max(1, len(data.test) // N_EVAL[d])][:N_EVAL[d]]
        y = ops.down(x, 4)
        outs = {}
        for name, _ in RUNS + [("stats-bicubic-start", None)]:
            run_dir = out / d / ("stats" if name == "stats-bicubic-start" else name)
            cfg, net = api.load_sr_run(run_dir)
            if name == "stats-bicubic-start":
                net.options["init"] = "bicubic"
            t0 = time.perf_counter()
            xhat = net.predict(y)
            infer = time.perf_counter() - t0
            m = all_metrics(xhat, x, fd_dataset="fashion" if d == "fashion" else None)
            summ = json.loads((run_dir / "summary.json").read_text())
            row = {"data": d, "model": name, "train_s": summ.get("train_seconds", 0.0),
                   "fit": summ.get("fit", {}), "infer_ms_per_image": round(1000 * infer / len(x), 2),
                   "constraint_max_abs": float((ops.down(xhat, 4) - y).abs().max()), **m}
            results["rows"].append(row)
            print(json.dumps(row), flush=True)
            outs[name] = (net, xhat)
        # the comparison grid
        pick = torch.arange(0, len(x), max(1, len(x) // 6))[:6]
        g = torch.Generator().manual_seed(0)
        net = outs["stats"][0]
        samples = torch.stack([net.sample(y[i:i + 1], 2, generator=g, start=outs["stats"][1][i:i + 1])
                               for i in pick.tolist()])
        cols = {"bicubic": outs["bicubic"][1][pick], "tv": outs["tv"][1][pick], "mse": outs["mse"][1][pick],
                "stats": outs["stats"][1][pick], "stats-learned": outs["stats-learned"][1][pick],
                "stats from bicubic": outs["stats-bicubic-start"][1][pick]}
        api.save_grid(out / f"grid_{d}.png", y[pick], cols, x[pick], samples)
        results.setdefault("sample_spread", {})[d] = float(samples.std(1).mean())
    results["wall_s"] = round(time.perf_counter() - t_start, 1)
    results["load_start"] = " ".join(f"{v:.2f}" for v in load0)
    results["load_end"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    (out / "results.json").write_text(json.dumps(results, indent=1))
    cols = ["psnr", "ssim", "stats_dist", "grad_ratio", "clf_fd", "train_s", "infer_ms_per_image",
            "constraint_max_abs"]
    lines = ["| data | model | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 2)]
    for r in results["rows"]:
        vals = [f"{r[c]:.4g}" if isinstance(r.get(c), float) else str(r.get(c, "—")) for c in cols]
        lines.append(f"| {r['data']} | {r['model']} | " + " | ".join(vals) + " |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
