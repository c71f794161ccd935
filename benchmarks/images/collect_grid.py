"""The results table of a grid bench (``--grid``) from the runs that finished, for a bench stopped before its end:
the table ``ebmlab bench`` writes (``ebmlab.bench.write_report``: per-method rows with steps, train seconds and
network evaluations beside every result, and the per-setting table), the unfinished runs listed under it.
Re-running the same bench command later resumes the unfinished runs and writes the full table.

    python benchmarks/images/collect_grid.py benchmarks/images/stacked_fashion_600 --data stacked_fashion \
        --methods gan,vgan,... --seeds 3 --command "the bench command"

Run directories are working files (``runs/`` is not kept with the results): a run whose directory is gone is taken
from the records that were kept of it — its entry in an earlier collection's ``results.json`` (``--earlier``), or its
``summary.json`` copied out of the run directory (``--summary``, repeatable; wall and CPU seconds are then unknown and
shown as missing). A run found in none of them is listed as missing, as before.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path


def main() -> None:
    from ebmlab.bench import grid_settings, load_grid, write_report
    from ebmlab.bench.run import _recorded_seconds
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
    p.add_argument("--earlier", type=Path, help="results.json of an earlier collection of this grid: the records of "
                   "runs whose directories are gone")
    p.add_argument("--summary", type=Path, action="append", default=[], help="a run's summary.json kept after its "
                   "directory was removed (its method, data and seed say which run of the grid it is)")
    a = p.parse_args()
    out = Path(a.bench_dir)
    grid = load_grid(out / "grid.toml")
    earlier = json.loads(a.earlier.read_text()) if a.earlier is not None else None
    kept = kept_records(grid, earlier, a.summary, a.data)
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
                if not (d / "summary.json").is_file() and (m, label, s) in kept:
                    results.append(kept[(m, label, s)])
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
    wall = (max(ends) - min(starts)) if ends else 0.0
    if earlier is not None:  # the earlier collection's span, and this one's runs beside it
        wall += earlier["meta"].get("wall_s") or 0.0
    meta = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
            "torch": torch.__version__, "wall_s": wall, "jobs": 2}
    # the real-data row of the earlier collection: recomputed now it would come from today's classifier, whose
    # features differ from those of a classifier trained on another machine
    reference = earlier["reference_real_data"] if earlier is not None else None
    write_report(results, out, command=a.command, meta=meta, suite="images", datasets=[a.data],
                 eval_samples=a.eval_samples, grid=grid, runs_in_grid=n, missing=missing, reference=reference)
    print((out / "results.md").read_text())
    if a.brief:
        a.brief.write_text(brief(results, out, a.data, (reference or {}).get(a.data)))
        print(a.brief.read_text())


def kept_records(grid: dict, earlier: dict | None, summaries: list[Path],
                 data: str) -> dict[tuple[str, str, int], dict]:
    """(method, setting label, seed) → the kept record of a run whose directory may be gone (module docstring); a
    kept summary is placed at the grid's setting of its method that sets its number of steps (or sets none)."""
    from ebmlab.bench import grid_settings

    kept: dict[tuple[str, str, int], dict] = {}
    if earlier is not None:
        for r in earlier["runs"]:
            if r.get("data") == data:
                kept[(r["method"], r["setting"], int(r["seed"]))] = r
    for f in summaries:
        summ = json.loads(f.read_text())
        if summ.get("data") != data:
            raise SystemExit(f"{f}: a summary of {summ.get('data')!r}, not of {data!r}")
        steps = (summ.get("budget") or {}).get("steps")
        label = next((lab for lab, over in grid_settings(grid, summ["method"])
                      if over.get("steps") in (None, steps)), None)
        if label is None:
            raise SystemExit(f"{f}: no setting of {summ['method']} in the grid trains {steps} steps")
        kept[(summ["method"], label, int(summ["seed"]))] = {
            "method": summ["method"], "data": data, "seed": int(summ["seed"]), "status": "ok",
            "metrics": summ["metrics"], "seconds": None, "steps_run": steps, "train_s": None, "cpu_s": None,
            "evals": (summ.get("budget") or {}).get("net_evals_total"), "setting": label, "kept_from": f.name}
    return kept


# (column, metric key, scale, decimals) of the short table
BRIEF = [("modes ↑", "modes", 1, 0), ("modes in data ↑", "modes_in_data", 1, 0),
         ("confident ↑", "modes_confident", 1, 0), ("mode KL ↓", "mode_kl", 1, 2), ("clf FD ↓", "clf_fd", 1, 0),
         ("precision (%)", "clf_precision", 100, 1), ("recall (%)", "clf_recall", 100, 1)]


def _ms(vals: list, scale: float, digits: int) -> str:
    """Mean ± sample std (``ebmlab.bench.tables._mean_std``) of the values present, scaled (one value: itself; none: "–")."""
    from ebmlab.bench.tables import _mean_std

    vals = [scale * v for v in vals if v is not None]
    ms = _mean_std(vals)
    if ms is None:
        return "–"
    return f"{ms[0]:.{digits}f}" if len(vals) == 1 else f"{ms[0]:.{digits}f} ± {ms[1]:.{digits}f}"


def brief(results: list[dict], out: Path, data: str, real: dict | None = None) -> str:
    """One row per (method, setting): seeds finished, steps, the headline metrics and the budget used (``real``:
    the real-data row; else a run's own)."""
    rows: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        rows.setdefault((r["method"], r["setting"]), []).append(r)
    for f in sorted((out / "runs").glob(f"*-{data}-*/summary.json")) if real is None else []:
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
        other = sum(bool(real) and r["metrics"].get("clf_sha256") not in (None, real.get("clf_sha256")) for r in rs)
        cells = [m, label.split(":", 1)[-1], str(len(rs)) + (f" ({other}†)" if other else ""),
                 str(len(every) - len(rs)),
                 "/".join(sorted({str(r["steps_run"]) for r in rs}))]
        cells += [_ms([r["metrics"].get(k) for r in rs], sc, d) for _, k, sc, d in BRIEF]
        ev = [r["evals"] for r in rs if r["evals"]]
        cells.append(f"{ev[0]:.2g}" if ev and len(set(ev)) == 1 else _ms(ev, 1, 0))
        cpu = [r["cpu_s"] for r in rs if r["cpu_s"] is not None]
        cells.append(_ms(cpu, 1, 0) + (f" ({len(cpu)} of {len(rs)})" if 0 < len(cpu) < len(rs) else ""))
        lines.append("| " + " | ".join(cells) + " |")
    if any("†" in ln for ln in lines):
        lines += ["", "† seeds scored by another domain classifier than the real-data row's "
                  f"({str(real.get('clf_sha256'))[:8]}…): their features, precision/recall and mode labels come "
                  "from another network (results.md lists which)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
