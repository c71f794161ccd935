"""Cost of one LBT generator step relative to one VAE step, versus the unroll length K, and its memory.

For K in (1, 2, 5, 10), on the toy architecture of the released code (G z256 → 128 → 128 → 2; VAE 2 → 128 → 128 →
32-d z → 128 → 128 → 2) and one batch size:

- ``vae``: one ordinary VAE step on the estimator (ELBO forward, backward, torch Adam step) — the unit;
- ``lookahead``: one LBT generator step without real estimator updates (K differentiable inner steps on fresh
  generator batches, the data ELBO at φ^K, the backward through all of it to ψ, the clipped Adam step of G);
- ``real``: one real estimator update (the same K steps without a graph, written back);
- ``full``: one ``train_step`` with n_est = 2 real updates (the toy setting).

Each is timed both with the unroll on one flat parameter vector (the default, ``flat_unroll=True``) and per
parameter tensor. Memory: (i) the bytes the look-ahead's autograd graph saves for the backward, counted exactly with
``torch.autograd.graph.saved_tensors_hooks`` (each storage once), split into parameter-sized tensors and the rest;
(ii) the process's peak resident memory during one generator step minus its resident memory before it, in a fresh
subprocess per K (``ru_maxrss``; torch's CPU allocations are not visible to tracemalloc).

Usage: python benchmarks/bench_lbt_speed.py [--batch 256] [--repeats 10] [--out benchmarks/results/lbt_speed.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch

from ebmlab.methods.estimators import VAEEstimator
from ebmlab.methods.lbt import LBT, LBTConfig, estimator_update, generator_step, lookahead_neg_elbo
from ebmlab.nets.vae import GaussianVAE

KS = (1, 2, 5, 10)


def build(K: int, flat: bool, n_est: int = 2) -> LBT:
    torch.manual_seed(0)
    return LBT(LBTConfig(unroll_steps=K, n_est=n_est, flat_unroll=flat), data_dim=2, device=torch.device("cpu"),
               generator=torch.Generator().manual_seed(1))


def data(batch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(2)
    angles = 2 * torch.pi * torch.randint(0, 8, (batch,), generator=g) / 8
    return torch.stack([angles.cos(), angles.sin()], 1) + 0.01 * torch.randn(batch, 2, generator=g)


def timed(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` calls after two warm-up calls (median: the machine is shared)."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def vae_step_time(batch: int, repeats: int) -> float:
    torch.manual_seed(0)
    vae = GaussianVAE(2, 32, (128, 128), act="tanh", decoder_var=1e-3)
    est = VAEEstimator(vae)
    opt = torch.optim.Adam(vae.parameters(), lr=1e-4, betas=(0.5, 0.999))
    x, gen = data(batch), torch.Generator().manual_seed(3)

    def step():
        opt.zero_grad(set_to_none=True)
        est.loss(vae, x, generator=gen).backward()
        opt.step()

    return timed(step, repeats)


def step_times(K: int, flat: bool, batch: int, repeats: int) -> dict[str, float]:
    m = build(K, flat)
    x = data(batch)
    m.train_step(x, 1)  # non-zero Adam state, as in training
    return {
        "lookahead": timed(lambda: generator_step(m, m.config, lookahead_neg_elbo(m, m.config, x, batch)), repeats),
        "real": timed(lambda: estimator_update(m, m.config, batch), repeats),
        "full": timed(lambda: m.train_step(x, 2), repeats),
    }


def saved_bytes(K: int, batch: int) -> dict[str, float]:
    """Bytes saved for backward by one look-ahead (storages counted once), parameter-sized vs the rest."""
    m = build(K, flat=True)
    x = data(batch)
    m.train_step(x, 1)
    n_param = sum(p.numel() for p in m.estimator.module.parameters())
    seen: dict[int, tuple[int, bool]] = {}

    def pack(t: torch.Tensor):
        st = t.untyped_storage()
        seen[st.data_ptr()] = (st.nbytes(), st.nbytes() == n_param * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = lookahead_neg_elbo(m, m.config, x, batch)
    loss.backward()
    total = sum(b for b, _ in seen.values())
    param_sized = sum(b for b, is_p in seen.values() if is_p)
    return {"saved_mb": total / 2**20, "param_sized_mb": param_sized / 2**20,
            "param_copies": param_sized / (n_param * 4), "param_mb": n_param * 4 / 2**20}


def rss_child(K: int, batch: int) -> None:
    """In a fresh process: resident memory before one generator step and the peak during it (MiB)."""
    m = build(K, flat=True, n_est=0)
    x = data(batch)
    with open("/proc/self/statm") as f:
        before = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    generator_step(m, m.config, lookahead_neg_elbo(m, m.config, x, batch))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # Linux: KiB
    print(json.dumps({"before_mb": before, "peak_mb": peak}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--out", default="benchmarks/results/lbt_speed.md")
    ap.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.rss_child is not None:
        rss_child(args.rss_child, args.batch)
        return
    t_vae = vae_step_time(args.batch, args.repeats)
    rows = []
    for K in KS:
        flat = step_times(K, True, args.batch, args.repeats)
        per_tensor = step_times(K, False, args.batch, args.repeats)
        mem = saved_bytes(K, args.batch)
        child = subprocess.run([sys.executable, __file__, "--rss-child", str(K), "--batch", str(args.batch)],
                               capture_output=True, text=True, check=True)
        rss = json.loads(child.stdout.strip().splitlines()[-1])
        rows.append({"K": K, "flat": flat, "per_tensor": per_tensor, **mem, "rss_peak_increase_mb":
                     rss["peak_mb"] - rss["before_mb"]})
        print(rows[-1], flush=True)
    cmd = "python benchmarks/bench_lbt_speed.py " + " ".join(sys.argv[1:])
    lines = [
        "# LBT step cost and memory versus the unroll length K\n",
        f"Command: `{cmd}`\n",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared with other jobs), torch {torch.__version__}, "
        f"1 thread; batch {args.batch} (data and generator); median of {args.repeats} timed calls after 2 warm-ups.\n",
        f"Unit: one VAE step on the same estimator (forward, backward, torch Adam) = {t_vae * 1e3:.1f} ms.\n",
        "`lookahead` = one generator step without real updates (K differentiable steps + data ELBO + backward to ψ + "
        "G's Adam step); `real` = one real estimator update (K steps, no graph); `full` = one `train_step` with "
        "n_est = 2. Ratios are to the VAE step; 2(K+1) is the expected cost of the look-ahead by counting passes.\n",
        "| K | lookahead (× VAE) | 2(K+1) | real (× VAE) | full, n_est=2 (× VAE) | lookahead per-tensor (× VAE) | "
        "full per-tensor (× VAE) | full (ms) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        f, p = r["flat"], r["per_tensor"]
        lines.append(f"| {r['K']} | {f['lookahead'] / t_vae:.1f} | {2 * (r['K'] + 1)} | {f['real'] / t_vae:.1f} | "
                     f"{f['full'] / t_vae:.1f} | {p['lookahead'] / t_vae:.1f} | {p['full'] / t_vae:.1f} | "
                     f"{f['full'] * 1e3:.0f} |")
    lines += [
        "",
        f"Memory of one look-ahead (flat unroll). Estimator parameters: {rows[0]['param_mb']:.3f} MiB "
        f"({rows[0]['param_mb'] * 2**20 / 4:.0f} float32).\n",
        "| K | saved for backward (MiB) | of which parameter-sized (MiB) | parameter-sized tensors saved | "
        "per unroll step | peak RSS increase (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['K']} | {r['saved_mb']:.2f} | {r['param_sized_mb']:.2f} | {r['param_copies']:.0f} | "
                     f"{r['param_copies'] / r['K']:.1f} | {r['rss_peak_increase_mb']:.1f} |")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
