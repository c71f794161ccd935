"""Where one LBT step's CPU time goes, on the released code's toy networks (G z256 → 128 → 128 → 2; VAE 2 → 128 →
128 → 32-d z → 128 → 128 → 2), K = 5, n_est = 2, one torch thread:

1. the step time at batch 8, 64, 256 and 512 (data and generator batch; the four models step in turn, so that all
   see the same machine): what stays at batch 8 is the cost per operation, not arithmetic;
2. torch.profiler's self CPU time of one batch-256 step by kind of operation (matrix products, tanh and its
   backward, normal random numbers, everything else) and the number of ATen operations per step;
3. one 256 × 128 tanh beside a sigmoid and an exp of the same size (the tanh of torch's CPU build is the accurate
   vectorised one; TensorFlow's is a fast rational approximation);
4. with ``--compile``: a bare look-ahead (5 unrolled differentiable Adam steps of the same VAE on fresh generator
   batches, the data ELBO at the end, its gradient to G; written with torch.func here, not ebmlab's code) run
   eagerly and under ``torch.compile`` — what a graph compiler buys on this CPU, and what it costs to compile (from
   an empty inductor cache: a temporary directory, removed at the end).

Usage: python benchmarks/lbt/cpu_step_anatomy.py [--repeats 10] [--compile] [--out benchmarks/lbt/cpu_step_anatomy.md]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from ebmlab.methods.lbt import LBT, LBTConfig

BATCHES = (8, 64, 256, 512)
KINDS = {"matrix products": ("aten::mm", "aten::addmm", "aten::bmm"),
         "tanh and its backward": ("aten::tanh", "aten::tanh_backward"),
         "normal random numbers": ("aten::normal_", "aten::randn")}


def ring(n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(2)
    a = 2 * math.pi * torch.randint(0, 8, (n,), generator=g) / 8
    return torch.stack([a.cos(), a.sin()], 1) + 0.01 * torch.randn(n, 2, generator=g)


def lbt(batch: int) -> tuple[LBT, torch.Tensor]:
    torch.manual_seed(0)
    m = LBT(LBTConfig(), data_dim=2, device=torch.device("cpu"), generator=torch.Generator().manual_seed(1))
    x = ring(batch)
    for i in range(3):  # warm-up steps: the Adam state exists, the allocator has its blocks
        m.train_step(x, i + 1)
    return m, x


def interleaved_ms(fns: dict, repeats: int) -> dict[str, float]:
    """Median milliseconds of each function over ``repeats`` rounds, one call of each per round: the functions see
    the same machine (a shared machine's speed drifts over seconds)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: 1000 * statistics.median(v) for k, v in times.items()}


def step_times(repeats: int) -> list[str]:
    def stepper(b: int):
        m, x = lbt(b)
        step = [100]

        def one() -> None:
            step[0] += 1
            m.train_step(x, step[0])
        return one

    ms = interleaved_ms({b: stepper(b) for b in BATCHES}, repeats)
    rows = ["| batch | ms per step (median) | steps/s |", "|---|---|---|"]
    rows += [f"| {b} | {ms[b]:.1f} | {1000 / ms[b]:.2f} |" for b in BATCHES]
    print("\n".join(rows), flush=True)
    return rows


def profile_shares(steps: int = 5) -> list[str]:
    from torch.profiler import ProfilerActivity, profile

    m, x = lbt(256)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(steps):
            m.train_step(x, 100 + i)
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    n_ops = sum(e.count for e in events)
    rows = [f"Self CPU time of {steps} steps at batch 256 under the profiler: {total / 1000 / steps:.1f} ms a step, "
            f"{n_ops / steps:.0f} ATen operations a step (nested ones counted too).\n",
            "| kind | share of self CPU time | ms a step | calls a step |", "|---|---|---|---|"]
    rest_t, rest_n = total, 0
    for kind, names in KINDS.items():
        t = sum(e.self_cpu_time_total for e in events if e.key in names)
        n = sum(e.count for e in events if e.key in names)
        rest_t -= t
        rows.append(f"| {kind} | {100 * t / total:.0f} % | {t / 1000 / steps:.1f} | {n / steps:.0f} |")
    rest_n = n_ops - sum(e.count for e in events if any(e.key in v for v in KINDS.values()))
    rows.append(f"| everything else (elementwise, views, copies, autograd) | {100 * rest_t / total:.0f} % | "
                f"{rest_t / 1000 / steps:.1f} | {rest_n / steps:.0f} |")
    print("\n".join(rows), flush=True)
    return rows


def elementwise() -> list[str]:
    x = torch.randn(256, 128)
    fns = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "exp": torch.exp, "multiply": lambda t: t * t}
    for fn in fns.values():
        for _ in range(50):
            fn(x)
    ms = interleaved_ms({k: (lambda fn=fn: [fn(x) for _ in range(100)]) for k, fn in fns.items()}, 15)
    rows = ["| op on 256 × 128 float32 | µs |", "|---|---|"] + [f"| {k} | {10 * v:.1f} |" for k, v in ms.items()]
    print("\n".join(rows), flush=True)
    return rows


