"""LBT's (or LBT-GAN's) step rate on one CPU thread: the released TensorFlow code, ebmlab eager and ebmlab
compiled (``compile=on``), run one after another in one schedule, at several batches.

    python benchmarks/peers/lbt_speed.py --repo PATH/Learning-By-Teaching --tf-python TFENV/bin/python \
        [--method lbt_gan] --batches 8,256,512 --iters 600 --out benchmarks/peers/lbt_speed

For each batch: first a cold compile (``compile=on``, 3 steps, an empty inductor cache: what a first run pays);
then, ``--rounds`` times, the official ``LBT_toy.py`` (``LBT-GAN_toy.py`` for ``--method lbt_gan``; through ``../official/lbt_toy.py``, its text unchanged, one
intra- and one inter-op thread), ``ebmlab train lbt`` eagerly and ``ebmlab train lbt compile=on`` (the cache
warm), each alone on the machine, ``--iters`` steps on ring8 at the released settings (K = 5, n_est = 2, the
released networks, ``batch_size = est_batch = B``), one thread, no evaluation inside the loop.

Rates: the official loop's steps after its first snapshot over their seconds (graph building excluded); ebmlab's
``steps_per_s`` of its session record (the loop, checkpoints included) and, compiled, the steps over the loop's
seconds less the first compiled call's (``compile.seconds``: the compile, one step included). Ratios are official
time / ebmlab time (above 1: ebmlab faster). The compiled run and the eager run have the same seed: their logged
losses are compared (float32 rounding only; differences grow over training as rounding does).
Writes OUT/results.json and OUT/table.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OFFICIAL = HERE.parent / "official" / "lbt_toy.py"
RING8 = ["-dataset", "ring", "-mog_std", "0.01", "-mog_scale", "1.0"]
SCRIPTS = {"lbt": "LBT_toy.py", "lbt_gan": "LBT-GAN_toy.py"}


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def run(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> float:
    t0 = time.time()
    with log.open("w") as f:
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    if rc:
        sys.exit(f"failed ({rc}): {shlex.join(cmd)}; see {log}")
    return time.time() - t0


def official(a, b: int, out: Path) -> dict:
    o = out / f"official_b{b}"
    run([a.tf_python, str(OFFICIAL), "--repo", a.repo, "--script", SCRIPTS[a.method], "--out", str(o), "--iters",
         str(a.iters), "--snap-every", str(a.iters), "--seed", "0", "--samples", "10", "--", *RING8, "-batch_size",
         str(b), "-batch_size_est", str(b)], o.with_suffix(".log"))
    snaps = json.loads((o / "official.json").read_text())["snapshots"]
    first, last = snaps[0], snaps[-1]
    return {"steps_per_s": (last["steps"] - first["steps"]) / (last["seconds"] - first["seconds"])}


def ebmlab(a, b: int, out: Path, name: str, opts: list[str], steps: int, env: dict[str, str] | None = None) -> dict:
    r = out / name
    cmd = [sys.executable, "-m", "ebmlab", "train", a.method, "--data", "ring8", "--steps", str(steps), "--seed", "0",
           "--out", str(r), f"batch_size={b}", f"est_batch={b}", "eval_every=0", "threads=1", "loggers=",
           "plots=false", "log_every=10", *opts]
    wall = run(cmd, r.with_suffix(".log"), env)
    sess = json.loads((r / "run.json").read_text())["sessions"][-1]
    comp = sess.get("compile", {}).get("seconds")
    rec = {"steps_per_s": sess["steps_per_s"], "wall_s": round(wall, 1), "compile_s": comp}
    if comp is not None:  # the loop without the first compiled call (the compile, with one step)
        rec["steps_per_s_excl_compile"] = (steps - 1) / (sess["train_seconds"] - comp)
    logged = [json.loads(line) for line in (r / "metrics.jsonl").read_text().splitlines() if line.strip()]
    rec["loss_g"] = {m["step"]: m["loss_g"] for m in logged if m.get("kind") == "train"}
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", required=True)
    ap.add_argument("--tf-python", required=True)
    ap.add_argument("--method", default="lbt", choices=sorted(SCRIPTS))
    ap.add_argument("--batches", default="8,256,512")
    ap.add_argument("--iters", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    out = Path(a.out).resolve()
    work = Path(tempfile.mkdtemp(prefix="lbt-speed-"))
    cache = work / "inductor"
    res: dict = {"command": shlex.join(sys.argv), "machine": f"{platform.node()} {platform.machine()}, "
                 f"{os.cpu_count()} cores", "method": a.method, "iters": a.iters, "batches": {}}
    t0 = time.time()
    for b in [int(x) for x in a.batches.split(",")]:
        env = {"TORCHINDUCTOR_CACHE_DIR": str(cache / str(b))}
        row: dict = {"load_before": load()}
        row["cold"] = ebmlab(a, b, work, f"cold_b{b}", ["compile=on"], 3, env)
        for k in range(a.rounds):
            row[f"official_{k}"] = official(a, b, work)
            row[f"eager_{k}"] = ebmlab(a, b, work, f"eager_b{b}_{k}", [], a.iters)
            row[f"compiled_{k}"] = ebmlab(a, b, work, f"compiled_b{b}_{k}", ["compile=on"], a.iters, env)
        row["load_after"] = load()
        res["batches"][b] = row
        print(b, json.dumps({k: v for k, v in row.items() if not isinstance(v, dict)}), flush=True)
    res["wall_s"] = round(time.time() - t0)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    (out / "table.md").write_text(table(res, a.rounds) + "\n")
    print(table(res, a.rounds))


def table(res: dict, rounds: int) -> str:
    import statistics as st

    lines = [f"# {res.get('method', 'lbt')}: the released code, ebmlab eager, ebmlab compiled", "", f"`{res['command']}`", "",
             "| batch | official steps/s | ebmlab eager | ebmlab compiled (excl. compile) "
             "| eager / official | compiled / official | cold compile (s) | warm compile (s) | loss_g rel. diff. "
             "(step 10, last) | load before, after |", "|---|---|---|---|---|---|---|---|---|---|"]
    for b, row in res["batches"].items():
        off = st.median(row[f"official_{k}"]["steps_per_s"] for k in range(rounds))
        eag = st.median(row[f"eager_{k}"]["steps_per_s"] for k in range(rounds))
        com = st.median(row[f"compiled_{k}"]["steps_per_s_excl_compile"] for k in range(rounds))
        warm = st.median(row[f"compiled_{k}"]["compile_s"] for k in range(rounds))
        le, lc = row["eager_0"]["loss_g"], row["compiled_0"]["loss_g"]
        last = max(le, key=int)
        diffs = [abs(lc[s] - le[s]) / abs(le[s]) for s in (next(iter(le)), last)]
        lines.append(f"| {b} | {off:.1f} | {eag:.1f} | {com:.1f} | {eag / off:.2f} | **{com / off:.2f}** | "
                     f"{row['cold']['compile_s']:.0f} | {warm:.1f} | {diffs[0]:.1e}, {diffs[1]:.1e} | "
                     f"{row['load_before']}, {row['load_after']} |")
    lines += ["", f"Wall time {res['wall_s']} s; {res['machine']}."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
