"""Run EBM-BB's official toy trainer (``train/train_toy.py``, unmodified) and score it with ebmlab's metrics.

    python benchmarks/official/ebmbb_toy.py --repo PATH/EBM-BB --deps DEPS --iters 10000 --seed 0 \
        --out OUT [-- extra train_toy.py arguments]

What is needed to run the official code here, and nothing else is changed:
- ``--deps``: a directory with stochman (its ``nnj`` layers compute the generator's Jacobian), torchplot and
  tensorboardX (+ protobuf), installed with ``pip install --target DEPS --no-deps stochman torchplot
  tensorboardX protobuf`` — the official environment's versions are not pinned for them.
- ``stub/torchvision``: torchvision does not import with the CPU torch here; the toy path imports it but never
  calls it, so an import-only stand-in is put first on the path.
- The script runs as ``__main__`` through ``runpy`` in a scratch working directory (it writes ``models/``,
  ``results/``, ``logs/`` relative to it), with one torch thread. It saves weights only every 30k iterations, so
  the trained networks are taken from the finished module's globals (``model.gen``, ``model.disc``) and saved here.

Scoring: the official 25gaussians is ebmlab's grid25 divided by 2.828 (their constant), so samples are multiplied
by 2.828 and the energy is E'(x) = D(x / 2.828) (the official energy is the discriminator output: the energy loss
is mean D(data) − mean D(fake)). Samples: 2500 from the generator in eval mode (as the official plotting), z from
a generator seeded 0. Then ``sample_metrics`` (modes, HQ, mode KL, MMD², W1 against the test split) and
``density_metrics`` (exact NLL by quadrature) — the same functions ``ebmlab eval`` uses.
Writes OUT/official.json and OUT/official_samples.npy.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCALE = 2.828  # EBM-BB's 25gaussians divides the grid by this constant


def official_setup(repo: str, deps: str, out: str, name: str, threads: int) -> tuple[Path, Path, Path]:
    """(script, out, workdir) for running EBM-BB's ``train/<name>``: the checkout checked, OUT and its scratch
    working directory made, the stand-ins, DEPS and the checkout first on the path, torch on ``threads`` threads."""
    repo_p, out_p = Path(repo).resolve(), Path(out).resolve()
    script = repo_p / "train" / name
    if not script.is_file():
        sys.exit(f"error: {script} not found: --repo must be a checkout of gengcong940126/EBM-BB")
    out_p.mkdir(parents=True, exist_ok=True)
    work = out_p / "official_workdir"
    work.mkdir(exist_ok=True)
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.path[:0] = [str(HERE / "stub"), str(Path(deps).resolve()), str(repo_p)]
    import torch

    torch.set_num_threads(threads)
    return script, out_p, work


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", required=True, help="checkout of gengcong940126/EBM-BB")
    ap.add_argument("--deps", required=True, help="directory holding stochman, torchplot, tensorboardX, protobuf")
    ap.add_argument("--iters", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("extra", nargs="*", help="further train_toy.py arguments (after --)")
    a = ap.parse_args()

    script, out, work = official_setup(a.repo, a.deps, a.out, "train_toy.py", a.threads)
    import torch

    os.chdir(work)
    sys.argv = [str(script), "--dataset", "25gaussians", "--iters", str(a.iters), "--seed", str(a.seed), *a.extra]
    t0 = time.perf_counter()
    g = runpy.run_path(str(script), run_name="__main__")
    wall = time.perf_counter() - t0
    model = g["model"]
    torch.save({"gen": model.gen.state_dict(), "disc": model.disc.state_dict()}, out / "official_weights.pt")

    import numpy as np

    from ebmlab.data import get_dataset
    from ebmlab.metrics.density import density_metrics
    from ebmlab.metrics.evaluators import sample_metrics

    ds = get_dataset("grid25")
    gen, disc = model.gen.eval(), model.disc.eval()
    with torch.no_grad():
        z = torch.randn(2500, 2, generator=torch.Generator().manual_seed(0))
        x = gen(z) * SCALE
    np.save(out / "official_samples.npy", x.numpy())

    def energy(v):
        return disc(v / SCALE).squeeze(-1)

    res = {"code": "EBM-BB train/train_toy.py (unmodified)", "argv": sys.argv[1:], "iters": a.iters,
           "seed": a.seed, "wall_s": wall, "steps_per_s": a.iters / wall, "threads": a.threads,
           "load_end": os.getloadavg()[0], **sample_metrics(x, ds), **density_metrics(energy, ds)}
    (out / "official.json").write_text(json.dumps(res, indent=1))
    print(json.dumps({k: res[k] for k in ("steps_per_s", "modes", "hq", "w1", "mode_kl") if k in res}
                     | {k: res.get(k) for k in ("nll", "nll_box", "density_status")}))


if __name__ == "__main__":
    main()
