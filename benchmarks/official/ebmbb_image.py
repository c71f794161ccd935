"""EBM-BB's official image trainer (``train/train_image.py``, ``EBM_BB``) beside ``ebmlab train bib`` on the same
data, networks, seed and steps, with the energy's trajectory and the stacked-mode score of both.

    python benchmarks/official/ebmbb_image.py prepare --out DIR
    python benchmarks/official/ebmbb_image.py official --repo PATH/EBM-BB --deps DEPS --data DIR/sf32.npz \
        --steps 1000 --seed 0 --width 16 --out OUT [-- extra train_image.py arguments]
    ebmlab train bib --data DIR/sf32.npz --out RUN ... (the matching options: see results.md)
    python benchmarks/official/ebmbb_image.py score RUN --out OUT
    python benchmarks/official/ebmbb_image.py table OUT/official.json OUT/RUN.json ...   (markdown tables)

Data (``prepare``): stacked Fashion-MNIST (three independent Fashion-MNIST images as channels, 1000 modes; the
built-in ``stacked_fashion``) padded from 28×28 to 32×32 with background (0), because EBM-BB's 32×32 DCGAN pair
needs 32×32 inputs; written as a uint8 ``.npz`` that ``ebmlab train --data`` reads as a user data set. Scores
crop the samples back to 28×28 and use ``stacked_fashion``'s evaluator (its domain classifier, 26,000 samples for
the mode count, 1000 for the feature metrics).

What is needed to run the official code here; the script itself is not edited:
- ``--deps``: stochman, torchplot, tensorboardX, protobuf (``pip install --target DEPS --no-deps ...``), and
  ``stub/torchvision`` (torchvision does not import with the CPU torch here); ``vutils.make_grid`` and
  ``save_image`` (the sample pictures it saves at iteration 0) become no-ops. Its evaluation modules
  (``score.F_beta``, ``score.score``: Inception networks subclassed from torchvision at import) are replaced by
  stand-ins whose functions raise if called; they are called only by the per-10-epoch evaluation, which never
  fires here.
- ``data.InfiniteDataLoader.next`` calls the iterator's ``.next()``, which current DataLoader iterators no longer
  have: it is replaced by the same method calling ``next(...)``.
- ``data.LoadDataset`` (CIFAR-10 by download) is replaced by the prepared images in [−1, 1], without the random
  horizontal flip of its training transform (ebmlab does not flip; the data are then the same on both sides).
  Its length is ``steps × batch`` (the images cycled in a fixed random order), so that ``--epoch 1`` runs
  ``steps + 1`` iterations and none of the per-epoch evaluations (Inception FID/IS, which cannot run here) fires.
- ``Tensor.cuda`` returns the tensor itself (the script moves every batch to the GPU by ``.cuda()``), unless
  ``--cuda`` (on a GPU machine, for ``benchmarks/gpu/speed.py``, which also passes ``--no-score``: it times the
  script on random 3×32×32 pixels, where the stacked-mode score means nothing).
- Width: ``network.DCGAN``'s ``dim`` (512 in the script, d = 8·width in ebmlab's ``net=ebmbb32``) is set by
  ``--width`` (default 16, dim 128) so that a CPU can run a few thousand steps; both sides use the same width.
- The energy's forward is wrapped to record the mean output of each call (per iteration: real batch, generator
  batch of the energy step, generator batch of the generator step) with its wall-clock time.
The trained networks are taken from the finished script's globals (``model.gen``, ``model.disc``).
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

PAD = 2  # 28 → 32


def prepare(out: Path) -> Path:
    from ebmlab.data import get_dataset

    ds = get_dataset("stacked_fashion")
    a = ds.arrays

    def pad(x):
        return np.pad(x, ((0, 0), (0, 0), (PAD, PAD), (PAD, PAD)))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "sf32.npz"
    np.savez(path, train=pad(a.train_x), test=pad(a.test_x))
    print(f"wrote {path}: train {a.train_x.shape} → {pad(a.train_x[:1]).shape[1:]}, test {len(a.test_x)}")
    return path


def score(x: "torch.Tensor", n_features: int = 1000) -> dict:  # noqa: F821
    """Stacked-mode metrics of 32×32 samples in [−1, 1], cropped back to 28×28."""
    from ebmlab.data import get_dataset
    from ebmlab.metrics.images import image_metrics

    crop = x[:, :, PAD:-PAD, PAD:-PAD].contiguous()
    m = image_metrics(crop, get_dataset("stacked_fashion"), n_features=n_features)
    keep = ("modes", "modes_in_data", "modes_confident", "mode_kl", "clf_fd", "clf_precision", "clf_recall",
            "frac_finite")
    return {k: m[k] for k in keep if k in m}


def official(a) -> None:
    from ebmbb_toy import official_setup  # the same checkout, path and thread set-up as the toy runner

    script, out, work = official_setup(a.repo, a.deps, a.out, "train_image.py", a.threads)
    import torch

    if not a.cuda:
        torch.Tensor.cuda = lambda self, *args, **kw: self  # CPU: the script's .cuda() calls keep the tensor
    import torchvision.utils as vutils  # the stub

    import types

    def unavailable(*args, **kw):
        raise RuntimeError("Inception evaluation is not available here")
    for name, funcs in (("score.F_beta", ("calculate_f_beta_score", "plot_pr_curve")),
                        ("score.score", ("compute_is_and_fid",))):
        stand_in = types.ModuleType(name)
        for f in funcs:
            setattr(stand_in, f, unavailable)
        sys.modules[name] = stand_in
    vutils.make_grid = lambda *args, **kw: None
    vutils.save_image = lambda *args, **kw: None

    import data as ebmbb_data  # the repository's data.py
    import network.DCGAN as dcgan

    def next_fixed(self):
        try:
            return next(self.data_iter)
        except Exception:  # the first call (no iterator yet) and the end of an epoch, as the original
            self.data_iter = iter(self.dataloader)
            return next(self.data_iter)
    ebmbb_data.InfiniteDataLoader.next = next_fixed

    arrays = np.load(a.data)
    steps, batch = a.steps, 64

    class Prepared(torch.utils.data.Dataset):
        def __init__(self, args, train=True):
            x = arrays["train" if train else "test"]
            self.x = torch.from_numpy(x).float() / 127.5 - 1.0
            self.order = np.random.RandomState(a.seed).permutation(len(x))
            self.n = steps * batch if train else len(x)

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            return self.x[self.order[i % len(self.x)]], 0
    ebmbb_data.LoadDataset = Prepared

    dim = 8 * a.width
    dcgan.EnergyModel.__init__.__defaults__ = (dim,)
    dcgan.Generator.__init__.__defaults__ = (128, dim)
    trace: list[tuple[float, Any]] = []
    forward = dcgan.EnergyModel.forward

    def recorded(self, x):
        e = forward(self, x)
        # on a GPU the mean stays there until the end (a read per call would slow the official step down)
        trace.append((time.perf_counter(), e.detach().mean() if a.cuda else float(e.detach().mean())))
        return e
    dcgan.EnergyModel.forward = recorded

    os.chdir(work)
    sys.argv = [str(script), "--EBM_type", "EBM_BB", "--mode", "train", "--epoch", "1", "--seed", str(a.seed),
                *a.extra]
    t0 = time.perf_counter()
    g = runpy.run_path(str(script), run_name="__main__")
    wall = time.perf_counter() - t0
    model = g["model"]
    torch.save({"gen": model.gen.state_dict(), "disc": model.disc.state_dict()}, out / "official_weights.pt")
    iters = len(trace) // 3
    trace = [(t, float(e)) for t, e in trace]
    tr = np.array(trace[:3 * iters]).reshape(iters, 3, 2)
    every = max(1, iters // 200)
    traj = [{"step": i, "t": float(tr[i, 0, 0] - t0), "energy_real": float(tr[i, 0, 1]),
             "energy_fake": float(tr[i, 1, 1]), "energy_gen": float(tr[i, 2, 1])} for i in range(0, iters, every)]
    x = None
    if not a.no_score:
        gen = model.gen.eval()
        zg = torch.Generator().manual_seed(0)
        with torch.no_grad():
            dev = next(gen.parameters()).device
            x = torch.cat([gen(torch.randn(500, 128, generator=zg).to(dev)).cpu() for _ in range(52)])
    # steady rate: from the iteration after the first quarter (at most 50) to the last, by the energy calls' clocks
    i0 = min(50, iters // 4)
    steady = (iters - 1 - i0) / (tr[-1, 0, 0] - tr[i0, 0, 0]) if iters > i0 + 1 else None
    res = {"code": "official", "iterations": iters, "wall_s": wall, "steps_per_s": iters / wall,
           "steady_steps_per_s": steady, "width": a.width, "seed": a.seed, "extra": a.extra,
           "load_end": os.getloadavg(), "trajectory": traj, **(score(x) if x is not None else {})}
    (out / "official.json").write_text(json.dumps(res, indent=1))
    print(json.dumps({k: v for k, v in res.items() if k != "trajectory"}, indent=1))


def score_run(a) -> None:
    import torch

    from ebmlab.api import draw_samples

    torch.set_num_threads(a.threads)
    run = Path(a.run)
    x, _ = draw_samples(run, 26_000, seed=0, batch_size=500)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    traj = [{"step": r["step"], "energy_real": r.get("energy_real"), "energy_fake": r.get("energy_fake"),
             "energy_gen": r.get("energy_gen")} for r in rows if "energy_real" in r]
    run_json = json.loads((run / "run.json").read_text())
    res = {"code": "ebmlab", "run": str(run), "trajectory": traj, "run_record": run_json, **score(x)}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{run.parent.name}_{run.name}.json").write_text(json.dumps(res, indent=1))
    print(json.dumps({k: v for k, v in res.items() if k not in ("trajectory", "run_record")}, indent=1))


def table(files: list[str], every: int) -> str:
    """Markdown: the mean energy on real and generated batches every ``every`` steps, per file, and the scores."""
    res = [json.loads(Path(f).read_text()) for f in files]
    names = [r.get("label") or (r["code"] if r["code"] == "official" else Path(r["run"]).parent.name) for r in res]
    by = [{t["step"]: t for t in r["trajectory"]} for r in res]
    steps = sorted(set.intersection(*(set(b) for b in by)))
    lines = ["| step | " + " | ".join(f"{n}: E(real) / E(fake)" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for st in steps:
        if st % every == 0:
            lines.append(f"| {st} | " + " | ".join(f"{b[st]['energy_real']:.4g} / {b[st]['energy_fake']:.4g}"
                                                    for b in by) + " |")
    keys = ("modes", "modes_in_data", "modes_confident", "mode_kl", "clf_fd", "clf_precision", "clf_recall")
    lines += ["", "| code | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for n, r in zip(names, res):
        lines.append(f"| {n} | " + " | ".join(f"{r[k]:.4g}" if isinstance(r.get(k), float) else str(r.get(k))
                                             for k in keys) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--out", required=True)
    p = sub.add_parser("official")
    p.add_argument("--repo", required=True)
    p.add_argument("--deps", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cuda", action="store_true", help="on a GPU: keep the script's .cuda() calls")
    p.add_argument("--no-score", action="store_true", help="skip the stacked-mode score (timing on other data)")
    p.add_argument("--out", required=True)
    p.add_argument("extra", nargs="*")
    p = sub.add_parser("score")
    p.add_argument("run")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    p = sub.add_parser("table")
    p.add_argument("files", nargs="+")
    p.add_argument("--every", type=int, default=60)
    a = ap.parse_args()
    if a.cmd == "table":
        print(table(a.files, a.every))
    elif a.cmd == "prepare":
        prepare(Path(a.out))
    elif a.cmd == "official":
        official(a)
    else:
        score_run(a)


if __name__ == "__main__":
    main()
