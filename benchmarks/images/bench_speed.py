"""Training speed on 28×28 images (Fashion-MNIST, batch 64, the image presets) and evaluation time of 26,000
stacked-digit samples.

For every method, in one process: steps per second of (a) ``method.train_step`` called in a bare loop on
pre-drawn batches (the method's own networks and update, no trainer) and (b) the same number of steps through
``ebmlab.train`` (batches, logging, checkpoint, no evaluation) — their ratio is the trainer's overhead; for GAN
also (c) a hand-written PyTorch loop of the same two networks (BCE discriminator step, non-saturating generator
step, Adam), the floor any GAN implementation pays. Each at 1 and at 2 torch threads. For the other methods no
hand-written twin exists (rewriting LBT's unroll or BiB's LOBPCG by hand would be a second implementation), so
their cost is also given in units of that bare GAN loop, measured in the same process right before and after each
method's row (the mean of the two), which says how many GAN steps of compute one step of the method costs. BiHM's
hand-written twin is in benchmarks/bihm/bench_bihm_speed.py. Methods that do not model the data's kind are skipped.

    python benchmarks/images/bench_speed.py --seconds 5 --out benchmarks/images/speed.md
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch
import torch.nn.functional as F

import ebmlab
from ebmlab.data import get_dataset
from ebmlab.data.batches import make_batches
from ebmlab.trainer import build_method
from ebmlab.config import resolve_config


def bare_gan(m, batches, steps: int) -> float:
    G, D = m.G, m.D
    og = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for x in batches[:steps]:
        z = torch.randn(len(x), m.config.z_dim, generator=g)
        with torch.no_grad():
            fake = G(z)
        lr, lf = D(x).squeeze(1), D(fake).squeeze(1)
        loss = F.binary_cross_entropy_with_logits(lr, torch.ones_like(lr)) + \
            F.binary_cross_entropy_with_logits(lf, torch.zeros_like(lf))
        od.zero_grad()
        loss.backward()
        od.step()
        for p in D.parameters():
            p.requires_grad_(False)
        lg = F.softplus(-D(G(torch.randn(len(x), m.config.z_dim, generator=g))).squeeze(1)).mean()
        og.zero_grad()
        lg.backward()
        og.step()
        for p in D.parameters():
            p.requires_grad_(True)
    return steps / (time.perf_counter() - t0)


def method_loop(name: str, data: str, seconds: float, min_steps: int = 3) -> tuple[float, int]:
    """(steps/s, steps timed) of ``train_step`` on pre-drawn batches, timed for ≥ ``seconds`` after one warm-up."""
    cfg = resolve_config(name, data, overrides={"batch_size": 64})
    m = build_method(cfg, torch.device("cpu"))
    xs = list(make_batches(get_dataset(data), "auto", 64, 0).stream(0, 9))
    m.train_step(xs[0], 1)  # warm-up (KALE's first step is its energy burst)
    n, t0 = 0, time.perf_counter()
    while n < min_steps or time.perf_counter() - t0 < seconds:
        m.train_step(xs[1 + n % 8], n + 2)
        n += 1
    return n / (time.perf_counter() - t0), n


def trainer(name: str, data: str, steps: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        ebmlab.train(name, data, out=f"{d}/r", progress=False,
                     overrides={"batch_size": 64, "steps": steps + 1, "log_every": 20, "loggers": "",
                                "plots": False, "threads": torch.get_num_threads()}, stop_after=steps + 1)
        return (steps + 1) / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=5.0, help="time each loop for at least this long (min 3 steps)")
    p.add_argument("--data", default="fashion")
    p.add_argument("--methods", default="all")
    p.add_argument("--out", default="benchmarks/images/speed.md")
    a = p.parse_args()
    methods = list(ebmlab.METHODS) if a.methods == "all" else a.methods.split(",")
    load0 = os.getloadavg()
    t_all = time.perf_counter()
    # evaluation of 26,000 stacked-digit samples (GAN preset, untrained networks: the cost does not depend on them)
    torch.set_num_threads(2)
    from ebmlab.metrics import evaluate_method

    ds = get_dataset("stacked_digits")
    m = build_method(resolve_config("gan", "stacked_digits"), torch.device("cpu"))
    evaluate_method(m, ds, n_samples=1000, seed=0)  # warm-up: the classifier (trained once) and caches
    t0 = time.perf_counter()
    ev = evaluate_method(m, ds, n_samples=1000, seed=1)
    t_eval = time.perf_counter() - t0
    head = ["# Training speed on images and evaluation time\n",
            f"Command: `python benchmarks/images/bench_speed.py --seconds {a.seconds:g} --data {a.data} --methods "
            f"{a.methods}`; machine: {os.cpu_count()} cores, torch {torch.__version__}; load average at the start "
            f"{load0[0]:.2f}.\n",
            f"Evaluation of {ev['n_mode_samples']} stacked-digit samples (drawing them from a GAN, classifying every "
            f"channel, counting modes, FD/KID/PR/DC/score on 1000 of them), 2 threads: **{t_eval:.1f} s**.\n",
            f"Batch 64 of {a.data} ({'x'.join(map(str, get_dataset(a.data).shape))}), each method's image preset, "
            f"after one warm-up step, each loop timed for at least {a.seconds:g} s (3 steps at least). `method loop`: "
            "`train_step` in a bare loop on "
            "pre-drawn batches; `ebmlab.train`: as many steps through the trainer, timed from the call "
            "(so it also pays the start-up: loading the data set, building the method, writing the config and one "
            "checkpoint, which dominate at this step count; the trainer's per-step overhead is measured on 2D in "
            "benchmarks/results/spine_speed.md); `bare GAN`: a hand-written PyTorch loop of the same two networks, "
            "the floor of any GAN implementation.\n",
            "| method | threads | method loop (steps/s) | ebmlab.train incl. start-up (steps/s) | bare GAN loop "
            "(steps/s, before / after) | method loop / bare GAN |",
            "|---|---|---|---|---|---|"]
    lines = list(head)
    kind = get_dataset(a.data).kind
    methods = [n for n in methods if ebmlab.METHODS[n].data_kinds is None or kind in ebmlab.METHODS[n].data_kinds]
    gan = build_method(resolve_config("gan", a.data, overrides={"batch_size": 64}), torch.device("cpu"))
    n_gan = 20
    xs = list(make_batches(get_dataset(a.data), "auto", 64, 0).stream(0, n_gan))
    for threads in (1, 2):
        torch.set_num_threads(threads)
        bare_gan(gan, xs, 2)  # warm-up at this thread count
        before = bare_gan(gan, xs, n_gan)
        for name in methods:
            sps_m, n = method_loop(name, a.data, a.seconds)
            sps_t = trainer(name, a.data, n)
            after = bare_gan(gan, xs, n_gan)
            ratio = sps_m / ((before + after) / 2)
            lines.append(f"| {name} | {threads} | {sps_m:.2f} | {sps_t:.2f} | {before:.2f} / {after:.2f} | "
                         f"{ratio:.3f} |")
            before = after
            with open(a.out, "w") as fh:  # written after every row, so a stopped run keeps what it measured
                fh.write("\n".join(lines + [f"\nWall time so far {time.perf_counter() - t_all:.0f} s; load average "
                                             f"now {os.getloadavg()[0]:.2f}.\n"]))
            print(lines[-1], flush=True)


if __name__ == "__main__":
    main()
