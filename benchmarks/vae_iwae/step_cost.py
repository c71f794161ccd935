"""Cost of one training step of the IWAE paper's VAE (MLP 784–200–200–50, tanh, Bernoulli decoder, batch 100) for
the objectives compared in ``results.md``: the ELBO averaged over k draws (with one encoder pass per example, as
``ebmlab.methods.vae`` does, and with the encoder run on the batch repeated k times, as it did before), and the
IWAE bound L_k. The variants are timed in interleaved rounds in one process, so that load changes hit all alike;
the median ms per step over rounds is printed.

    python benchmarks/vae_iwae/step_cost.py --k 50 --rounds 5 --steps 40 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ebmlab.methods.base import optimizer_step
from ebmlab.methods.vae import VAE, VAEConfig


def make(objective: str, k: int) -> VAE:
    cfg = VAEConfig(z_dim=50, hidden=(200, 200), act="tanh", decoder="bernoulli", objective=objective, train_k=k,
                    lr=1e-3)
    return VAE(cfg, data_dim=784, device=torch.device("cpu"), generator=torch.Generator().manual_seed(0))


def repeated_encoder_step(m: VAE, batch: torch.Tensor, k: int) -> None:
    """The former ELBO step: the batch repeated k times through encoder and decoder."""
    x = batch.repeat(k, 1)
    loss = -m.estimator.elbo(m.vae, x, generator=m.rng).elbo.mean()
    optimizer_step(m.optimizers["vae"], loss, m.recipe)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    batch = (torch.rand(100, 784, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    variants = {
        f"elbo, k={a.k}, one encoder pass": (make("elbo", a.k), None),
        f"elbo, k={a.k}, batch repeated k times": (make("elbo", a.k), "repeat"),
        f"iwae, k={a.k}": (make("iwae", a.k), None),
        "elbo, k=1": (make("elbo", 1), None),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(a.rounds + 1):  # round 0 warms up
        for name, (m, how) in variants.items():
            t = time.perf_counter()
            for s in range(a.steps):
                if how == "repeat":
                    repeated_encoder_step(m, batch, a.k)
                else:
                    m.train_step(batch, s)
            if r:
                times[name].append((time.perf_counter() - t) / a.steps * 1e3)
    print(f"torch {torch.__version__}, {a.threads} thread(s), {a.rounds} rounds × {a.steps} steps")
    base = statistics.median(times[f"iwae, k={a.k}"])
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:40s} {med:8.1f} ms/step  (× {med / base:.2f} of iwae; rounds {min(ts):.1f}–{max(ts):.1f})")


if __name__ == "__main__":
    main()
