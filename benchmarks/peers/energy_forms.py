"""The ring-of-8 energy written two ways, sampled by ebmlab's compiled chains side by side in one process: the form
of samplers_blackjax.py (``x[:, None, :] - mu``: a 1000×8×2 tensor whose inner dimension of 2 inductor's CPU code
vectorises badly) and a per-coordinate form (the two coordinates apart, 1000×8 tensors; the same function to float
rounding). It measures how much of the compiled chains' gap to blackjax on the ring lies in how the target is
written rather than in the sampler.

    python benchmarks/peers/energy_forms.py [--steps 400] [--samplers ula,mala,hmc]

1000 chains, float32, the start points and step sizes of samplers_blackjax.py, one thread; each form timed 3 times
after its compile, the fastest counts; prints one JSON line per sampler and form.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import samplers_blackjax as sb  # noqa: E402  (its targets, start points and step sizes)


def forms():
    import torch

    k, r, s = sb.RING
    ang = torch.arange(k, dtype=torch.float32) * (2 * math.pi / k)
    mu0, mu1 = r * ang.cos(), r * ang.sin()
    mu = torch.stack([mu0, mu1], 1)

    def natural(x):
        return -torch.logsumexp(-((x[:, None, :] - mu) ** 2).sum(-1) / (2 * s * s), 1)

    def per_coordinate(x):
        d0, d1 = x[:, 0:1] - mu0, x[:, 1:2] - mu1
        return -torch.logsumexp(-(d0 * d0 + d1 * d1) / (2 * s * s), 1)

    return {"natural": natural, "per_coordinate": per_coordinate}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--samplers", default="ula,mala,hmc")
    a = ap.parse_args()
    import numpy as np
    import torch

    from ebmlab.samplers import mcmc

    torch.set_num_threads(1)
    x0 = torch.as_tensor(np.random.default_rng(1).standard_normal((1000, 2)).astype(np.float32))
    for sampler in a.samplers.split(","):
        kw = {"step_size": sb.TASKS["ring8"][1][sampler], **({"n_leapfrog": sb.N_LEAPFROG} if sampler == "hmc" else {})}
        finals = {}
        for name, energy in forms().items():
            times, comp = [], None
            for _ in range(3):
                t0 = time.perf_counter()
                res = mcmc.run(getattr(mcmc, sampler), x0, energy, n_steps=a.steps,
                               generator=torch.Generator().manual_seed(0), compile=True, **kw)
                c = res.compile_seconds or 0.0
                times.append(time.perf_counter() - t0 - c)
                comp = c if comp is None else comp
            finals[name] = res.final_state.x
            print(json.dumps({"sampler": sampler, "form": name, "us_per_step": round(min(times) / a.steps * 1e6, 1),
                              "runs_s": [round(t, 3) for t in times], "compile_s": round(comp, 1),
                              "e_x2": round(float((res.final_state.x ** 2).sum(1).mean()), 4)}), flush=True)
        print(json.dumps({"sampler": sampler, "max_state_difference": float((finals["natural"] -
                                                                             finals["per_coordinate"]).abs().max())}))


if __name__ == "__main__":
    main()
