"""Active latent units of trained VAE/IWAE runs, the IWAE paper's measure of how much of the latent space a model
uses: unit u is active when Cov_x(E_{q(z|x)}[z_u]) = Var_x(μ_u(x)) over the test set exceeds 10⁻² (Burda et al.,
2016, Sec. 5.2; the paper's threshold). Also printed: the count at 10⁻¹ and the variance of each unit's posterior
mean, sorted, so that units just above the threshold can be told from those the model uses fully (Var ≈ 1).

    python benchmarks/vae_iwae/active_units.py RUN_DIR [RUN_DIR ...] --data fashion_dynbin
"""

from __future__ import annotations

import argparse

import torch

from ebmlab.api import load_run
from ebmlab.data import get_dataset

THRESHOLD = 1e-2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--data", default="fashion_dynbin")
    a = ap.parse_args()
    x = get_dataset(a.data).test
    for r in a.runs:
        _, m, step = load_run(r, device="cpu")
        with torch.no_grad():
            mu = torch.cat([m.features(x[i:i + 1000]) for i in range(0, x.shape[0], 1000)]).double()  # μ(x)
        var = mu.var(0, correction=0).sort(descending=True).values
        n, n10 = int((var > THRESHOLD).sum()), int((var > 10 * THRESHOLD).sum())
        print(f"{r}: step {step}, {n} active units of {var.numel()} on {x.shape[0]} test images ({n10} above "
              f"{10 * THRESHOLD:g}); "
              f"Var_x(mu_u) sorted: {' '.join(f'{v:.2g}' for v in var.tolist())}")


if __name__ == "__main__":
    main()
