"""Variance of the ELBO's gradient: score function (REINFORCE) vs reparameterised, single-draw estimates
(``ebmlab.bounds.gradients``).

1. Linear-Gaussian model p(z) = N(0, I_d), p(x|z) = N(z, s² I), q = N(μ, σ²) away from its optimum, for latent
   dimensions d = 1..64: per-coordinate variance of ∂/∂μ for both estimators (the reparameterised one also against
   its closed form σ²(1 + 1/s²)²), and their ratio.
2. A trained VAE (an ``ebmlab train vae`` run on binarised Fashion-MNIST): for test points, the gradient of the
   ELBO with respect to the encoder's (μ, log σ) of q(z|x), estimated both ways from the same number of draws;
   the ratio of variances per coordinate and the signal-to-noise ratio |mean|/std.

    python benchmarks/gradients/variance.py --run RUN_DIR --out benchmarks/gradients
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ebmlab.api import load_run  # noqa: E402
from ebmlab.bounds.gradients import elbo_gradient_samples, linear_gaussian_elbo_gradient  # noqa: E402
from ebmlab.data import get_dataset  # noqa: E402

DT = torch.float64


def linear_gaussian(n: int, s2: float = 0.3) -> list[dict]:
    rows = []
    for d in (1, 4, 16, 64):
        g = torch.Generator().manual_seed(d)
        x = torch.randn(d, generator=g, dtype=DT) * 1.5
        mu = torch.zeros(d, dtype=DT)
        ls = torch.full((d,), -0.5, dtype=DT)

        def f(z, x=x):
            return (-0.5 * z.square() - 0.5 * (x - z).square() / s2).sum(1)
        rep = elbo_gradient_samples(f, mu, ls, n, estimator="reparam", generator=g)[:, :d]
        sco = elbo_gradient_samples(f, mu, ls, n, estimator="score", generator=g)[:, :d]
        exact = linear_gaussian_elbo_gradient(x, mu, ls, s2)[:d]
        closed = float(math.exp(2 * -0.5) * (1 + 1 / s2) ** 2)
        rows.append({"d": d, "draws": n, "var_reparam": float(rep.var(0).mean()), "var_reparam_closed_form": closed,
                     "var_score": float(sco.var(0).mean()), "ratio": float((sco.var(0) / rep.var(0)).median()),
                     "mean_abs_err_reparam": float((rep.mean(0) - exact).abs().mean()),
                     "mean_abs_err_score": float((sco.mean(0) - exact).abs().mean())})
    return rows


def trained_vae(run: str, n_points: int, n: int) -> dict:
    cfg, m, step = load_run(run, device="cpu")
    vae = m.vae.double()
    ds = get_dataset(cfg.data)
    x_all = ds.test[:n_points].double()
    ratios, snr_r, snr_s = [], [], []
    for i in range(n_points):
        x = x_all[i:i + 1]
        with torch.no_grad():
            mu, logvar = vae.encode(x)
        mu, ls = mu[0], 0.5 * logvar[0]

        def f(z, x=x):
            return m.estimator.log_lik(vae.decode(z), x.expand(len(z), *x.shape[1:])) - 0.5 * z.square().sum(1) \
                - 0.5 * z.shape[1] * math.log(2 * math.pi)
        g = torch.Generator().manual_seed(i)
        rep = elbo_gradient_samples(f, mu, ls, n, estimator="reparam", generator=g)
        sco = elbo_gradient_samples(f, mu, ls, n, estimator="score", generator=g)
        ratios.append((sco.var(0) / rep.var(0)).numpy())
        snr_r.append((rep.mean(0).abs() / rep.std(0)).numpy())
        snr_s.append((sco.mean(0).abs() / sco.std(0)).numpy())
    r = np.concatenate(ratios)
    return {"run": run, "step": step, "data": cfg.data, "test_points": n_points, "draws_per_point": n,
            "coordinates": int(r.size), "ratio_median": float(np.median(r)), "ratio_p10": float(np.percentile(r, 10)),
            "ratio_p90": float(np.percentile(r, 90)), "ratio_min": float(r.min()),
            "snr_reparam_median": float(np.median(np.concatenate(snr_r))),
            "snr_score_median": float(np.median(np.concatenate(snr_s))), "_ratios": r}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True)
    ap.add_argument("--out", default="benchmarks/gradients")
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--points", type=int, default=20)
    a = ap.parse_args()
    t0 = time.time()
    lin = linear_gaussian(100_000)
    vae = trained_vae(a.run, a.points, a.draws)
    ratios = vae.pop("_ratios")
    out = Path(a.out)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    ds = [r["d"] for r in lin]
    axes[0].loglog(ds, [r["var_score"] for r in lin], "o-", label="score function")
    axes[0].loglog(ds, [r["var_reparam"] for r in lin], "s-", label="reparameterised")
    axes[0].loglog(ds, [r["var_reparam_closed_form"] for r in lin], "k:", label="reparameterised, closed form")
    axes[0].set(xlabel="latent dimension d", ylabel="variance of ∂ELBO/∂μ_j (one draw)",
                title="linear-Gaussian model")
    axes[0].legend(fontsize=8)
    axes[1].hist(np.log10(ratios), bins=60)
    axes[1].set(xlabel="log10 Var[score] / Var[reparam] per coordinate",
                ylabel="coordinates", title=f"trained VAE ({vae['data']}, {vae['coordinates']} coords)")
    fig.savefig(out / "variance.png", dpi=110)
    res = {"linear_gaussian": lin, "trained_vae": vae, "wall_s": time.time() - t0}
    (out / "variance.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
