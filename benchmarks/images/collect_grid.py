"""The results table of a grid bench (``--grid``) from the runs that finished, for a bench stopped before its end:
the table ``ebmlab bench`` writes (``ebmlab.bench.write_report``: per-method rows with steps, train seconds and
network evaluations beside every result, and the per-setting table), the unfinished runs listed under it.
Re-running the same bench command later resumes the unfinished runs and writes the full table.

    python benchmarks/images/collect_grid.py benchmarks/images/stacked_fashion_600 --data stacked_fashion \
        --methods gan,vgan,... --seeds 3 --command "the bench command"
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path


def main() -> None:
    from ebmlab.bench import _recorded_seconds, grid_settings, load_grid, write_report
    from ebmlab.trainer import _cpu_seconds

    p = argparse.ArgumentParser()
    p.add_argument("bench_dir")
    p.add_argument("--data", required=True)
    p.add_argument("--methods", required=True)
    p.add_argument("--seeds", type=int, required=True)
    p.add_argument("--command", required=True)
    p.add_argument("--eval-samples", type=int, default=1000)
    a = p.parse_args()
    out = Path(a.bench_dir)
    grid = load_grid(out / "grid.toml")
    results, missing, n = [], [], 0
    for m in a.methods.split(","):
        for g, (label, _) in enumerate(grid_settings(grid, m)):
            for s in range(a.seeds):
                n += 1
                d = out / "runs" / f"{m}-{a.data}-g{g}-s{s}"
                if not (d / "summary.json").is_file():
                    missing.append(f"{m} {label} seed {s}" + (" (stopped before its end)" if d.is_dir() else
                                                              " (not started)"))
                    continue
                summ = json.loads((d / "summary.json").read_text())
                sessions = json.loads((d / "run.json").read_text())["sessions"]
                used = summ.get("budget") or {}
                results.append({"method": m, "data": a.data, "seed": s, "status": "ok", "metrics": summ["metrics"],
                                "seconds": _recorded_seconds(d), "steps_run": used.get("steps"),
                                "train_s": sum(x.get("train_seconds") or 0.0 for x in sessions),
                                "cpu_s": _cpu_seconds(sessions),
                                "evals": used.get("net_evals_total"), "setting": label})
    import torch

    # the bench's wall time so far: from the first run's start to the last finished run's summary
    starts = [f.stat().st_mtime for f in (out / "runs").glob("*/config.json")]
    ends = [f.stat().st_mtime for f in (out / "runs").glob("*/summary.json")]
    meta = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
            "torch": torch.__version__, "wall_s": (max(ends) - min(starts)) if ends else 0.0, "jobs": 2}
    write_report(results, out, command=a.command, meta=meta, suite="images", datasets=[a.data],
                 eval_samples=a.eval_samples, grid=grid, runs_in_grid=n, missing=missing)
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main()
