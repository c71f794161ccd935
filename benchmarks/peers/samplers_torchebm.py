"""ebmlab's MCMC samplers beside torchebm's, side by side on one CPU thread (both PyTorch).

    pip install --no-deps --target /tmp/torchebm-pkg torchebm          # 0.8.9: requires torch only
    python benchmarks/peers/samplers_torchebm.py --torchebm-path /tmp/torchebm-pkg \
        --out benchmarks/peers/samplers_torchebm.json

The same tasks, start points, step sizes, chains and steps as ``samplers_blackjax.py`` (whose functions this
script uses): ULA and HMC (10 leapfrog steps, unit mass; torchebm has no MALA), 1000 chains x 1000 steps, float32,
each worker a fresh process pinned to CPU 0 with one thread. torchebm's ``LangevinDynamics`` moves
x − η∇E + √(2η)ξ (Euler–Maruyama, noise_scale 1), so η = h/2 for ebmlab's ULA step h; its
``HamiltonianMonteCarlo`` takes the leapfrog step as is. Its energy is the same function, wrapped in its
``BaseModel``. ebmlab runs eagerly and compiled (``compile=on``: the run time less the first, compiling call,
reported apart); torchebm eagerly (it has no compiled path), timed after a 2-step call that takes its one-time
set-up out (ebmlab's eager runs are timed cold). With the same generator seed both libraries draw the same noise in
the same order, so the final states agree to float rounding: a check that the kernels are the same. Ratio: torchebm's run time over ebmlab's (above 1,
ebmlab faster). The three runs of a row are made one after the other; the load average is recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import samplers_blackjax  # noqa: E402
from samplers_blackjax import N_LEAPFROG, TASKS, arguments, compare, torch_energy, worker  # noqa: E402

samplers_blackjax.REPEATS = 1  # torchebm's side is timed once: so is ebmlab's here, as when this table was made


def run_torchebm(task: str, sampler: str, arrays, steps: int) -> dict:
    import torch
    from torchebm.core import BaseModel
    from torchebm.samplers import HamiltonianMonteCarlo, LangevinDynamics

    torch.set_num_threads(1)
    energy = torch_energy(task, arrays)

    class Energy(BaseModel):
        def forward(self, x):
            return energy(x)

    size = TASKS[task][1][sampler]
    model = Energy()
    s = LangevinDynamics(model, step_size=size / 2, noise_scale=1.0) if sampler == "ula" else \
        HamiltonianMonteCarlo(model, step_size=size, n_leapfrog_steps=N_LEAPFROG)
    x0 = torch.as_tensor(arrays[f"x0_{task}"])
    s.sample(x=x0.clone(), n_steps=2, generator=torch.Generator().manual_seed(1))  # its first call's set-up, untimed
    t0 = time.perf_counter()
    x = s.sample(x=x0.clone(), n_steps=steps, generator=torch.Generator().manual_seed(0))
    return {"run_s": time.perf_counter() - t0, "compile_s": None, "x": x.detach().numpy()}


def launch(side: str, task: str, sampler: str, inputs: Path, steps: int, torchebm_path: str) -> dict:
    import shutil
    import tempfile

    cache = tempfile.mkdtemp(prefix="inductor-")  # a cold compile, as a first use has
    path = os.pathsep.join(p for p in (torchebm_path if side == "torchebm" else "", os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TORCHINDUCTOR_CACHE_DIR": cache, "PYTHONPATH": path}
    out = subprocess.run([sys.executable, __file__, "worker", side, task, sampler, str(inputs), str(steps)], env=env,
                         capture_output=True, text=True, check=False)
    shutil.rmtree(cache, ignore_errors=True)
    if out.returncode:
        raise SystemExit(f"{side} {task} {sampler} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    args = arguments(__doc__, "ula,hmc", "--torchebm-path",
                     "a directory holding the torchebm package (pip install --no-deps --target DIR torchebm)")
    if args.cmd == "worker":
        return worker(args, "torchebm", run_torchebm)
    if not args.torchebm_path:
        raise SystemExit("--torchebm-path DIR: torchebm installed there (pip install --no-deps --target DIR torchebm)")
    compare(args, "torchebm", lambda side, task, sampler, inputs: launch(side, task, sampler, inputs, args.steps,
                                                                         args.torchebm_path))


if __name__ == "__main__":
    main()
