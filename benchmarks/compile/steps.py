"""Eager and compiled training steps of every method with a compiled step (run option compile), side by side in
one process: the method built from its preset for the data set (``resolve_config``), its steps run through the
trainer's own runners (``graphs.EagerSteps`` semantics: ``train_step`` then the recipe's ``after_step``;
``compiled.CompiledSteps`` with inductor), in alternating blocks so that a change of the machine's load falls on
both; the compile time is the first compiled call (cold: an empty inductor cache in a fresh directory; warm: the
same cache in a second process).

    python benchmarks/compile/steps.py [--methods gan,lbt,lbt_gan] [--data ring8] [--threads 1,2] [--blocks 4]
        [--steps 100] [--out benchmarks/compile/results.md]

A method may carry options after ``@`` (``kale@base=gaussian``, ``gan@g_batchnorm=pre@batch_size=64``): the row
is that configuration, named so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time


def one(method: str, data: str, threads: int, blocks: int, steps: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from ebmlab.compiled import CompiledSteps
    from ebmlab.config import resolve_config
    from ebmlab.data.batches import make_batches
    from ebmlab.placement import build_method

    name, *opts = method.split("@")
    over: dict = {"threads": threads}
    for o in opts:
        k, v = o.split("=", 1)
        try:
            over[k] = json.loads(v)
        except json.JSONDecodeError:
            over[k] = v
    cfg = resolve_config(name, data, overrides=over)
    made = []
    for _ in range(2):  # the same initialisation: one method eager, one compiled
        m = build_method(cfg, torch.device("cpu"))
        made.append(m)
    b = make_batches(cfg.dataset, cfg.run.batches, cfg.run.batch_size, 0)
    xs = [x for _, x in zip(range(blocks * steps + 40), b.stream(0, blocks * steps + 40))]
    eager, comp = made

    def eager_step(x, i):
        out = eager.train_step(x, i)
        eager.recipe.after_step()
        return out

    runner = CompiledSteps(comp, comp.train_step, comp.recipe.after_step)
    i, compile_s = 1, 0.0
    while runner.compile_seconds is None:  # the first two steps of each kind run eagerly; then the first compiled
        t0 = time.perf_counter()  # call traces and generates code (one step included)
        runner.step(xs[i], i)
        compile_s = time.perf_counter() - t0
        eager_step(xs[i], i)
        i += 1
    for _ in range(3):  # and the other kinds' first compiled calls (KALE's bursts are a kind of their own)
        runner.step(xs[i], i)
        eager_step(xs[i], i)
        i += 1
    te = tc = 0.0
    for _ in range(blocks):
        t0 = time.perf_counter()
        for k in range(steps):
            eager_step(xs[i + k], i + k)
        te += time.perf_counter() - t0
        t0 = time.perf_counter()
        for k in range(steps):
            runner.step(xs[i + k], i + k)
        tc += time.perf_counter() - t0
        i += steps
    n = blocks * steps
    return {"method": method, "data": data, "threads": threads, "batch": cfg.run.batch_size,
            "eager_steps_per_s": n / te, "compiled_steps_per_s": n / tc, "ratio": te / tc, "compile_s": compile_s}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", default="gan,lbt,lbt_gan")
    ap.add_argument("--data", default="ring8")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--blocks", type=int, default=4)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--out", default="benchmarks/compile/results.md")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        method, threads = a.one.split(":")
        print(json.dumps(one(method, a.data, int(threads), a.blocks, a.steps)))
        return
    rows, t_all = [], time.perf_counter()
    load0 = os.getloadavg()
    for method in a.methods.split(","):
        cache = tempfile.mkdtemp(prefix="inductor-")
        for k, threads in enumerate(int(t) for t in a.threads.split(",")):
            env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
            p = subprocess.run([sys.executable, __file__, "--one", f"{method}:{threads}", "--data", a.data,
                                "--blocks", str(a.blocks), "--steps", str(a.steps)], capture_output=True, text=True,
                               env=env)
            if p.returncode:
                print(p.stderr[-2000:], file=sys.stderr)
                continue
            r = json.loads(p.stdout.strip().splitlines()[-1])
            r["cache"] = "cold" if k == 0 else "warm"
            rows.append(r)
            print(r, flush=True)
    load1 = os.getloadavg()
    this = {"command": " ".join(sys.argv), "load_before": load0[0], "load_after": load1[0],
            "wall_s": time.perf_counter() - t_all}
    write(a.out, [{**r, **this} for r in rows])


def write(out: str, rows: list[dict]) -> None:
    """Merge ``rows`` into the JSON beside ``out`` (a row replaces the one of the same method, data and threads) and
    write the table ``out``."""
    import torch

    store = os.path.splitext(out)[0] + ".json"
    kept = json.load(open(store)) if os.path.isfile(store) else []
    rows = [r for r in kept if (r["method"], r["data"], r["threads"]) not in
            {(x["method"], x["data"], x["threads"]) for x in rows}] + rows
    with open(store, "w") as fh:
        json.dump(rows, fh, indent=1)
    lines = ["# Compiled training steps on the CPU: eager vs compiled, side by side\n",
             "`python benchmarks/compile/steps.py --methods M,... --data D --threads 1,2 --blocks B --steps S` "
             "(rows of several invocations, merged by results.json; each row's command there, with its B and S) — "
             f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}. Each row one process: the "
             "method built from its preset on the data set, B alternating blocks of S eager and S compiled steps; "
             "compile: the first compiled call (cold: an empty inductor cache; warm: the cache the row above "
             "filled).\n",
             "| method | data | batch | threads | eager steps/s | compiled steps/s | compiled / eager | compile (cache) | "
             "load (1-min avg, before–after its invocation) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['data']} | {r['batch']} | {r['threads']} | {r['eager_steps_per_s']:.1f} | "
                     f"{r['compiled_steps_per_s']:.1f} | {r['ratio']:.2f} | {r['compile_s']:.1f} s ({r['cache']}) | "
                     + (f"{r['load_before']:.1f}–{r['load_after']:.1f} |" if r.get("load_before") is not None
                        else "not recorded (beside the claims campaign's 2 jobs) |"))
    with open(out, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
