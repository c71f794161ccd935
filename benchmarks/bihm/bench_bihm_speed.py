"""Training speed of BiHM's 12-layer model on binarised Fashion-MNIST (K = 10, batch 100), beside a bare PyTorch loop.

    python benchmarks/bihm/bench_bihm_speed.py --steps 30 --rounds 5 --threads 1,2

Per thread count, both loops run in this one process, interleaved over rounds (so they see the same machine load):
- ``bihm train_step``: ``BiHM.train_step`` on pre-drawn batches;
- ``bare loop``: the same layers (weights copied) and the same update written out by hand — replicate x K times,
  sample q bottom-up, log p and log q from logits, square-root weights with the 1/K baseline, Adam step.
Epoch time = (60000 / 100) steps ÷ steps/s. Medians over rounds; the ratio is per round, then the median.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def bare_step(p_lin, p_bias, q_lin, opt, x, k, g):
    """One BiHM update written out by hand (the floor of any implementation of the same model)."""
    b = x.shape[0]
    h = [x.repeat_interleave(k, 0)]
    log_q = 0.0
    for lin in q_lin:
        a = lin(h[-1])
        s = (torch.rand(a.shape, generator=g) < torch.sigmoid(a)).float()
        log_q = log_q + (s * F.logsigmoid(a) + (1 - s) * F.logsigmoid(-a)).sum(1)
        h.append(s)
    top = h[-1]
    log_p = (top * F.logsigmoid(p_bias) + (1 - top) * F.logsigmoid(-p_bias)).sum(1)
    for l, lin in enumerate(p_lin):
        a = lin(h[l + 1])
        log_p = log_p + (h[l] * F.logsigmoid(a) + (1 - h[l]) * F.logsigmoid(-a)).sum(1)
    log_p, log_q = log_p.view(b, k), log_q.view(b, k)
    w = torch.softmax(0.5 * (log_p - log_q), 1).detach()
    loss = -((w * log_p).sum(1) + ((w - 1.0 / k) * log_q).sum(1)).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def main() -> None:
    from ebmlab.data import get_dataset
    from ebmlab.trainer import build_method
    from ebmlab.config import resolve_config

    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--out", default="benchmarks/bihm/speed.md")
    a = p.parse_args()
    ds = get_dataset("fashion_bin")
    load0 = os.getloadavg()[0]
    rows = []
    for threads in [int(t) for t in a.threads.split(",")]:
        torch.set_num_threads(threads)
        cfg = resolve_config("bihm", "fashion_bin", overrides={"seed": 0})
        m = build_method(cfg, torch.device("cpu"))
        k, bs = cfg.method_config.n_samples, cfg.run.batch_size
        pair = m.pair
        p_lin = [torch.nn.Linear(l.linear.in_features, l.linear.out_features) for l in pair.p]
        q_lin = [torch.nn.Linear(l.linear.in_features, l.linear.out_features) for l in pair.q]
        with torch.no_grad():
            for mine, theirs in zip(p_lin + q_lin, list(pair.p) + list(pair.q)):
                mine.weight.copy_(theirs.linear.weight)
                mine.bias.copy_(theirs.linear.bias)
            p_bias = torch.nn.Parameter(pair.p_top.bias.detach().clone())
        params = [p_bias] + [q for lin in p_lin + q_lin for q in lin.parameters()]
        opt = torch.optim.Adam(params, lr=1e-3)
        g = torch.Generator().manual_seed(1)
        perm = torch.randperm(len(ds.train), generator=g)
        batches = [ds.train[perm[i * bs:(i + 1) * bs]].reshape(bs, -1) for i in range(a.steps + 1)]
        m.train_step(batches[0], 1)
        bare_step(p_lin, p_bias, q_lin, opt, batches[0], k, g)
        rates = {"method": [], "bare": []}
        for _ in range(a.rounds):
            t0 = time.perf_counter()
            for i, x in enumerate(batches[1:]):
                m.train_step(x, i + 2)
            rates["method"].append(a.steps / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            for x in batches[1:]:
                bare_step(p_lin, p_bias, q_lin, opt, x, k, g)
            rates["bare"].append(a.steps / (time.perf_counter() - t0))
        ratio = statistics.median(mr / br for mr, br in zip(rates["method"], rates["bare"]))
        rm, rb = statistics.median(rates["method"]), statistics.median(rates["bare"])
        rows.append((threads, rm, rb, ratio, 600 / rm, 600 / rb))
        print(rows[-1], flush=True)
    md = ["# BiHM training speed: 12-layer model, binarised Fashion-MNIST, K = 10, batch 100", "",
          f"Command: `python benchmarks/bihm/bench_bihm_speed.py --steps {a.steps} --rounds {a.rounds} "
          f"--threads {a.threads}`; machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; "
          f"load average {load0:.2f} at the start, {os.getloadavg()[0]:.2f} at the end.", "",
          "Both loops in one process, interleaved over rounds; medians over rounds. Epoch = 600 steps.", "",
          "| threads | bihm train_step (steps/s) | bare PyTorch loop (steps/s) | ratio (median per round) | "
          "epoch, bihm (s) | epoch, bare (s) |", "|---|---|---|---|---|---|"]
    md += [f"| {t} | {rm:.1f} | {rb:.1f} | {ratio:.3f} | {em:.1f} | {eb:.1f} |" for t, rm, rb, ratio, em, eb in rows]
    Path(a.out).write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
