"""How much of the label VGAN-VCD's transition keeps, and what that does to its semi-supervised gain.

    python benchmarks/semisup/transition_noise.py RUN --p 0,0.1,0.25,0.5 --semisup-p 0,0.25 --rho 0.1,1 \
        --seeds 5 --out benchmarks/semisup/OUT.json [--grid OUT.png]

RUN is a trained ``vgan_vcd`` run on a labelled image set. The transition replaces each code unit by U(−1, 1)
noise with probability p (``drop_prob``, 0.5 in training); here p is set at augmentation time only, the trained
networks unchanged. For each p in --p: ``ebmlab.semisup.augmentation_check`` on the whole test split (the domain
classifier's accuracy on x and T(x), the fraction of T(x) it keeps in x's class). For each p in --semisup-p: the
semi-supervised table (``ebmlab.semisup.semisup_table``, 1000 labels, 400 steps) at each --rho, the same seeds, so
that every ρ > 0 is paired with the ρ = 0 classifier of its seed (which does not depend on p: trained once, in the
first p's table, and written as ``baseline_rho0``; files written before this change repeat it in every table). --grid writes the first test image of
each class above one transition of it at each p in --p.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from ebmlab.api import load_run
from ebmlab.data import get_dataset
from ebmlab.metrics.classifier import get_classifier
from ebmlab.plots import save_image_grid
from ebmlab.semisup import augmentation_check, semisup_table


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v != ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--p", default="0,0.1,0.25,0.5")
    ap.add_argument("--semisup-p", default="")
    ap.add_argument("--rho", default="0.1,1")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--labels", type=int, default=1000)
    ap.add_argument("--out", required=True)
    ap.add_argument("--grid")
    a = ap.parse_args()
    t0 = time.perf_counter()
    cfg, method, step = load_run(a.run, "cpu")
    if cfg.method != "vgan_vcd":
        raise SystemExit(f"{a.run} is a {cfg.method} run; this benchmark needs a vgan_vcd run")
    ds = get_dataset(cfg.data)
    clf = get_classifier(ds)
    method.train(False)
    x_test = ds.test.float()
    y_test = torch.as_tensor(np.asarray(ds.arrays.test_y), dtype=torch.long)

    def augment(xb: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return method.augment(xb, generator=g).float()

    # semisup_table makes the check of its own p and the rho = 0 classifiers, which do not depend on p: both are
    # taken from the tables rather than computed again
    checks: dict[str, dict] = {}
    tables = {}
    base = None
    for p in floats(a.semisup_p):
        method.T.p = p
        rhos = tuple(floats(a.rho)) if base is not None else (0.0, *floats(a.rho))
        tables[str(p)] = semisup_table(ds, labels=a.labels, rhos=rhos, seeds=a.seeds, steps=a.steps, method=method)
        checks[str(p)] = tables[str(p)]["augmentation_check"]
        if base is None:
            base = tables[str(p)]["rows"][0]
        for r in tables[str(p)]["rows"]:
            if r["rho"] == 0:
                continue
            d = 100 * (np.array(r["errors"]) - np.array(base["errors"]))
            print(f"p={p:g} rho={r['rho']:g}: {100 * r['mean']:.2f} ± {100 * r['std']:.2f} %, paired change "
                  f"{d.mean():+.2f} ± {d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0:.2f} points "
                  f"(better in {int((d < 0).sum())} of {len(d)} seeds)", flush=True)
    for p in floats(a.p):
        if str(p) not in checks:
            method.T.p = p
            checks[str(p)] = augmentation_check(x_test, y_test, augment, clf)
        c = checks[str(p)]
        print(f"p={p:g}: class kept {100 * c['class_kept']:.2f} %, accuracy on T(x) {100 * c['accuracy_augmented']:.2f} % "
              f"(on x {100 * c['accuracy_real']:.2f} %), mean |T(x) - x| {c['mean_abs_change']:.3f}", flush=True)
    if a.grid:
        y_np = y_test.numpy()
        first = [int(np.flatnonzero(y_np == k)[0]) for k in range(int(ds.n_classes))]
        rows = [x_test[first]]
        for p in floats(a.p):
            method.T.p = p
            rows.append(augment(x_test[first], torch.Generator().manual_seed(0)))
        save_image_grid(torch.cat(rows), ds.spec.value_range or (0.0, 1.0), Path(a.grid), nrow=len(first),
                        scale=3)
    out = {"run": a.run, "method": cfg.method, "data": cfg.data, "step": step, "trained_drop_prob":
           cfg.method_config.drop_prob,
           "checks": checks, "tables": tables, "baseline_rho0": base, "seconds": time.perf_counter() - t0,
           "threads": torch.get_num_threads()}
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {a.out} ({out['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
