"""Why LBT's estimator gives the Fashion-MNIST test images a high NLL (``fashion_nll/``): the reconstruction term of
its Gaussian decoder, whose variance is fixed at ``est_decoder_var`` (0.01, as in the paper), at the error with which
it reconstructs test images — beside the same term for the VAE trained on the data, whose variance is learned.

For 1000 uniformly dequantised test images (data in [−1, 1], bin width w = 2/255), z = the encoder's mean, and the
decoder's mean μ(z) and variance σ²:
    rec = Σ_pixels [(x − μ)² / (2σ²) + ½ log(2πσ²)] + D·log(1/w)
the −log p(x|z) part of the bound in nats of the 8-bit data (the IWAE bound adds the KL-like terms on top); and the
same with σ² set to the reconstructions' mean square error, the best single variance for them.

    python benchmarks/images/lbt_estimator_terms.py benchmarks/images/fashion_nll/runs/{lbt,vae}-fashion-g0-s* \\
        --out benchmarks/images/fashion_nll/estimator_terms.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch


def main() -> None:
    from ebmlab.api import load_run
    from ebmlab.data import get_dataset

    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="+")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    torch.set_num_threads(1)
    ds = get_dataset("fashion")
    x = ds.test[:1000].float()
    w = 2 / 255
    out = {}
    for run in a.runs:
        _, m, step = load_run(run, device="cpu")
        vae = m.networks.get("estimator") or m.networks["vae"]
        xd = x + (torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) - 0.5) * w
        with torch.no_grad():
            mu, _ = vae.encode(xd)
            mean, logvar = vae.decode(mu)
            logvar = logvar.detach()
        flat, mean = xd.reshape(len(x), -1), mean.reshape(len(x), -1)
        var = logvar.exp().expand_as(mean.reshape(xd.shape)).reshape(len(x), -1)
        d, mse = flat.shape[1], float(((flat - mean) ** 2).mean())
        square = (0.5 * (flat - mean) ** 2 / var).sum(1)
        rec = square + 0.5 * torch.log(2 * math.pi * var).sum(1) + d * math.log(1 / w)
        out[Path(run).name] = {"step": step, "decoder_var": float(var.mean()), "rmse_per_pixel": mse ** 0.5,
                               "squared_error_term_nats": float(square.mean()), "rec_nats": float(rec.mean()),
                               # the same reconstructions under the best single variance (σ² = their mean square
                               # error): what a learned variance could at most recover of rec_nats
                               "rec_nats_best_constant_var": float(0.5 * d * (1 + math.log(2 * math.pi * mse))
                                                                   + d * math.log(1 / w))}
        print(Path(run).name, out[Path(run).name], flush=True)
    a.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