def bare_lookahead(batch: int):
    """A bare K = 5 look-ahead on the same networks: returns (function of G's parameters → data loss, G's params)."""
    from torch.func import grad

    def layer(i: int, o: int) -> list[torch.Tensor]:
        return [torch.randn(o, i) / math.sqrt(i), torch.zeros(o)]

    def mlp(ps, h, n):
        for j in range(n):
            h = torch.nn.functional.linear(h, ps[2 * j], ps[2 * j + 1])
            h = torch.tanh(h) if j < n - 1 else h
        return h

    def neg_elbo(E, x, eps):
        mu, logvar = mlp(E[:6], x, 3).chunk(2, 1)
        xm = mlp(E[6:], mu + torch.exp(0.5 * logvar) * eps, 3)
        rec = (-0.5 * math.log(2 * math.pi * 1e-3) - (x - xm).square() / 2e-3).sum(1)
        kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(1)
        return (kl - rec).mean()

    g_neg_elbo = grad(neg_elbo)
    torch.manual_seed(0)
    E = layer(2, 128) + layer(128, 128) + layer(128, 64) + layer(32, 128) + layer(128, 128) + layer(128, 2)
    G = [p.requires_grad_() for p in layer(256, 128) + layer(128, 128) + layer(128, 2)]
    zs = [torch.randn(batch, 256) for _ in range(5)]
    epss = [torch.randn(batch, 32) for _ in range(6)]
    data = ring(batch)

    def lookahead(G, E, zs, epss, data):
        m = [torch.zeros_like(p) for p in E]
        v = [torch.zeros_like(p) for p in E]
        for k in range(5):
            g = g_neg_elbo(E, mlp(G, zs[k], 3), epss[k])
            c = 1e-4 * math.sqrt(1 - 0.999 ** (k + 1)) / (1 - 0.5 ** (k + 1))
            m = [0.5 * mi + 0.5 * gi for mi, gi in zip(m, g)]
            v = [(0.999 * vi + 0.001 * gi.detach().square()).detach() for vi, gi in zip(v, g)]
            E = [p - c * mi / torch.sqrt(vi + 1e-8) for p, mi, vi in zip(E, m, v)]
        return neg_elbo(E, data, epss[5])

    return lookahead, G, (E, zs, epss, data)


def compiled(repeats: int) -> list[str]:
    import shutil
    import tempfile

    cache = tempfile.mkdtemp(prefix="inductor-")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # a cold compile: nothing reused from earlier runs
    try:
        return _compiled(repeats)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _compiled(repeats: int) -> list[str]:
    fn, G, args = bare_lookahead(256)
    cfn = torch.compile(fn)
    t0 = time.perf_counter()
    g_c = torch.autograd.grad(cfn(G, *args), G)
    compile_s = time.perf_counter() - t0
    g_e = torch.autograd.grad(fn(G, *args), G)
    rel = max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(g_c, g_e))
    ms = interleaved_ms({"eager": lambda: torch.autograd.grad(fn(G, *args), G),
                         "compiled": lambda: torch.autograd.grad(cfn(G, *args), G)}, repeats)
    eager, comp = ms["eager"], ms["compiled"]
    rows = ["| bare look-ahead + backward to G, batch 256 | ms (median, the two alternating) |", "|---|---|",
            f"| eager | {eager:.1f} |", f"| torch.compile (inductor) | {comp:.1f} |",
            f"\nCompiled / eager speed: {eager / comp:.2f}×, after {compile_s:.0f} s of compiling (empty cache); "
            f"largest relative difference of G's gradients between the two: {rel:.1e}."]
    print("\n".join(rows), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--compile", action="store_true", help="also time the bare look-ahead under torch.compile")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t_start, load0 = time.time(), os.getloadavg()
    cmd = "python benchmarks/lbt/cpu_step_anatomy.py" + f" --repeats {args.repeats}" + \
        (" --compile" if args.compile else "")
    lines = ["# Where an LBT step's CPU time goes\n",
             f"Command: `{cmd}`; {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
             f"({torch.backends.cpu.get_cpu_capability()}), 1 thread; K = 5, n_est = 2, the released code's toy "
             f"networks; {time.strftime('%Y-%m-%d %H:%M')}.\n", "## Step time against the batch\n"]
    lines += step_times(args.repeats)
    lines += ["", "## Kinds of operation (torch.profiler)\n"] + profile_shares()
    lines += ["", "## One elementwise operation\n"] + elementwise()
    if args.compile:
        lines += ["", "## A bare look-ahead, eager and compiled\n"] + compiled(args.repeats)
    load1 = os.getloadavg()
    lines += ["", f"Total {time.time() - t_start:.0f} s; 1-min load average {load0[0]:.2f} at the start, "
                  f"{load1[0]:.2f} at the end."]
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
