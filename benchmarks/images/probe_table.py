"""VGAN's Table-1 claim in small: linear-probe test error of the frozen energy (VGAN) vs discriminator (GAN)
features, the same conv architecture and training budget, several seeds.

    ebmlab bench images --methods gan,vgan --data fashion --seeds 3 --steps 600 --jobs 2 \
        --out benchmarks/images/fashion_probe eval_samples=1000 loggers=
    python benchmarks/images/probe_table.py benchmarks/images/fashion_probe [--no-floors]

``--no-floors`` skips the untrained-critic and raw-pixel rows (deterministic; in fashion_probe/probe.md).

Features: the critic's 256-unit penultimate layer (width 32) for both methods (for VGAN the expert inputs);
standardised; multinomial logistic regression (scikit-learn, C = 1) on 10,000 training images, test error on the
10,000 test images (``ebmlab.metrics.probe``). Also the probe on raw pixels and on an untrained critic of the
same architecture, as floors for comparison.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

from ebmlab.data import get_dataset
from ebmlab.metrics.probe import linear_probe
from ebmlab.trainer import build_method
from ebmlab.api import load_run
from ebmlab.config import resolve_config


class _Pixels:
    device = torch.device("cpu")

    def features(self, x):
        return x.flatten(1)

    def train(self, mode=True):
        pass


def main(bench_dir: str, floors: bool = True) -> None:
    t0 = time.perf_counter()
    rows: dict[str, list[float]] = {}
    data = None
    for run in sorted((Path(bench_dir) / "runs").iterdir()):
        cfg, method, step = load_run(run)
        data = cfg.data
        ds = get_dataset(cfg.data)
        err = linear_probe(method, ds, seed=0)["probe_test_error"]
        rows.setdefault(f"{cfg.method} (trained {step} steps)", []).append(err)
        print(run.name, err, flush=True)
    ds = get_dataset(data)
    if floors:  # deterministic: the same for every bench folder on the same data
        for name in ("gan", "vgan"):
            m = build_method(resolve_config(name, data, overrides={"seed": 0}), torch.device("cpu"))
            rows[f"{name} (untrained critic)"] = [linear_probe(m, ds, seed=0)["probe_test_error"]]
        rows["raw pixels"] = [linear_probe(_Pixels(), ds, seed=0)["probe_test_error"]]
    lines = [f"# Linear probe: energy vs discriminator features on {data}\n",
             f"Command: `python benchmarks/images/probe_table.py {bench_dir}{'' if floors else ' --no-floors'}` (runs from the `ebmlab bench` command in "
             f"this script's docstring); wall time {time.perf_counter() - t0:.0f} s.\n",
             "Test error of a logistic regression on frozen, standardised penultimate features (10,000 training "
             "images, the 10,000 test images); mean ± std over training seeds.\n",
             "| features | seeds | test error (%) |", "|---|---|---|"]
    for k, v in rows.items():
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        lines.append(f"| {k} | {len(v)} | {100 * statistics.fmean(v):.2f} ± {100 * sd:.2f} |")
    out = Path(bench_dir) / "probe.md"
    out.write_text("\n".join(lines) + "\n")
    (Path(bench_dir) / "probe.json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1], floors="--no-floors" not in sys.argv[2:])
