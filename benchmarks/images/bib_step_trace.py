"""BiB's training traced step by step from a kept checkpoint: where a run's entropy term or gradients blow up.

    python benchmarks/images/bib_step_trace.py RUN_DIR --from-step N [--steps 100] [--seed 0]

Loads ``RUN_DIR/checkpoints/step-N.pt`` (``keep_checkpoints=true``; the networks and the optimizers' state) into a
method built from the run's config.json and trains ``--steps`` more steps of the same method on batches of the
run's training split (drawn with ``--seed``: not the run's own stream, so the trace is the run's dynamics from that
point, not a replay of its steps). Each step prints the entropy term Ĥ, the mean log-volume per latent dimension it
implies ((Ĥ − H(z))/d: the mean log s_min for ``estimator=smin``/``lobpcg``), the generator's and the energy's
gradient norms, the generator's largest parameter and its loss; it stops at the first non-finite value. One
thread.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from ebmlab.api import load_run
from ebmlab.bounds.entropy import gaussian_entropy
from ebmlab.data import get_dataset
from ebmlab.trainer import build_method


def grad_norm(module: torch.nn.Module) -> float:
    gs = [p.grad.detach() for p in module.parameters() if p.grad is not None]
    return float(torch.nn.utils.get_total_norm(gs)) if gs else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--from-step", type=int, required=True)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    cfg, _, _ = load_run(a.run, device="cpu")
    m = build_method(cfg, torch.device("cpu"))
    state = torch.load(Path(a.run, "checkpoints", f"step-{a.from_step}.pt"), weights_only=True)["method_state"]
    m.load_state_dict(state, any_device=True)
    train = get_dataset(cfg.data).train
    rng = torch.Generator().manual_seed(a.seed)
    d, b = m.config.z_dim, cfg.run.batch_size
    h_z = gaussian_entropy(d)
    print(f"{a.run} from step {a.from_step}: z_dim {d}, estimator {m.config.estimator}, "
          f"entropy_batch {m.config.entropy_batch}, entropy_weight {m.config.entropy_weight}")
    print("| step | Ĥ | (Ĥ − H(z))/d | ‖∇G‖ | ‖∇E‖ | max abs θ_G | loss_g |\n|---|---|---|---|---|---|---|")
    for step in range(a.from_step, a.from_step + a.steps):
        batch = train[torch.randint(0, len(train), (b,), generator=rng)]
        out = m.train_step(batch, step)
        h = float(out["entropy"])
        row = [h, (h - h_z) / d, grad_norm(m.G), grad_norm(m.E),
               max(float(p.detach().abs().max()) for p in m.G.parameters()), float(out["loss_g"])]
        print(f"| {step + 1} | " + " | ".join(f"{v:.4g}" for v in row) + " |", flush=True)
        if not all(math.isfinite(v) for v in row):
            print(f"non-finite at step {step + 1}")
            break


if __name__ == "__main__":
    main()
