"""Training steps per second with subnormal floats kept (IEEE, PyTorch's default) and flushed to zero (run option
flush_denormal, the default since it was measured here), side by side in one process: blocks of steps of the same
method alternate between the two settings, so that the machine's load moves both alike.

    python benchmarks/denormal/steps.py [--threads 1] [--blocks 4] [--steps 10] [--cases gan:ring8,vae_iwae50:fashion_dynbin]

A case is METHOD:DATA, or one of the named cases below (the IWAE claim's networks). Prints a Markdown table: the
median seconds per step of each setting over the blocks and their ratio (kept / flushed: > 1 means flushing is
faster).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ebmlab.config import resolve_config
from ebmlab.data import get_dataset
from ebmlab.trainer import build_method

NAMED = {  # the runs of benchmarks/claims iwae-beats-vae-test-ll (the IWAE paper's one-layer MLPs)
    "vae_iwae50": ("vae", {"net": "mlp", "hidden": (200, 200), "z_dim": 50, "act": "tanh", "batch_size": 100,
                           "lr": 1e-3, "train_k": 50, "objective": "iwae"}),
    "vae_elbo50": ("vae", {"net": "mlp", "hidden": (200, 200), "z_dim": 50, "act": "tanh", "batch_size": 100,
                           "lr": 1e-3, "train_k": 50, "objective": "elbo"}),
    # ebgan-ln-beats-ladder-1000's EBGAN-LN arm (1000 labels, batch 100)
    "ebgan_ln_1000": ("ebgan_ln", {"batch_size": 100, "labels": 1000, "margin_decay_steps": 2500}),
    # kale-beats-gan-paper-nets' KALE arm: the DCGAN 32x32 pair, spectral norm on the energy
    "kale_dcgan_sn": ("kale", {"net": "dcgan", "width": 32, "e_spectral_norm": True}),
}
DEFAULT = ("vae_iwae50:fashion_dynbin,vae_elbo50:fashion_dynbin,rws:fashion_dynbin,bihm:fashion_dynbin,gan:ring8,"
           "vgan:ring8,kale:ring8,ebgan:ring8,lbt:ring8,bib:ring8,vae:ring8,gan:stacked_fashion,kale:stacked_fashion")


def case(spec: str, blocks: int, steps: int) -> dict:
    name, data = spec.split(":")
    method, over = NAMED.get(name, (name, {}))
    ds = get_dataset(data)
    cfg = resolve_config(method, data, overrides={"seed": 0, **over})
    m = build_method(cfg, torch.device("cpu"))
    bs = cfg.run.batch_size
    g = torch.Generator().manual_seed(0)
    batch = ds.train[torch.randint(0, len(ds.train), (bs,), generator=g)]
    times = {False: [], True: []}
    step = 0
    for b in range(blocks):
        for flush in (False, True) if b % 2 == 0 else (True, False):
            torch.set_flush_denormal(flush)
            for _ in range(2):  # warm-up of this setting
                step += 1
                m.prepare_step(step)
                m.train_step(batch, step)
            t = time.perf_counter()
            for _ in range(steps):
                step += 1
                m.prepare_step(step)
                m.train_step(batch, step)
            times[flush].append((time.perf_counter() - t) / steps)
    torch.set_flush_denormal(False)
    kept, flushed = statistics.median(times[False]), statistics.median(times[True])
    return {"case": spec, "kept": kept, "flushed": flushed, "ratio": kept / flushed}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--blocks", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--cases", default=DEFAULT)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if not torch.set_flush_denormal(False):
        raise SystemExit("this CPU cannot flush subnormals (torch.set_flush_denormal returns False)")
    print(f"threads {a.threads}, {a.blocks} blocks of {a.steps} steps per setting, torch {torch.__version__}\n")
    print("| case | s/step kept | s/step flushed | kept / flushed |")
    print("|---|---|---|---|")
    for spec in a.cases.split(","):
        r = case(spec, a.blocks, a.steps)
        print(f"| {r['case']} | {r['kept']:.4f} | {r['flushed']:.4f} | {r['ratio']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
