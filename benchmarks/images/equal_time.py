"""Every method at the same compute budget: each gets the number of steps it runs in ``--budget`` seconds on one
thread, measured in this one process, then the grid runs through ``ebmlab bench images``.

    python benchmarks/images/equal_time.py --data fashion --budget 240 --out benchmarks/images/fashion_all

Why: step costs differ about 20× between methods on 28×28 images (BiB's Jacobian bounds run LOBPCG through the
generator), so a common step count either starves the cheap methods or cannot be afforded for the expensive ones.
1. Each method (its image preset, batch 64) is timed for ≥ ``--seconds`` per round over ``--rounds`` rounds, the
   methods interleaved within a round so that all see the same machine load; the median rate is kept.
   A method whose schedule has phases of different cost (LBT-GAN's plain-GAN warm-up, ``warmup_steps``) has each
   phase timed (``phases`` in rates.json) and the steps are those its schedule runs in the budget.
2. steps = max(``--min-steps``, budget × rate) per method (phased: summed over the phases), written to OUT/grid.toml as ``"METHOD:steps"`` axes;
   the rates to OUT/rates.json (a re-run reuses them, so the runs resume with the same step counts).
3. ``ebmlab bench images --grid OUT/grid.toml --seeds SEEDS --out OUT`` plus the given key=value options.

``--variants "gan:n_critic=5"`` adds a setting of a method (its own rate, its own steps) beside the method's
default: the grid then gives that method an axis of points, ``"gan:budget" = [{steps = A}, {n_critic = 5, steps
= B}]``, so each setting gets the steps it runs in the budget. ``--set "lbt:lr_est=3e-4"`` changes a method's own
setting the same way (timed with it, run with it).

``--remeasure bib --reference gan`` times a method again after its preset changed (its runs must be deleted: a run
keeps the steps it started with) beside a method whose rate is recorded; the new rate is scaled by the reference's
recorded/new ratio, so that it is comparable with rates measured earlier under another load (a speed is only
compared as a ratio measured in one run). ``rates.json`` keeps the raw rates, the scale and the load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch


def _parse_variant(v: str) -> tuple[str, dict]:
    """"gan:n_critic=5,lr_d=1e-3" → ("gan", {"n_critic": 5, "lr_d": 0.001}) (values parsed as TOML)."""
    import tomllib

    m, _, opts = v.partition(":")
    return m, {k: tomllib.loads(f"v = {x}")["v"] for k, x in (kv.split("=", 1) for kv in opts.split(","))}


def phases_of(meth) -> list[int]:
    """The first step of each phase of a method's schedule whose steps cost differently: LBT-GAN's plain-GAN warm-up
    (``warmup_steps``), then the teaching steps (the estimator and the unrolled ELBO switch on: ~10× the cost)."""
    w = int(getattr(meth.config, "warmup_steps", 0) or 0)
    return [1, w + 1] if w > 0 else [1]


def steps_in(budget: float, phases: list[dict]) -> int:
    """Steps a schedule runs in ``budget`` seconds: phases [{"from_step": s, "rate": steps/s}, …], in order."""
    t, n = budget, 0
    for i, ph in enumerate(phases):
        nxt = phases[i + 1]["from_step"] - 1 if i + 1 < len(phases) else None  # the last step of this phase
        can = t * ph["rate"]
        if nxt is None or n + can <= nxt:
            return n + int(can)
        t -= (nxt - n) / ph["rate"]
        n = nxt
    return n


def rates(methods: list[str], data: str, rounds: int, seconds: float) -> dict[str, list[dict]]:
    """{method: [{"from_step", "rate"}, …]}: each phase of each method timed over ``rounds`` rounds of ≥ ``seconds``,
    all interleaved within a round; the median per phase."""
    from ebmlab.data import get_dataset
    from ebmlab.data.batches import make_batches
    from ebmlab.trainer import build_method
    from ebmlab.config import resolve_config

    torch.set_num_threads(1)
    ds = get_dataset(data)
    xs = list(make_batches(ds, "auto", 64, 0).stream(0, 8))
    timed = {}  # (method, phase's first step) -> [method object, next step index]
    for m in methods:
        name, opts = _parse_variant(m) if ":" in m else (m, {})
        meth = build_method(resolve_config(name, data, overrides={"batch_size": 64, **opts}), torch.device("cpu"))
        for first in phases_of(meth):
            # the first step of a phase (KALE's energy burst, caches, a phase's new optimizer state) is not typical
            meth.train_step(xs[0], first)
            timed[(m, first)] = [meth, first + 1]
    out = {k: [] for k in timed}
    for r in range(rounds):
        for k, slot in timed.items():
            meth, n, t0 = slot[0], 0, time.perf_counter()
            while n < 2 or time.perf_counter() - t0 < seconds:
                meth.train_step(xs[n % 8], slot[1])
                slot[1] += 1
                n += 1
            out[k].append(n / (time.perf_counter() - t0))
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{m}{f' (from step {f})' if f > 1 else ''} {v[-1]:.2f}"
                                                      for (m, f), v in out.items()), flush=True)
    return {m: [{"from_step": f, "rate": statistics.median(v)} for (mm, f), v in out.items() if mm == m]
            for m in methods}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="fashion")
    p.add_argument("--methods", default="gan,vgan,vgan_vcd,kale,bib,bib_jac_diff,bib_mi_gp,bib_mi_diff,bib_onesided,"
                                         "ebgan,ebgan_pt,vae,lbt,lbt_gan")
    p.add_argument("--budget", type=float, default=240.0, help="seconds of training per method (one thread)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--min-steps", type=int, default=10)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--set", default="", help="options of a method's default setting: METHOD:opt=value[,opt=value]; "
                                             "several separated by ';'")
    p.add_argument("--variants", default="", help="extra settings of a method, each with its own rate and steps: "
                                                  "METHOD:opt=value[,opt=value]; several separated by ';'")
    p.add_argument("--remeasure", default="", help="methods whose recorded rate is measured again (their runs must "
                                                   "be deleted by hand: a run keeps the steps it was started with)")
    p.add_argument("--reference", default="", help="with --remeasure: a recorded method timed again beside them; the "
                                                   "new rates are scaled by its recorded/new rate ratio, so they stay "
                                                   "comparable with the rates measured earlier under another load")
    p.add_argument("--no-run", action="store_true", help="measure (or re-measure) and write grid.toml only")
    p.add_argument("--out", required=True)
    p.add_argument("overrides", nargs="*")
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    methods = a.methods.split(",")
    variants = [v for v in a.variants.split(";") if v]
    for v in variants:
        if _parse_variant(v)[0] not in methods:
            raise SystemExit(f"--variants {v}: {v.split(':')[0]} is not among --methods")
    fixed = {m: {} for m in methods}
    for v in (v for v in a.set.split(";") if v):
        m, opts = _parse_variant(v)
        if m not in methods:
            raise SystemExit(f"--set {v}: {m} is not among --methods")
        fixed[m].update(opts)
    timed = [m + ":" + ",".join(f"{k}={json.dumps(x)}" for k, x in fixed[m].items()) if fixed[m] else m
             for m in methods] + variants
    rfile = out / "rates.json"
    saved = json.loads(rfile.read_text()) if rfile.is_file() else {}
    if saved.get("methods") != timed or saved.get("data") != a.data:
        load = os.getloadavg()[0]
        ph = rates(timed, a.data, a.rounds, a.seconds)
        saved = {"data": a.data, "methods": timed, "rates": {m: p[0]["rate"] for m, p in ph.items()},
                 "phases": {m: p for m, p in ph.items() if len(p) > 1}, "load_during": [load, os.getloadavg()[0]],
                 "rounds": a.rounds, "seconds_per_round": a.seconds}
        rfile.write_text(json.dumps(saved, indent=1))
    again = [m for m in a.remeasure.split(",") if m]
    if again:
        if a.reference and a.reference not in saved["rates"]:
            raise SystemExit(f"--reference {a.reference}: no recorded rate (recorded: {', '.join(saved['rates'])})")
        load = os.getloadavg()[0]
        new = rates(again + ([a.reference] if a.reference else []), a.data, a.rounds, a.seconds)
        if a.reference and len(new[a.reference]) > 1:
            raise SystemExit(f"--reference {a.reference}: a method with one phase (its steps all cost the same)")
        scale = saved["rates"][a.reference] / new.pop(a.reference)[0]["rate"] if a.reference else 1.0
        scaled = {m: [{**p, "rate": p["rate"] * scale} for p in ph] for m, ph in new.items()}
        saved["rates"].update({m: ph[0]["rate"] for m, ph in scaled.items()})
        phased = saved.setdefault("phases", {})
        for m, ph in scaled.items():
            if len(ph) > 1:
                phased[m] = ph
            else:
                phased.pop(m, None)
        saved.setdefault("remeasured", []).append({"methods": again, "load": [load, os.getloadavg()[0]],
                                                   "reference": a.reference or None, "scale": scale,
                                                   "raw_rates": new})
        rfile.write_text(json.dumps(saved, indent=1))
    phased = saved.get("phases", {})
    steps = {m: max(a.min_steps, steps_in(a.budget, phased.get(m, [{"from_step": 1, "rate": v}])))
             for m, v in saved["rates"].items()}
    lines = []
    for m, t in zip(methods, timed):
        mine = [t] + [v for v in variants if _parse_variant(v)[0] == m]
        if mine == [m]:
            lines.append(f'"{m}:steps" = [{steps[m]}]\n')
            continue
        pts = ["{" + ", ".join([*(f"{k} = {json.dumps(x)}" for k, x in (_parse_variant(v)[1] if ":" in v else {}).items()),
                                f"steps = {steps[v]}"]) + "}" for v in mine]
        lines.append(f'"{m}:budget" = [{", ".join(pts)}]\n')
    (out / "grid.toml").write_text("".join(lines))
    cmd = [sys.executable, "-m", "ebmlab.cli", "bench", "images", "--methods", ",".join(methods), "--data", a.data,
           "--seeds", str(a.seeds), "--jobs", str(a.jobs), "--out", str(out), "--grid", str(out / "grid.toml"), *a.overrides]
    print("steps per method:", steps, "\n" + " ".join(cmd), flush=True)
    if not a.no_run:
        raise SystemExit(subprocess.call(cmd))


if __name__ == "__main__":
    main()
