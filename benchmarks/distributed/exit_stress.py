"""How often a finished two-process run exits with an error: many short ``torchrun`` trainings, several at a time.

A two-process run whose process group outlived ``destroy_process_group`` (gloo's worker threads still running at
interpreter exit) aborted now and then after finishing (SIGABRT, "terminate called without an active exception";
``ebmlab.distributed.init`` says why and how it is avoided). Such a failure is rare and needs load to show, so
this script runs RUNS trainings PARALLEL at a time and counts the ones that did not exit 0, by kind.

    python benchmarks/distributed/exit_stress.py OUT [--runs 150] [--parallel 3] [--src PATH]

``--src`` runs another checkout's package (its ``src`` folder, e.g. a ``git worktree`` of an older commit) for a
before/after comparison on the same machine. Writes OUT/exit_stress.json; failing runs keep their directory and
stderr under OUT/failed/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ARGS = ["train", "gan", "--data", "ring8", "--steps", "10", "--no-progress", "ckpt_every=4", "batches=epochs",
        "batch_size=64", "eval_samples=200", "eval_density=false", "plots=false", "loggers=", "log_every=4"]


def one(i: int, work: Path, env: dict) -> dict:
    out = work / f"run{i}"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "ebmlab",
           *ARGS, "--out", str(out)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    kind = "ok" if res.returncode == 0 else (
        "abort at exit" if "terminate called without an active exception" in res.stderr else "other")
    if kind == "ok":
        shutil.rmtree(out, ignore_errors=True)
    else:
        out.mkdir(parents=True, exist_ok=True)
        (out / "stderr.txt").write_text(res.stderr)
    return {"run": i, "returncode": res.returncode, "kind": kind}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--runs", type=int, default=150)
    ap.add_argument("--parallel", type=int, default=3)
    ap.add_argument("--src", type=Path, default=Path(__file__).resolve().parents[2] / "src")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    src = args.src.resolve()
    if not (src / "ebmlab" / "__init__.py").is_file():
        raise SystemExit(f"error: {src} holds no ebmlab package (expected SRC/ebmlab/__init__.py)")
    env = {**os.environ, "PYTHONPATH": str(src)}
    where = subprocess.run([sys.executable, "-c", "import ebmlab; print(ebmlab.__file__)"], env=env,
                           capture_output=True, text=True).stdout.strip()
    if not where.startswith(str(src)):  # an installed package would shadow the one asked for
        raise SystemExit(f"error: with PYTHONPATH={src} Python imports ebmlab from {where or '(nowhere)'}")
    commit = subprocess.run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    load0, t0 = os.getloadavg(), time.time()
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.parallel) as pool:
        work = Path(tmp)
        results = list(pool.map(lambda i: one(i, work, env), range(args.runs)))
        failed = [r for r in results if r["kind"] != "ok"]
        for r in failed:
            shutil.copytree(work / f"run{r['run']}", args.out / "failed" / f"run{r['run']}", dirs_exist_ok=True)
    counts = {k: sum(r["kind"] == k for r in results) for k in ("ok", "abort at exit", "other")}
    record = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "src": str(src), "commit": commit,
              "runs": args.runs, "parallel": args.parallel, "counts": counts, "failed": failed,
              "wall_s": round(time.time() - t0, 1), "load_start": [round(x, 2) for x in load0],
              "load_end": [round(x, 2) for x in os.getloadavg()], "machine": f"{platform.machine()}, "
              f"{os.cpu_count()} cores, {platform.python_version()}", "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                         time.gmtime(t0))}
    (args.out / "exit_stress.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({k: record[k] for k in ("commit", "runs", "parallel", "counts", "wall_s")}))


if __name__ == "__main__":
    main()
