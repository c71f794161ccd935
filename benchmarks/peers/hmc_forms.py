"""HMC compiled two ways, side by side in one process: whole (the leapfrog as torch's scan loop inside the step,
blocks of mcmc.COMPILE_BLOCK steps a call; the default) and part (one leapfrog step compiled and called n_leapfrog
times a proposal, the momentum draw and the acceptance eager; the fallback, and the only form before).

    python benchmarks/peers/hmc_forms.py [--steps 200] [--tasks ring8,gauss50]

The targets, start points and step sizes of samplers_blackjax.py; 1000 chains, float32, one thread pinned to CPU 0;
each form timed 3 times after its compile, the fastest counts; prints one JSON line per task and form.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--tasks", default="ring8,gauss50")
    a = ap.parse_args()
    os.sched_setaffinity(0, {0})
    import numpy as np
    import torch

    import samplers_blackjax as sb
    from ebmlab.samplers import mcmc

    torch.set_num_threads(1)
    inputs = Path(tempfile.mkdtemp()) / "in.npz"
    sb.write_inputs(inputs, 1000)
    arrays = np.load(inputs)
    for task in a.tasks.split(","):
        energy = sb.torch_energy(task, arrays)
        x0 = torch.as_tensor(arrays[f"x0_{task}"])
        kw = {"step_size": sb.TASKS[task][1]["hmc"]}
        for form in ("part", "whole"):
            stepper = mcmc._Stepper(mcmc.hmc, energy, "on", {"n_leapfrog": sb.N_LEAPFROG})
            if form == "part":  # what the whole step falls back to
                stepper.compiled, stepper.part = None, mcmc._CompiledDriftKick(
                    energy, fullgraph=True, dynamic=False, backend=mcmc.COMPILE_BACKEND)
            gen = torch.Generator().manual_seed(0)
            state0 = mcmc.hmc.init(x0, energy)
            blk = mcmc.COMPILE_BLOCK

            def chain(n: int):
                s = state0
                for _ in range(n // blk if stepper.blocked(blk) else n):
                    s = stepper.block(s, gen, kw, blk)[0] if stepper.blocked(blk) else stepper(s, gen, kw)[0]
                return s
            t0 = time.perf_counter()
            chain(blk)
            compile_s = time.perf_counter() - t0
            runs = []
            for _ in range(3):
                t0 = time.perf_counter()
                s = chain(a.steps)
                runs.append(time.perf_counter() - t0)
            print(json.dumps({"task": task, "form": form, "ms_per_step": round(min(runs) / a.steps * 1e3, 3),
                              "first_calls_s": round(compile_s, 1), "mean_sq_norm": float((s.x ** 2).sum(1).mean()),
                              "load": round(os.getloadavg()[0], 2)}), flush=True)


if __name__ == "__main__":
    main()
