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
    p.add_argument("--brief", type=Path, help="also write the short table (mean ± std of the headline columns over "
                   "seeds, one row per setting, most modes first) to this markdown file")
    a = p.parse_args()
    out = Path(a.bench_dir)
    grid = load_grid(out / "grid.toml")
    results, missing, n = [], [], 0
    for m in a.methods.split(","):
        for g, (label, _) in enumerate(grid_settings(grid, m)):
            for s in range(a.seeds):
                n += 1
                d = out / "runs" / f"{m}-{a.data}-g{g}-s{s}"
                record = d / "run.json"
                last = json.loads(record.read_text())["sessions"][-1] if record.is_file() else {}
                if not (d / "summary.json").is_file() and last.get("status") == "failed":
                    # a bench run's session ends "failed" only by a divergence: any other error stops the bench
                    results.append({"method": m, "data": a.data, "seed": s, "status": "diverged", "setting": label,
                                    "error": f"non-finite by step {last.get('end_step')} (run.json)",
                                    "seconds": None})
                    continue
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
    if a.brief:
        a.brief.write_text(brief(results, out, a.data))
        print(a.brief.read_text())


# (column, metric key, scale, decimals) of the short table
BRIEF = [("modes ↑", "modes", 1, 0), ("modes in data ↑", "modes_in_data", 1, 0),
         ("confident ↑", "modes_confident", 1, 0), ("mode KL ↓", "mode_kl", 1, 2), ("clf FD ↓", "clf_fd", 1, 0),
         ("precision (%)", "clf_precision", 100, 1), ("recall (%)", "clf_recall", 100, 1)]


def _ms(vals: list, scale: float, digits: int) -> str:
    """Mean ± sample std (``ebmlab.bench._mean_std``) of the values present, scaled (one value: itself; none: "–")."""
    from ebmlab.bench import _mean_std

    vals = [scale * v for v in vals if v is not None]
    ms = _mean_std(vals)
    if ms is None:
        return "–"
    return f"{ms[0]:.{digits}f}" if len(vals) == 1 else f"{ms[0]:.{digits}f} ± {ms[1]:.{digits}f}"


def brief(results: list[dict], out: Path, data: str) -> str:
    """One row per (method, setting): seeds finished, steps, the headline metrics and the budget used."""
    rows: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        rows.setdefault((r["method"], r["setting"]), []).append(r)
    real = None
    for f in sorted((out / "runs").glob(f"*-{data}-*/summary.json")):
        real = json.loads(f.read_text()).get("real_vs_real")
        if real:
            break
    head = ["method", "setting", "seeds", "diverged", "steps"] + [c for c, *_ in BRIEF] + ["net evals", "train CPU s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    if real:
        lines.append("| real data | – | – | – | – | " + " | ".join(_ms([real.get(k)], sc, d) for _, k, sc, d in BRIEF)
                     + " | – | – |")
    def mean_modes(rs: list[dict]) -> float:
        ok = [r["metrics"]["modes"] for r in rs if r["status"] == "ok"]
        return sum(ok) / len(ok) if ok else -1.0

    for (m, label), every in sorted(rows.items(), key=lambda kv: -mean_modes(kv[1])):
        rs = [r for r in every if r["status"] == "ok"]
        cells = [m, label.split(":", 1)[-1], str(len(rs)), str(len(every) - len(rs)),
                 "/".join(sorted({str(r["steps_run"]) for r in rs}))]
        cells += [_ms([r["metrics"].get(k) for r in rs], sc, d) for _, k, sc, d in BRIEF]
        ev = [r["evals"] for r in rs if r["evals"]]
        cells.append(f"{ev[0]:.2g}" if ev and len(set(ev)) == 1 else _ms(ev, 1, 0))
        cpu = [r["cpu_s"] for r in rs if r["cpu_s"] is not None]
        cells.append(_ms(cpu, 1, 0) + (f" ({len(cpu)} of {len(rs)})" if 0 < len(cpu) < len(rs) else ""))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
