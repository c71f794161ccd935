"""EBM-BB's official toy trainer and ``ebmlab train bib`` side by side on grid25: same seed, same steps, scored by
the same ebmlab metrics; the step rates of the two measured while they run together (one torch thread each, one
process per core).

    python benchmarks/official/side_by_side.py --repo PATH/EBM-BB --deps DEPS --seeds 1,2,3 --iters 10000 \
        --out benchmarks/official [--variant NAME='k=v k=v' ...]

For each seed: the official run (``ebmbb_toy.py``) and ebmlab's run with the official recipe (lr 2e-4 for both
players, batch 200, the rest is BiB's defaults, which are EBM-BB's) start together. Then every ``--variant``
(ebmlab options added to that recipe) runs for every seed, two runs at a time. Writes results.json and
results.md (per seed, and mean ± standard error over seeds).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEYS = ("modes", "hq", "mode_kl", "w1", "nll", "nll_box", "density_status")


def ebmlab_cmd(seed: int, iters: int, out: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "ebmlab", "train", "bib", "--data", "grid25", "--steps", str(iters), "--seed",
            str(seed), "--out", str(out), "lr_g=2e-4", "lr_e=2e-4", "eval_every=0", "threads=1", *extra]


def official_cmd(a, seed: int, out: Path) -> list[str]:
    return [sys.executable, str(HERE / "ebmbb_toy.py"), "--repo", a.repo, "--deps", a.deps, "--iters", str(a.iters),
            "--seed", str(seed), "--out", str(out)]


def run_all(cmds: list[tuple[list[str], Path]], jobs: int = 2) -> None:
    """Run each (command, log file) pair, ``jobs`` at a time; stop at the first that fails, naming its log."""
    pending, running = list(cmds), []
    while pending or running:
        while pending and len(running) < jobs:
            cmd, log = pending.pop(0)
            log.parent.mkdir(parents=True, exist_ok=True)
            print("$", shlex.join(cmd), flush=True)
            running.append((subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT), cmd, log))
        time.sleep(1)
        for item in list(running):
            p, cmd, log = item
            if p.poll() is not None:
                running.remove(item)
                if p.returncode:
                    sys.exit(f"failed ({p.returncode}, log {log}): {shlex.join(cmd)}")


def read_ebmlab(run: Path) -> dict:
    """Metrics of the final evaluation; the step rate of the training loop (the last training log line: steps
    over the loop's time, checkpoints and logging included, the final evaluation not)."""
    s = json.loads((run / "summary.json").read_text())["metrics"]
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    rate = [x["steps_per_s"] for x in lines if x.get("kind") == "train" and "steps_per_s" in x][-1]
    return {"steps_per_s": rate, **{k: s.get(k) for k in KEYS}}


def read_official(out: Path) -> dict:
    o = json.loads((out / "official.json").read_text())
    return {"steps_per_s": o["steps_per_s"], **{k: o.get(k) for k in KEYS}}


def mean_se(v: list[float]) -> str:
    v = [x for x in v if x is not None and math.isfinite(x)]
    if not v:
        return "–"
    m = sum(v) / len(v)
    if len(v) < 2:
        return f"{m:.3g}"
    se = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1) / len(v))
    return f"{m:.3g} ± {se:.2g}"


