"""Density-estimator numbers (LBT's VAE estimator, the VAE method) tabulated from ``ebmlab bench`` results.

``ebmlab bench toy`` tables the generator (sample metrics); every LBT run's ``evaluate_extra`` also stored the
estimator's density bounds against the exact data density (keys ``est_*``, the second model of the run), and every
VAE run the same numbers for the VAE (unprefixed keys; see ``methods/estimators.py``). This script reads one or
more ``results.json`` files and writes their mean ± std over seeds as a markdown table.

Usage: python benchmarks/lbt/estimator_table.py benchmarks/lbt/toy_fast/results.json [...] --out FILE
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

COLS = [("elbo", "ELBO"), ("nll_iwae", "−L_kmax (NLL bound)"), ("kl_iwae", "KL bound"), ("modes", "modes"),
        ("hq", "HQ (%)")]


def kmax(metrics: dict, prefix: str) -> int:
    head = prefix + "iwae_"
    return max(int(k[len(head):]) for k in metrics if k.startswith(head) and k[len(head):].isdigit())


def cell(vals: list[float], scale: float = 1.0) -> str:
    vals = [v * scale for v in vals if v is not None and math.isfinite(v)]
    if not vals:
        return "–"
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{statistics.fmean(vals):.3g} ± {sd:.2g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    cmd = "python benchmarks/lbt/estimator_table.py " + " ".join(sys.argv[1:])
    lines = ["# Density estimators (LBT's VAE, the VAE method) against the exact data density\n", f"Command: `{cmd}`\n",
             "Per-example nats on the first 200 test points, float64. ELBO = mean of 100 Monte Carlo log-weights per "
             "point; L_kmax = importance-weighted bound with kmax samples (column `kmax`). "
             "NLL bound = −mean L_kmax ≥ the model's test NLL in expectation; its floor is the data entropy "
             "(`data H`). KL bound = mean(log p_data − L_kmax) ≥ KL(p_data ‖ p_model) in expectation. "
             "modes / HQ: of 2500 decoder means of z ~ N(0, I), scored with the generator's mode protocol. "
             "For `lbt`/`lbt_gan` the row is the estimator (the second model of the run), for `vae` the VAE itself. "
             "Mean ± std over seeds.\n",
             "| source | data | method | runs | data H | kmax | " + " | ".join(name for _, name in COLS) + " |",
             "|" + "---|" * (6 + len(COLS))]
    for path in args.results:
        rep = json.loads(Path(path).read_text())
        keys = sorted({(r["data"], r["method"]) for r in rep["runs"]})
        for data, method in keys:
            runs = [r for r in rep["runs"] if (r["data"], r["method"]) == (data, method) and r["status"] == "ok"]
            if not runs:
                continue
            prefix = "est_" if "est_elbo" in runs[0]["metrics"] else ""
            if prefix + "elbo" not in runs[0]["metrics"]:
                continue
            h = rep["reference_real_data"][data]["nll"]
            row = [Path(path).parent.name, data, method, str(len(runs)), f"{h:.3g}",
                   str(kmax(runs[0]["metrics"], prefix))]
            row += [cell([r["metrics"].get(prefix + k) for r in runs], 100.0 if k == "hq" else 1.0) for k, _ in COLS]
            lines.append("| " + " | ".join(row) + " |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
