"""Time of an image evaluation on the CPU: the domain classifier's forward pass by batch size, and optionally a
whole `ebmlab eval RUN --json` with this source tree and an older one, alternately, outputs compared.

    python benchmarks/eval_time_images.py --out benchmarks/eval_time_images.md
    python benchmarks/eval_time_images.py --run RUN --before /tmp/old/src --out benchmarks/eval_time_images.md
    python benchmarks/eval_time_images.py --latent digits,stacked_digits,fashion --out ...

Part 1 runs `DomainClassifier.features` (untrained weights: the time does not depend on them) over --n random
28×28 grey images in batches of each size, at 1 and 2 threads, with the process's user and system CPU time, and
checks that every batch size gives bit-identical features to the 2048 batch. Part 2 (with --run) times the whole
evaluation of a run directory --repeats times per tree and checks that both trees print the same JSON. Part 3
(with --latent) runs KALE's energy-guided latent sampler (its preset networks for each data set, untrained: the
time does not depend on the weights) on 4096 chains for 5 kinetic Langevin steps with the networks called on all
chains at once and on blocks of 512 and 128 (``rows``), and checks that the samples are the same.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

import torch

from ebmlab.metrics.classifier import DomainClassifier

from bench_report import emit  # this directory is first on the path when the script runs


def classifier_rows(n: int, sizes: list[int]) -> list[str]:
    torch.manual_seed(0)
    net = DomainClassifier(1, 28, 10).eval()
    x = torch.rand(n, 1, 28, 28) * 2 - 1
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        ref = None
        for size in sizes:
            r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            with torch.no_grad():
                f = torch.cat([net.features(x[i:i + size]) for i in range(0, n, size)])
            wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
            ref = f if ref is None else ref
            same = "yes" if torch.equal(f, ref) else f"no (max diff {float((f - ref).abs().max()):.1e})"
            rows.append(f"| {threads} | {size} | {wall:.2f} | {r1.ru_utime - r0.ru_utime:.2f} | "
                        f"{r1.ru_stime - r0.ru_stime:.2f} | {1000 * wall / n:.3f} | {same} |")
            print(rows[-1], flush=True)
    return rows


def latent_rows(datasets: list[str]) -> list[str]:
    from ebmlab.config import resolve_config
    from ebmlab.samplers.latent import GuidedConfig, latent_samples
    from ebmlab.trainer import build_method

    torch.set_num_threads(2)
    rows_out = []
    for data in datasets:
        m = build_method(resolve_config("kale", data), torch.device("cpu"))
        for net in m.networks.values():
            net.eval()
        gc = GuidedConfig("kinetic", 1.0, 5, 1e-3, 1.0)
        ref = None
        for rows in (None, 512, 128):
            r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            x, _ = latent_samples(m.generate, m.energy, m.latent_dim, 4096, gc,
                                  generator=torch.Generator().manual_seed(3), rows=rows)
            wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
            ref = x if ref is None else ref
            rows_out.append(f"| {data} {tuple(m.spec.shape)} | {rows or 'all'} | {wall:.2f} | "
                            f"{r1.ru_stime - r0.ru_stime:.2f} | {'yes' if torch.equal(x, ref) else 'no'} | "
                            f"{m.forward_rows or 'all'} |")
            print(rows_out[-1], flush=True)
    return rows_out


def eval_rows(run: str, before: str, repeats: int) -> list[str]:
    times: dict[str, list[float]] = {"this tree": [], before: []}
    outputs: dict[str, set[str]] = {"this tree": set(), before: set()}
    for _ in range(repeats):
        for tree in times:  # alternated, so that a change of the machine's load falls on both
            env = dict(os.environ)
            if tree != "this tree":
                env["PYTHONPATH"] = tree
            t0 = time.perf_counter()
            res = subprocess.run([sys.executable, "-m", "ebmlab", "eval", run, "--json"], env=env,
                                 capture_output=True, text=True, check=True)
            times[tree].append(time.perf_counter() - t0)
            outputs[tree].add(res.stdout)
            print(f"{tree}: {times[tree][-1]:.1f} s", flush=True)
    same = len(outputs["this tree"] | outputs[before]) == 1
    rows = [f"| {tree} | {min(t):.1f} | {max(t):.1f} |" for tree, t in times.items()]
    rows.append(f"\nThe JSON printed by every evaluation, both trees: {'identical' if same else 'DIFFERENT'}.")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=8192)
    ap.add_argument("--sizes", default="2048,512,256,128,64")
    ap.add_argument("--run", default=None, help="a run directory on image data to evaluate whole")
    ap.add_argument("--before", default=None, help="an older source tree's src/ to evaluate it with as well")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--latent", default=None, help="data sets for part 3 (KALE's guided sampler), comma-separated")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    t_start, load0 = time.time(), os.getloadavg()
    cmd = " ".join(["python", "benchmarks/eval_time_images.py", *sys.argv[1:]])
    lines = ["# Time of an image evaluation on the CPU\n",
             f"Command: `{cmd}`; {os.cpu_count()} cores; torch {torch.__version__}; {time.strftime('%Y-%m-%d %H:%M')}",
             "",
             f"## The domain classifier's features, {args.n} images of 28×28, by batch size\n",
             "| threads | batch | wall (s) | user CPU (s) | system CPU (s) | ms per image | features equal batch "
             "2048's |", "|---|---|---|---|---|---|---|"]
    lines += classifier_rows(args.n, [int(s) for s in args.sizes.split(",")])
    if args.run:
        if not args.before:
            raise SystemExit("--run needs --before SRC (the tree to compare with)")
        lines += ["", f"## `ebmlab eval {args.run} --json`, {args.repeats} time(s) per tree\n",
                  "| source | fastest (s) | slowest (s) |", "|---|---|---|"]
        lines += eval_rows(args.run, args.before, args.repeats)
    if args.latent:
        lines += ["", "## KALE's energy-guided sampler: 4096 chains, 5 kinetic Langevin steps, 2 threads\n",
                  "| data (shape) | chains per network call | wall (s) | system CPU (s) | samples equal all-at-once's "
                  "| the method's `forward_rows` |", "|---|---|---|---|---|---|"]
        lines += latent_rows(args.latent.split(","))
    load1 = os.getloadavg()
    lines += ["", f"Total {time.time() - t_start:.0f} s; 1-min load average {load0[0]:.2f} at the start, "
                  f"{load1[0]:.2f} at the end."]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
