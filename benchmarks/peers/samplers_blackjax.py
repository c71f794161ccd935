"""ebmlab's MCMC samplers beside blackjax's, side by side on one CPU thread.

    python benchmarks/peers/samplers_blackjax.py --peer-python /path/to/venv-with-blackjax/bin/python \
        --out benchmarks/peers/samplers_blackjax.md

Both sides run the same kernels — ULA, MALA and HMC (10 leapfrog steps, unit mass) — from the same start points
(written by this driver to an .npz both read), with the same step sizes, 1000 chains x 1000 steps, float32, each
worker a fresh process pinned to CPU 0 with one thread (torch.set_num_threads(1); XLA's Eigen pool off). Step size
conventions: ebmlab's ULA/MALA move x - (h/2)∇E + sqrt(h)ξ, blackjax's x + s∇log p + sqrt(2s)ξ, so s = h/2; HMC's
step is the leapfrog step on both sides.

Targets:
- ``ring8``: the ring of 8 Gaussians (radius 2, std 0.2): E|x|² = 4 + 2(0.2)² = 4.08, each mode 1/8.
- ``mlp``: a 2 -> 128 -> 128 -> 1 SiLU MLP (torch's initialisation, seed 0; the same weights on both sides) plus
  |x|²/2; no closed form: the two sides' E|x|² agree within their Monte Carlo error.
- ``gauss50``: a 50-D Gaussian with standard deviations evenly from 0.5 to 2: the per-coordinate variances.

Timing: ebmlab eager (``compile=off``) and compiled (``compile=on``: a run's time less its compiling calls, which
are reported as ``compile_s``, the first run's: cold); blackjax's ``jax.jit``ted ``lax.scan`` over the steps of the
vmapped kernel, timed on the calls after its first (whose extra time is its compile). Each side times REPEATS runs in
its process and the minimum counts (``runs_s`` keeps them all): on a shared virtual machine one run's time varied by
up to 1.5x from one invocation to the next. The ratio is blackjax's run
time over ebmlab's: above 1, ebmlab is faster. Each row's three runs are made one after the other, and the rows are
interleaved, so that the machine's load falls on all sides alike; the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

TASKS = {  # task -> (dimension, {sampler: step size in ebmlab's convention (h for ULA/MALA, eps for HMC)})
    "ring8": (2, {"ula": 0.005, "mala": 0.02, "hmc": 0.05}),
    "mlp": (2, {"ula": 0.02, "mala": 0.1, "hmc": 0.1}),
    "gauss50": (50, {"ula": 0.05, "mala": 0.3, "hmc": 0.2}),
}
N_LEAPFROG = 10
REPEATS = 3  # each side times its chains this many times in its process; the least disturbed (the minimum) counts
RING = (8, 2.0, 0.2)


def _stds(d: int):
    import numpy as np

    return np.linspace(0.5, 2.0, d).astype("float32")


# --- the shared inputs -------------------------------------------------------------------------------------------

def write_inputs(path: Path, chains: int) -> None:
    """Start points per task and the MLP's weights (torch's default initialisation, seed 0)."""
    import numpy as np
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 128), torch.nn.SiLU(), torch.nn.Linear(128, 128), torch.nn.SiLU(),
                              torch.nn.Linear(128, 1))
    arrays = {f"w{i}": m.weight.detach().numpy() for i, m in enumerate(net) if isinstance(m, torch.nn.Linear)}
    arrays.update({f"b{i}": m.bias.detach().numpy() for i, m in enumerate(net) if isinstance(m, torch.nn.Linear)})
    rng = np.random.default_rng(1)
    for task, (d, _) in TASKS.items():
        arrays[f"x0_{task}"] = rng.standard_normal((chains, d)).astype("float32")
    np.savez(path, **arrays)


# --- ebmlab ------------------------------------------------------------------------------------------------------

def torch_energy(task: str, arrays):
    import torch

    if task == "ring8":
        k, r, s = RING
        ang = torch.arange(k, dtype=torch.float32) * (2 * math.pi / k)
        mu = torch.stack([r * ang.cos(), r * ang.sin()], 1)
        return lambda x: -torch.logsumexp(-((x[:, None, :] - mu) ** 2).sum(-1) / (2 * s * s), 1)
    if task == "gauss50":
        prec = torch.as_tensor(1.0 / _stds(TASKS[task][0]) ** 2)
        return lambda x: 0.5 * (x * x * prec).sum(1)
    layers = [(torch.as_tensor(arrays[f"w{i}"]), torch.as_tensor(arrays[f"b{i}"])) for i in (0, 2, 4)]

    def mlp(x):
        h = x
        for j, (w, b) in enumerate(layers):
            h = h @ w.T + b
            if j < 2:
                h = torch.nn.functional.silu(h)
        return h.squeeze(-1) + 0.5 * (x * x).sum(1)
    return mlp


def run_ebmlab(task: str, sampler: str, mode: str, arrays, steps: int) -> dict:
    import torch

    from ebmlab.samplers import mcmc

    torch.set_num_threads(1)
    x0 = torch.as_tensor(arrays[f"x0_{task}"])
    kw = {"step_size": TASKS[task][1][sampler], **({"n_leapfrog": N_LEAPFROG} if sampler == "hmc" else {})}
    runs, first = [], None
    for _ in range(REPEATS):  # the same chain each time; compiled: each run compiles afresh (its first cold)
        t0 = time.perf_counter()
        res = mcmc.run(getattr(mcmc, sampler), x0, torch_energy(task, arrays), n_steps=steps,
                       generator=torch.Generator().manual_seed(0), compile=mode == "compiled", **kw)
        comp = res.compile_seconds or 0.0
        runs.append(time.perf_counter() - t0 - comp)
        first = comp if first is None else first
    return {"run_s": min(runs), "runs_s": runs, "compile_s": first if mode == "compiled" else None,
            "acceptance": res.mean_acceptance, "x": res.final_state.x.numpy()}


# --- blackjax ----------------------------------------------------------------------------------------------------

def jax_logdensity(task: str, arrays):
    import jax
    import jax.numpy as jnp

    if task == "ring8":
        k, r, s = RING
        ang = jnp.arange(k, dtype=jnp.float32) * (2 * math.pi / k)
        mu = jnp.stack([r * jnp.cos(ang), r * jnp.sin(ang)], 1)
        return lambda x: jax.nn.logsumexp(-((x[None, :] - mu) ** 2).sum(-1) / (2 * s * s))
    if task == "gauss50":
        prec = jnp.asarray(1.0 / _stds(TASKS[task][0]) ** 2)
        return lambda x: -0.5 * (x * x * prec).sum()
    layers = [(jnp.asarray(arrays[f"w{i}"]), jnp.asarray(arrays[f"b{i}"])) for i in (0, 2, 4)]

    def mlp(x):
        h = x
        for j, (w, b) in enumerate(layers):
            h = w @ h + b
            if j < 2:
                h = jax.nn.silu(h)
        return -(h[0] + 0.5 * (x * x).sum())
    return mlp


def run_blackjax(task: str, sampler: str, arrays, steps: int) -> dict:
    import blackjax
    import jax
    import jax.numpy as jnp
    from blackjax.mcmc import diffusions

    logp = jax_logdensity(task, arrays)
    size, d = TASKS[task][1][sampler], TASKS[task][0]
    if sampler == "ula":
        integrator = diffusions.overdamped_langevin(jax.value_and_grad(logp))

        def step(key, state):
            return integrator(key, state, size / 2), jnp.float32(1.0)
        init = jax.vmap(lambda x: diffusions.DiffusionState(x, *jax.value_and_grad(logp)(x)))
    else:
        algo = blackjax.mala(logp, size / 2) if sampler == "mala" else \
            blackjax.hmc(logp, step_size=size, inverse_mass_matrix=jnp.ones(d), num_integration_steps=N_LEAPFROG)

        def step(key, state):
            new, info = algo.step(key, state)
            return new, info.acceptance_rate
        init = jax.vmap(algo.init)

    def chains(key, x0):
        state = init(x0)

        def one(carry, key):
            state, acc = carry
            keys = jax.random.split(key, x0.shape[0])
            state, a = jax.vmap(step)(keys, state)
            return (state, acc + a), None
        (state, acc), _ = jax.lax.scan(one, (state, jnp.zeros(x0.shape[0])), jax.random.split(key, steps))
        return state.position, acc / steps
    f = jax.jit(chains)
    x0 = jnp.asarray(arrays[f"x0_{task}"])
    t0 = time.perf_counter()
    jax.block_until_ready(f(jax.random.PRNGKey(0), x0))
    first = time.perf_counter() - t0
    runs = []
    for k in range(REPEATS):
        t0 = time.perf_counter()
        x, acc = jax.block_until_ready(f(jax.random.PRNGKey(1 + k), x0))
        runs.append(time.perf_counter() - t0)
    import numpy as np

    return {"run_s": min(runs), "runs_s": runs, "compile_s": first - runs[0], "acceptance": float(acc.mean()),
            "x": np.asarray(x)}


# --- the known answers -------------------------------------------------------------------------------------------

def answer(task: str, x) -> dict:
    """What the final states say against the target's known answer (1000 independent chains' last states)."""
    import numpy as np

    x = np.asarray(x, dtype="float64")
    out = {"mean_sq_norm": float((x * x).sum(1).mean())}
    if task == "ring8":
        k, r, s = RING
        ang = np.arctan2(x[:, 1], x[:, 0]) % (2 * math.pi)
        share = np.bincount(np.round(ang / (2 * math.pi / k)).astype(int) % k, minlength=k) / len(x)
        out.update(err_sq_norm=out["mean_sq_norm"] - (r * r + 2 * s * s), max_mode_share_err=float(
            np.abs(share - 1 / k).max()))
    if task == "gauss50":
        var = _stds(x.shape[1]).astype("float64") ** 2
        out["max_rel_var_err"] = float(np.abs(x.var(0) / var - 1).max())
    return out


# --- the driver --------------------------------------------------------------------------------------------------

def worker(args: argparse.Namespace, peer: str = "blackjax", run_peer: Callable[..., dict] | None = None) -> None:
    """One run in this process, pinned to CPU 0: ``peer``'s (``run_peer``: blackjax's by default) or ebmlab's."""
    import numpy as np

    os.sched_setaffinity(0, {0})
    arrays = np.load(args.inputs)
    if args.side == peer:
        r = (run_peer or run_blackjax)(args.task, args.sampler, arrays, args.steps)
    else:
        r = run_ebmlab(args.task, args.sampler, args.side.split("-")[1], arrays, args.steps)
    x = r.pop("x")
    print(json.dumps({**r, **answer(args.task, x)}))