def fmt(x) -> str:
    return "–" if x is None else (f"{x:.3g}" if isinstance(x, float) else str(x))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", required=True)
    ap.add_argument("--deps", required=True)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--iters", type=int, default=10000)
    ap.add_argument("--out", required=True)
    ap.add_argument("--variant", action="append", default=[], help="NAME='k=v k=v' (ebmlab options)")
    ap.add_argument("--pair-opts", default="", help="ebmlab options of the run paired with the official one")
    ap.add_argument("--report-only", action="store_true", help="rewrite the tables from the runs already there")
    ap.add_argument("--pairs-only", action="store_true",
                    help="re-run only the paired official/ebmlab runs (the variants' runs already there are reused)")
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    pair = shlex.split(a.pair_opts)
    variants = {"ebmlab (official recipe" + (f" + {a.pair_opts}" if pair else "") + ")": []}
    for v in a.variant:
        name, _, opts = v.partition("=")
        variants[f"ebmlab + {name}"] = shlex.split(opts)
    root = Path(a.out).resolve() / "runs"
    t0, load0 = time.time(), os.getloadavg()[0]
    if not a.report_only:
        for s in seeds:  # the official run and ebmlab's together: the speed ratio is measured over one period
            for d in (root / f"official_s{s}", root / f"ebmlab_s{s}"):  # ebmlab would resume a finished run
                if d.exists():
                    shutil.rmtree(d)
            run_all([(official_cmd(a, s, root / f"official_s{s}"), root / f"official_s{s}.log"),
                     (ebmlab_cmd(s, a.iters, root / f"ebmlab_s{s}", pair), root / f"ebmlab_s{s}.log")])
        extra = [(ebmlab_cmd(s, a.iters, root / f"{name.split('+ ')[-1]}_s{s}", opts),
                  root / f"{name.split('+ ')[-1]}_s{s}.log")
                 for name, opts in list(variants.items())[1:] for s in seeds]
        if not a.pairs_only:
            run_all(extra)
    wall = time.time() - t0

    rows: dict[str, list[dict]] = {"EBM-BB official": [read_official(root / f"official_s{s}") for s in seeds]}
    for name, opts in variants.items():
        tag = "ebmlab" if not opts else name.split("+ ")[-1]
        rows[name] = [read_ebmlab(root / f"{tag}_s{s}") for s in seeds]
    ratios = [e["steps_per_s"] / o["steps_per_s"] for e, o in zip(rows[next(iter(variants))],
                                                                      rows["EBM-BB official"])]
    res = {"seeds": seeds, "iters": a.iters, "variants": variants, "rows": rows, "speed_ratio": ratios,
           "wall_s": wall, "load_start": load0, "load_end": os.getloadavg()[0], "machine": platform.machine(),
           "cpus": os.cpu_count()}
    out = Path(a.out)
    if a.report_only:
        res = json.loads((out / "results.json").read_text()) | {"rows": rows, "speed_ratio": ratios}
    (out / "results.json").write_text(json.dumps(res, indent=1))
    L = ["# BiB on grid25: EBM-BB's official `train_toy.py` and ebmlab side by side", "",
         f"Command: `python benchmarks/official/side_by_side.py --repo EBM-BB --deps DEPS --seeds {a.seeds} --iters "
         f"{a.iters} --out benchmarks/official" + (f" --pair-opts {shlex.quote(a.pair_opts)}" if pair else "") + "".join(f" --variant {shlex.quote(v)}" for v in a.variant) + "`",
         "", f"Machine: {res['machine']}, {res['cpus']} cores; one torch thread per process, two processes at a time; "
         f"load {res['load_start']:.1f} at the start, {res['load_end']:.1f} at the end; {res['wall_s']:.0f} s in all.",
         "", "## Mean ± standard error over seeds", "",
         "| code | modes ↑ | HQ (%) ↑ | mode KL ↓ | W1 ↓ | steps/s |", "|---|---|---|---|---|---|"]
    for name, rs in rows.items():
        L.append(f"| {name} | {mean_se([r['modes'] for r in rs])} | {mean_se([100 * r['hq'] for r in rs])} | "
                 f"{mean_se([r['mode_kl'] for r in rs])} | {mean_se([r['w1'] for r in rs])} | "
                 f"{mean_se([r['steps_per_s'] for r in rs])} |")
    L += ["", "Step-rate ratio ebmlab / official, each pair measured over the same period: "
          + ", ".join(f"{r:.2f}×" for r in ratios) + f" (mean {sum(ratios) / len(ratios):.2f}×).", "",
          "## Per seed", "", "| code | seed | modes | HQ (%) | mode KL | W1 | NLL (nats) | density | steps/s |",
          "|---|---|---|---|---|---|---|---|---|"]
    for name, rs in rows.items():
        for s, r in zip(seeds, rs):
            nll = fmt(r["nll"]) if r["nll"] is not None else (f"box {fmt(r['nll_box'])}" if r["nll_box"] else "–")
            L.append(f"| {name} | {s} | {r['modes']} | {100 * r['hq']:.1f} | {fmt(r['mode_kl'])} | {fmt(r['w1'])} | "
                     f"{nll} | {r['density_status']} | {r['steps_per_s']:.1f} |")
    (out / "table.md").write_text("\n".join(L) + "\n")
    print("\n".join(L))


if __name__ == "__main__":
    main()
