"""Success fractions and distributions of the EBGAN stability grid (reads results.json, appends to results.md).

    python benchmarks/ebgan_grid/summarise.py benchmarks/ebgan_grid

A run succeeds if it captures ≥ 7 of the 8 ring8 modes (≥ 23 of the 25 grid25 modes) with ≥ 50 % of its
samples high quality (within 3σ of a mode); a diverged run fails. Running it again replaces its section.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import Counter, defaultdict
from pathlib import Path

MIN_MODES = {"ring8": 7, "grid25": 23}
MIN_HQ = 0.5
MARKER = "\n<!-- summarise.py -->\n"


def success(run: dict) -> bool:
    m = run.get("metrics") or {}
    return run["status"] == "ok" and m.get("modes", 0) >= MIN_MODES[run["data"]] and m.get("hq", 0.0) >= MIN_HQ


def quartiles(vals: list[float]) -> str:
    if not vals:
        return "–"
    q = statistics.quantiles(vals, n=4, method="inclusive") if len(vals) > 1 else [vals[0]] * 3
    return f"{min(vals):.3g} / {q[0]:.3g} / {q[1]:.3g} / {q[2]:.3g} / {max(vals):.3g}"


def summarise(res: dict) -> str:
    runs = res["runs"]
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in runs:
        groups[(r["data"], r["method"])].append(r)
    lines = [MARKER, "## Success fractions (summarise.py)\n",
             f"Success: ≥ {MIN_MODES['ring8']}/8 modes (ring8) or ≥ {MIN_MODES['grid25']}/25 modes (grid25) with "
             f"≥ {MIN_HQ:.0%} high-quality samples; diverged runs count as failures. `modes only`: the mode criterion "
             "alone; `hq ≥ 50 %`: the quality criterion alone. `settings ok`: settings whose 3 seeds all succeed.\n",
             "| data | method | runs | success | modes only | hq ≥ 50 % | settings ok | diverged | "
             "hq (%) min / q1 / median / q3 / max | modes: count of runs |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for (data, method), rs in sorted(groups.items()):
        n = len(rs)
        ok = [r for r in rs if r["status"] == "ok"]
        succ = sum(success(r) for r in rs)
        modes_only = sum(r["status"] == "ok" and r["metrics"]["modes"] >= MIN_MODES[data] for r in rs)
        hq_only = sum(r["status"] == "ok" and r["metrics"]["hq"] >= MIN_HQ for r in rs)
        by_setting: dict[str, list[dict]] = defaultdict(list)
        for r in rs:
            by_setting[r.get("setting", "")].append(r)
        settings_ok = sum(all(success(r) for r in v) for v in by_setting.values())
        hq = [100 * r["metrics"]["hq"] for r in ok]
        hist = Counter(r["metrics"]["modes"] for r in ok)
        hist_s = ", ".join(f"{k}: {hist[k]}" for k in sorted(hist, reverse=True))
        lines.append(f"| {data} | {method} | {n} | {succ}/{n} = {succ / n:.0%} | {modes_only}/{n} | {hq_only}/{n} | "
                     f"{settings_ok}/{len(by_setting)} | {n - len(ok)} | {quartiles(hq)} | {hist_s} |")
    # sensitivity: mean modes and success per value of each grid axis
    lines += ["\n### By grid axis (mean modes captured; success count)\n",
              "| data | method | axis value | runs | mean modes | mean hq (%) | success |", "|---|---|---|---|---|---|---|"]
    for (data, method), rs in sorted(groups.items()):
        axes: dict[str, list[dict]] = defaultdict(list)
        for r in rs:
            for part in r.get("setting", "").split(" "):
                if part and not part.startswith("tau_search"):
                    axes[part].append(r)
        for value, vs in sorted(axes.items()):
            ok = [r for r in vs if r["status"] == "ok"]
            mm = statistics.fmean(r["metrics"]["modes"] for r in ok) if ok else float("nan")
            mh = statistics.fmean(100 * r["metrics"]["hq"] for r in ok) if ok else float("nan")
            lines.append(f"| {data} | {method} | {value} | {len(vs)} | {mm:.3g} | {mh:.3g} | "
                         f"{sum(success(r) for r in vs)}/{len(vs)} |")
    return "\n".join(lines) + "\n"


def plot(res: dict, path: Path) -> None:
    """Every run as a point (modes captured, % HQ) per data set, one colour per method; the success region
    shaded. Modes are jittered horizontally so that runs with the same count stay visible."""
    import random

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datas = sorted({r["data"] for r in res["runs"]})
    methods = sorted({r["method"] for r in res["runs"]})
    rng = random.Random(0)
    fig, axes = plt.subplots(1, len(datas), figsize=(5 * len(datas), 4), squeeze=False)
    for ax, data in zip(axes[0], datas):
        n_modes = 8 if data == "ring8" else 25
        ax.axvspan(MIN_MODES[data] - 0.5, n_modes + 0.5, ymin=MIN_HQ, color="tab:green", alpha=0.12,
                   label="success region")
        for i, m in enumerate(methods):
            rs = [r for r in res["runs"] if r["data"] == data and r["method"] == m and r["status"] == "ok"]
            ax.scatter([r["metrics"]["modes"] + (i - 1) * 0.2 + rng.uniform(-0.07, 0.07) for r in rs],
                       [100 * r["metrics"]["hq"] for r in rs], s=10, alpha=0.7, label=m)
        ax.set_xlim(-0.5, n_modes + 0.5)
        ax.set_ylim(0, 100)
        ax.set_xlabel("modes captured")
        ax.set_ylabel("high-quality samples (%)")
        ax.set_title(f"{data}: every run of the grid", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(out: str) -> None:
    out_dir = Path(out)
    res = json.loads((out_dir / "results.json").read_text())
    plot(res, out_dir / "runs_scatter.png")
    md_path = out_dir / "results.md"
    md = md_path.read_text().split(MARKER)[0]
    md_path.write_text(md.rstrip("\n") + "\n" + summarise(res))
    print(summarise(res))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/ebgan_grid")