def launch(python: str, side: str, task: str, sampler: str, inputs: Path, steps: int) -> dict:
    import shutil
    import tempfile

    cache = tempfile.mkdtemp(prefix="inductor-")  # a cold compile, as a first use has (inductor caches on disk)
    env = {**os.environ, "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
           "OMP_NUM_THREADS": "1", "JAX_PLATFORMS": "cpu", "TORCHINDUCTOR_CACHE_DIR": cache}
    out = subprocess.run([python, __file__, "worker", side, task, sampler, str(inputs), str(steps)], env=env,
                         capture_output=True, text=True, check=False)
    shutil.rmtree(cache, ignore_errors=True)
    if out.returncode:
        raise SystemExit(f"{side} {task} {sampler} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def arguments(doc: str, samplers: str, peer_flag: str, peer_help: str) -> argparse.Namespace:
    """The command line of a samplers-vs-peer script (this one's and ``samplers_torchebm.py``'s)."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd")
    w = sub.add_parser("worker")
    for a in ("side", "task", "sampler", "inputs"):
        w.add_argument(a)
    w.add_argument("steps", type=int)
    ap.add_argument(peer_flag, required=False, help=peer_help)
    ap.add_argument("--chains", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--samplers", default=samplers)
    ap.add_argument("--out", type=Path, default=Path(sys.argv[0]).with_suffix(".json"))
    return ap.parse_args()


def compare(args: argparse.Namespace, peer: str, launch_side: Callable[[str, str, str, Path], dict]) -> None:
    """Every task and sampler: ebmlab eager, ebmlab compiled and ``peer`` one after another (``launch_side(side,
    task, sampler, inputs)``), the ratios (peer time / ebmlab time) and the load; the JSON to ``args.out``."""
    inputs = args.out.with_suffix(".inputs.npz")
    write_inputs(inputs, args.chains)
    rows, t0 = [], time.time()
    for task in args.tasks.split(","):
        for sampler in args.samplers.split(","):
            row = {"task": task, "sampler": sampler, "load_before": round(os.getloadavg()[0], 2)}
            for side in ("ebmlab-eager", "ebmlab-compiled", peer):
                row[side] = launch_side(side, task, sampler, inputs)
            row["ratio_eager"] = row[peer]["run_s"] / row["ebmlab-eager"]["run_s"]
            row["ratio_compiled"] = row[peer]["run_s"] / row["ebmlab-compiled"]["run_s"]
            print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()
                              if not isinstance(v, dict)}), flush=True)
            rows.append(row)
    inputs.unlink()
    meta = {"command": " ".join(sys.argv), "wall_s": round(time.time() - t0, 1), "machine": platform.processor() or
            platform.machine(), "cpus": os.cpu_count(), "chains": args.chains, "steps": args.steps,
            "load_after": round(os.getloadavg()[0], 2)}
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))


def main() -> None:
    args = arguments(__doc__, "ula,mala,hmc", "--peer-python", "a Python with jax and blackjax installed")
    if args.cmd == "worker":
        return worker(args)
    if not args.peer_python:
        raise SystemExit("--peer-python PATH: a Python with jax and blackjax (pip install blackjax) is needed")
    compare(args, "blackjax", lambda side, task, sampler, inputs: launch(
        args.peer_python if side == "blackjax" else sys.executable, side, task, sampler, inputs, args.steps))


if __name__ == "__main__":
    main()
