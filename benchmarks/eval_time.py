"""Evaluation time of a 2D run, per method: the final evaluation (every metric, the quadrature density metrics
included) and the plots, on a short-trained ring8 run with the method's ring8 presets.

usage: python benchmarks/eval_time.py [--steps 200]    writes benchmarks/eval_time.md
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import ebmlab
from ebmlab.methods import METHODS
from ebmlab.plots import plot_run
from ebmlab.runs import RunDir
from ebmlab.config import dataset_of
from ebmlab.evaluation import evaluate
from ebmlab.api import load_run

MCMC = {"kale": "latent kinetic Langevin (mcmc_steps chains per sample)", "vgan_vcd": "its MCMC transition"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    a = ap.parse_args()
    rows, t_all = [], time.perf_counter()
    load0 = " ".join(f"{x:.2f}" for x in os.getloadavg())
    for name, cls in METHODS.items():
        if cls.data_kinds is not None:  # binary-only methods do not model 2D data
            continue
        with tempfile.TemporaryDirectory() as d:
            ebmlab.train(name, "ring8", out=f"{d}/r", progress=False,
                         overrides={"steps": a.steps, "plots": False, "loggers": "",
                                    "eval_samples": 10, "eval_density": False})
            cfg, method, step = load_run(f"{d}/r")
            ds = dataset_of(cfg.data, cfg.run)
            rc = dataclasses.replace(cfg.run, eval_samples=2500, eval_density=True)
            t0 = time.perf_counter()
            evaluate(method, ds, rc, step)
            t_eval = time.perf_counter() - t0
            t0 = time.perf_counter()
            plot_run(method, ds, RunDir(f"{d}/r"))
            t_plot = time.perf_counter() - t0
        rows.append((name, t_eval, t_plot, MCMC.get(name, "")))
        print(f"{name}: eval {t_eval:.1f} s, plots {t_plot:.1f} s", flush=True)
    load1 = " ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = ["# Evaluation time of a 2D run", "",
             f"Command: `python benchmarks/eval_time.py --steps {a.steps}` — 2-core CPU machine, load average "
             f"{load0} at start, {load1} at end; total {time.perf_counter() - t_all:.0f} s.", "",
             "Each method trained for the given steps on ring8 (its presets otherwise), then timed: the final "
             "evaluation of a run (2500 samples, every sample metric, exact W1, the quadrature density metrics "
             "for methods whose exp(−E) is the density, the method's own extra numbers) and the plots. Aim: "
             "≤ 10 s for methods without MCMC sampling.", "",
             "| method | evaluation (s) | plots (s) | total (s) | MCMC in evaluation |", "|---|---:|---:|---:|---|"]
    for name, te, tp, mc in rows:
        lines.append(f"| {name} | {te:.1f} | {tp:.1f} | {te + tp:.1f} | {mc or '—'} |")
    Path(__file__).with_name("eval_time.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
