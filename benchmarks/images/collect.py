"""Write a bench folder's results table from the runs that finished (those with a summary.json), for a bench that
was stopped before every run of its grid was done. The table is the one ``ebmlab bench images`` writes
(``ebmlab.bench.markdown``); the runs that did not finish are listed under it.

    python benchmarks/images/collect.py benchmarks/images/stacked_digits --command "ebmlab bench images ..." \
        --expect "gan vgan bib_mi_diff:2" --seeds 3

A run's wall time is the time from its config.json to its summary.json (training + final evaluation).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path


def main() -> None:
    from ebmlab.bench import aggregate, markdown
    from ebmlab.metrics import real_reference

    p = argparse.ArgumentParser()
    p.add_argument("bench_dir")
    p.add_argument("--command", required=True)
    p.add_argument("--expect", required=True, help="the methods of the grid, separated by spaces; METHOD:S1,S2 "
                                                    "restricts a method to those seeds")
    p.add_argument("--seeds", type=int, required=True)
    p.add_argument("--eval-samples", type=int, default=1000)
    p.add_argument("--wall", type=float, default=float("nan"), help="wall time of the bench so far (s)")
    a = p.parse_args()
    runs = Path(a.bench_dir) / "runs"
    results, missing, data_sets = [], [], set()
    for entry in a.expect.split():
        m, _, only = entry.partition(":")
        for s in ([int(v) for v in only.split(",")] if only else range(a.seeds)):
            cands = sorted(runs.glob(f"{m}-*-s{s}"))
            done = [c for c in cands if (c / "summary.json").is_file()]
            if not done:
                missing.append(f"{m} seed {s}" + (" (stopped before the end)" if cands else " (not started)"))
                continue
            d = done[0]
            summ = json.loads((d / "summary.json").read_text())
            secs = (d / "summary.json").stat().st_mtime - (d / "config.json").stat().st_mtime
            if secs <= 0:  # config.json rewritten by a later resume of the finished run: time unknown
                secs = None
            data_sets.add(summ["data"])
            results.append({"method": m, "data": summ["data"], "seed": s, "status": "ok", "metrics": summ["metrics"],
                            "seconds": secs})
    import torch

    meta = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
            "torch": torch.__version__, "wall_s": a.wall, "jobs": "2"}
    rows = aggregate(results)
    reference = {d: real_reference(d, a.eval_samples) for d in sorted(data_sets)}
    md = markdown(rows, reference, a.command, meta, "images")
    if missing:
        md += "\nRuns of the grid that did not finish in the time the machine had (not in the table): " + \
              ", ".join(missing) + ".\n"
    from ebmlab.atomic import json_safe

    Path(a.bench_dir, "results.md").write_text(md)
    Path(a.bench_dir, "results.json").write_text(json.dumps(json_safe({"command": a.command, "rows": rows,
                                                                        "reference_real_data": reference,
                                                                        "runs": results, "missing": missing}), indent=1))
    print(md)


if __name__ == "__main__":
    main()
