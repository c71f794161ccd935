"""The spectrum of a BiB generator's Jacobian along its training, and how far the LOBPCG estimate of s_min is from it.

    python benchmarks/images/bib_jacobian.py RUN_DIR [RUN_DIR ...] [--draws 16] [--iters 2 5 10 20 50]

BiB's Jacobian lower bound (i) is H(z) + d·E log s_min(J_z); on images the training estimates s_min by a few LOBPCG
iterations (the release: 2). For each run and each checkpoint it kept (``keep_checkpoints=true``: ``RUN/checkpoints/
step-N.pt``), then its last one, and for the generator at initialisation (the run's seed), this prints over
``--draws`` latent draws (fixed: seed 0): the mean log singular value of J (log volume / d), the mean log s_min,
the mean log10 condition number, all from J's singular values in float64, and the LOBPCG excess: the mean of
d·log ŝ (the training's estimate, ``--iters`` iterations; the first value is the one each row uses) minus the exact
d·log s_min, in nats. A Ritz value is never below s_min, so the excess is ≥ 0 up to rounding. With several
``--iters`` the last checkpoint's excess is printed at each. And what makes J lose rank: the mean number of J's
rows (output values) with any non-zero derivative — an output whose every path from z runs through an inactive
ReLU, or through a tanh saturated to ±1 in float32, has a zero row —, the fraction of output values saturated
(|x| ≥ 1 − 1e-6), and the smallest rank of J over the draws (``matrix_rank``, float64). One thread; about 2 s per checkpoint at d = 128 and
32×32×3 images on one core.
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

import torch

from ebmlab.api import load_run
from ebmlab.bounds.entropy import jacobian_and_output, lobpcg_entropy
from ebmlab.methods.bib.bounds import log_singular_values
from ebmlab.trainer import build_method


def spectrum(method, draws: int, iters: int) -> dict[str, float]:
    G = method.G.eval()
    z = torch.randn(draws, method.config.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        x, J = jacobian_and_output(G, z)
        log_s = log_singular_values(J)
    exact = method.config.z_dim * log_s[:, -1]
    h = lobpcg_entropy(G, z, n_iter=iters, generator=torch.Generator().manual_seed(1))
    ok = h.valid & torch.isfinite(exact)
    return {"mean log s": float(log_s.mean()), "log s_min": float(log_s[:, -1].mean()),
            "log10 cond": float((log_s[:, 0] - log_s[:, -1]).mean() / math.log(10)),
            "excess": float((h.log_volume.detach().double() - exact)[ok].mean()),
            "live rows": float((J.abs().amax(2) > 0).sum(1).double().mean()),
            "saturated": float((x.flatten(1).abs() >= 1 - 1e-6).double().mean()),
            "rank min": int(torch.linalg.matrix_rank(J.double()).min())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--draws", type=int, default=16)
    ap.add_argument("--iters", type=int, nargs="+", default=[2])
    a = ap.parse_args()
    torch.set_num_threads(1)
    for run in a.runs:
        cfg, method, last = load_run(run, device="cpu")
        print(f"{run}: z_dim {method.config.z_dim}, LOBPCG {a.iters[0]} iterations, {a.draws} draws")
        print("| step | mean log s | log s_min | log10 cond | LOBPCG excess (nats) | live rows of J | saturated pixels "
              "| smallest rank |\n|---|---|---|---|---|---|---|---|")
        kept = sorted(Path(run, "checkpoints").glob("step-*.pt"), key=lambda p: int(re.findall(r"\d+", p.name)[0]))
        rows = [("0 (init)", build_method(cfg, torch.device("cpu")))]
        for p in kept:
            m = build_method(cfg, torch.device("cpu"))
            m.load_state_dict(torch.load(p, weights_only=True)["method_state"], any_device=True)
            rows.append((p.stem.removeprefix("step-"), m))
        rows.append((f"{last} (last)", method))
        for step, m in rows:
            r = spectrum(m, a.draws, a.iters[0])
            print(f"| {step} | {r['mean log s']:.2f} | {r['log s_min']:.2f} | {r['log10 cond']:.2f} | {r['excess']:.0f} "
                  f"| {r['live rows']:.0f} | {r['saturated']:.3f} | {r['rank min']} |")
        if len(a.iters) > 1:
            sweep = {i: spectrum(method, a.draws, i)["excess"] for i in a.iters}
            print("last checkpoint, excess by iterations: " + ", ".join(f"{i}: {v:.0f}" for i, v in sweep.items()))


if __name__ == "__main__":
    main()
