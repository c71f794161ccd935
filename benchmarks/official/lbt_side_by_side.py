"""LBT's official toy trainer and ``ebmlab train lbt`` side by side: same data, settings, seeds and steps, both scored
by ebmlab's 2D metrics at the same points of training.

    python benchmarks/official/lbt_side_by_side.py --repo PATH/Learning-By-Teaching --tf-python TFENV/bin/python \
        --data ring8 --seeds 0,1,2 --iters 2500 --snap-every 500 --batch 256 --out benchmarks/official/lbt_ring8 \
        [--variant NAME='k=v k=v' ...] [--jobs 2]

Runs, two at a time, one thread each: for every seed the official ``LBT_toy.py`` (through ``lbt_toy.py``, under a
Python with TensorFlow: see its docstring), ``ebmlab train lbt`` with its defaults (the released code's settings:
K = 5, n_est = 2, lr_est = 1e-4, lr_G = 1e-3, the same networks) and every ``--variant`` (ebmlab options added).
Data: ``ring8`` is the official ``-dataset ring -mog_std 0.01`` (radius 1), ``ring8_lbt`` its ``-mog_std 0.1``,
``grid25`` its ``-dataset grid -n_mixture 25 -mog_scale 2 -mog_std 0.05``; the batch is passed to both codes
(``-batch_size``/``-batch_size_est``; ``batch_size``/``est_batch``). Official samples (2500, from its trained
generator's variables) are scored by ``ebmlab.score_samples``, ebmlab's runs by their own evaluations every
``--snap-every`` steps (``metrics.jsonl``): the same functions on the same test split and sample count. The
official snapshots fall one step later (after s·k + 1 steps; ``lbt_toy.py`` says why).

Writes OUT/results.json (every run's metrics at every snapshot, its seconds) and OUT/table.md (mean ± std over
seeds per code and snapshot, the noise floor beside them). A finished run is reused when the command is run again.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

from side_by_side import run_all  # this directory is first on the path when the script runs

HERE = Path(__file__).resolve().parent
KEYS = ("modes", "hq", "mode_kl", "w1")
OFFICIAL_DATA = {"ring8": ["-dataset", "ring", "-mog_std", "0.01", "-mog_scale", "1.0"],
                 "ring8_lbt": ["-dataset", "ring", "-mog_std", "0.1", "-mog_scale", "1.0"],
                 "grid25": ["-dataset", "grid", "-n_mixture", "25", "-mog_scale", "2.0", "-mog_std", "0.05"]}


def official_metrics(out: Path, data: str) -> dict:
    import ebmlab

    rec = json.loads((out / "official.json").read_text())
    snaps = {}
    for s in rec["snapshots"]:
        if s["steps"] == 1:
            continue
        m = ebmlab.score_samples(str(out / s["file"]), data)["metrics"]
        snaps[s["steps"]] = {k: m[k] for k in KEYS}
    first = next(s for s in rec["snapshots"] if s["steps"] == 1)
    last = rec["snapshots"][-1]
    rate = (last["steps"] - 1) / (last["seconds"] - first["seconds"])  # the loop alone: graph building excluded
    return {"snapshots": snaps, "seconds": rec["seconds"], "loop_steps_per_s": round(rate, 2)}


def ebmlab_metrics(run: Path) -> dict:
    snaps, rate = {}, None
    for line in (run / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r.get("kind") == "eval":
            snaps[r["step"]] = {k: r[k] for k in KEYS}
    for rec in json.loads((run / "run.json").read_text()).get("sessions", []):
        rate = rec.get("steps_per_s", rate)
    return {"snapshots": snaps, "loop_steps_per_s": rate}


def mean_sd(v: list[float]) -> str:
    import statistics

    if not v:
        return "–"
    m = statistics.fmean(v)
    fmt = (lambda x: f"{x:.1f}") if abs(m) >= 1 else (lambda x: f"{x:.3f}")
    return f"{fmt(m)} ± {fmt(statistics.stdev(v))}" if len(v) > 1 else fmt(m)  # one seed: no spread to show


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", required=True)
    ap.add_argument("--tf-python", required=True, help="a Python with TensorFlow 2.15 etc. (lbt_toy.py's docstring)")
    ap.add_argument("--data", required=True, choices=sorted(OFFICIAL_DATA))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--iters", type=int, default=2500)
    ap.add_argument("--snap-every", type=int, default=500)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--variant", action="append", default=[], help="NAME='k=v k=v': ebmlab options added")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    out = Path(a.out).resolve()
    seeds = [int(s) for s in a.seeds.split(",")]
    variants = {"ebmlab": []} | {v.split("=", 1)[0]: v.split("=", 1)[1].split() for v in a.variant}
    cmds = []
    for seed in seeds:
        o = out / "runs" / f"official_s{seed}"
        if not (o / "official.json").is_file():
            cmds.append(([a.tf_python, str(HERE / "lbt_toy.py"), "--repo", a.repo, "--out", str(o), "--iters",
                          str(a.iters), "--snap-every", str(a.snap_every), "--seed", str(seed), "--",
                          *OFFICIAL_DATA[a.data], "-batch_size", str(a.batch), "-batch_size_est", str(a.batch)],
                         o.with_suffix(".log")))
        for name, opts in variants.items():
            r = out / "runs" / f"{name}_s{seed}"
            if not (r / "summary.json").is_file():
                cmds.append(([sys.executable, "-m", "ebmlab", "train", "lbt", "--data", a.data, "--steps",
                              str(a.iters), "--seed", str(seed), "--out", str(r), f"batch_size={a.batch}",
                              f"est_batch={a.batch}", f"eval_every={a.snap_every}", "threads=1",
                              "loggers=", *opts], r.with_suffix(".log")))
    t0 = time.time()
    run_all(cmds, a.jobs)
    wall = time.time() - t0
    import ebmlab

    machine = f"{platform.node()} {platform.machine()}, load {Path('/proc/loadavg').read_text()[:14]} at the end"
    results: dict = {"data": a.data, "iters": a.iters, "batch": a.batch, "seeds": seeds,
                     "variants": {k: " ".join(v) for k, v in variants.items()}, "wall_s": round(wall),
                     "machine": machine, "command": shlex.join(sys.argv), "runs": {}}
    old = out / "results.json"
    if not cmds and old.is_file():  # every run reused: keep the wall time and load of the invocation that ran them
        prev = json.loads(old.read_text())
        results.update({k: prev[k] for k in ("wall_s", "machine") if k in prev})
        results["wall_s"] = prev.get("wall_s", prev.get("wall_s_this_invocation"))
    for seed in seeds:
        results["runs"][f"official_s{seed}"] = official_metrics(out / "runs" / f"official_s{seed}", a.data)
        for name in variants:
            results["runs"][f"{name}_s{seed}"] = ebmlab_metrics(out / "runs" / f"{name}_s{seed}")
    floor = ebmlab.score_samples(str(out / "runs" / f"official_s{seeds[0]}" / f"samples_{a.iters + 1}.npy"),
                                 a.data)["noise_floor"]
    results["noise_floor"] = {k: floor.get(k) for k in KEYS} if isinstance(floor, dict) else floor
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")

    lines = [f"# LBT on {a.data}: the official code beside ebmlab, {a.iters} steps, batch {a.batch}, seeds "
             f"{a.seeds}", "", f"`{results['command']}`", "",
             "| code | steps | modes | HQ (%) | mode KL | W1 | loop steps/s |", "|---|---|---|---|---|---|---|"]
    nf = results["noise_floor"]
    if isinstance(nf, dict):
        lines.append(f"| *uniform noise on the box (floor)* | – | {nf['modes']:.1f} | {100 * nf['hq']:.2f} | "
                     f"{nf['mode_kl']:.3f} | {nf['w1']:.3f} | – |")
    for name in ["official", *variants]:
        runs = [results["runs"][f"{name}_s{s}"] for s in seeds]
        label = name if name != "ebmlab" else "ebmlab (defaults)"
        if name not in ("official", "ebmlab"):
            label = f"ebmlab {variants[name] and ' '.join(variants[name])}"
        for step in range(a.snap_every, a.iters + 1, a.snap_every):
            key = step + 1 if name == "official" else step
            vals = [r["snapshots"].get(key) or r["snapshots"].get(str(key)) for r in runs]
            vals = [v for v in vals if v]
            cells = [mean_sd([v[k] * (100 if k == "hq" else 1) for v in vals]) for k in KEYS]
            rate = mean_sd([r["loop_steps_per_s"] for r in runs if r["loop_steps_per_s"]]) \
                if step == a.iters else ""
            lines.append(f"| {label} | {key} | " + " | ".join(cells) + f" | {rate} |")
    lines += ["", f"Wall time of the invocation that ran the runs: {results['wall_s']} s; {results['machine']}."]
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
