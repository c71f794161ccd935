"""The BiB sandwich at every evaluation: lower ≤ exact NLL ≤ upper, from each run's metrics.jsonl.

Reads OUT/runs/*/metrics.jsonl of an ``ebmlab bench toy`` run made with periodic evaluation (``eval_every``),
and writes OUT/sandwich.md and OUT/sandwich.png. Every evaluation record of a BiB run holds the exact test NLL by
quadrature (``nll``; ``nll_box`` where exp(−E) is not normalisable on R², which no bound on the R² model can be
compared with, so such evaluations are counted apart) and the reported bounds ``nll_lower`` / ``nll_upper`` with
their Monte-Carlo standard errors. An evaluation holds when lower − 3 s.e. ≤ nll ≤ upper + 3 s.e.; the table
gives the count and the worst gap in units of the bound's s.e. (negative: inside the sandwich).

    python benchmarks/bib_sandwich.py benchmarks/bib_sandwich
"""

from __future__ import annotations

import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def evals(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("kind") == "eval" and isinstance(r.get("nll_lower"), (int, float))]


def gaps(r: dict) -> tuple[float, float]:
    """(lower − nll)/s.e. and (nll − upper)/s.e.: both ≤ 3 when the evaluation holds."""
    se_l, se_u = max(r["nll_lower_se"], 1e-12), max(r["nll_upper_se"], 1e-12)
    return (r["nll_lower"] - r["nll"]) / se_l, (r["nll"] - r["nll_upper"]) / se_u


def main(out: str) -> None:
    out = Path(out)
    res = json.loads((out / "results.json").read_text())
    runs: dict[tuple[str, str], list[tuple[int, list[dict]]]] = defaultdict(list)
    for r in res["runs"]:
        p = out / "runs" / f"{r['method']}-{r['data']}-s{r['seed']}" / "metrics.jsonl"
        if p.exists():
            runs[(r["data"], r["method"])].append((r["seed"], evals(p)))
    lines = ["# BiB: the sandwich at every evaluation", "", f"From `{res['command']}` ({out}/results.json), "
             f"checked by `python benchmarks/bib_sandwich.py {out}`.", "",
             "Per evaluation: lower − 3 s.e. ≤ exact NLL ≤ upper + 3 s.e. (upper = diffusion bound for (iv), χ² bound "
             "otherwise). `box`: evaluations where exp(−E) was not normalisable on R² (the exact NLL is then that of "
             "the model restricted to the data box, not comparable with bounds on the R² model). Worst gaps are in "
             "units of the bound's s.e.: ≤ 3 holds, negative lies inside.", "",
             "| data | method | runs | evaluations | box | hold | worst (lower − nll)/s.e. | worst (nll − upper)/s.e. | "
             "mean upper − lower (nats) |", "|---|---|---|---|---|---|---|---|---|"]
    total = held = 0
    for (data, method), rs in sorted(runs.items()):
        ev = [e for _, es in rs for e in es]
        norm = [e for e in ev if isinstance(e.get("nll"), (int, float)) and math.isfinite(e["nll"])]
        g = [gaps(e) for e in norm]
        hold = sum(a <= 3 and b <= 3 for a, b in g)
        total, held = total + len(norm), held + hold
        width = [e["nll_upper"] - e["nll_lower"] for e in norm]
        lines.append(f"| {data} | {method} | {len(rs)} | {len(ev)} | {len(ev) - len(norm)} | {hold}/{len(norm)} | "
                     + (f"{max(a for a, _ in g):.3g} | {max(b for _, b in g):.3g} | {sum(width) / len(width):.3g} |"
                        if g else "– | – | – |"))
    lines += ["", f"All pairings: {held}/{total} evaluations with a normalisable energy hold.", "",
              "![lower, exact and upper NLL against the step for every run](sandwich.png)"]
    (out / "sandwich.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    keys = sorted(runs)
    datas = sorted({d for d, _ in keys})
    methods = sorted({m for _, m in keys})
    fig, axes = plt.subplots(len(datas), len(methods), figsize=(3.2 * len(methods), 2.8 * len(datas)),
                             squeeze=False)
    for i, d in enumerate(datas):
        for j, m in enumerate(methods):
            ax = axes[i][j]
            for seed, es in runs.get((d, m), []):
                st = [e["step"] for e in es]
                ax.errorbar(st, [e["nll_lower"] for e in es], yerr=[e["nll_lower_se"] for e in es], fmt="o-",
                            ms=2, lw=0.8, color="tab:blue", label="lower" if seed == 0 else None)
                ax.errorbar(st, [e["nll_upper"] for e in es], yerr=[e["nll_upper_se"] for e in es], fmt="o-",
                            ms=2, lw=0.8, color="tab:red", label="upper" if seed == 0 else None)
                ax.plot(st, [e.get("nll", math.nan) for e in es], "s--", ms=2, lw=0.8, color="k",
                        label="exact NLL" if seed == 0 else None)
            ax.set_title(f"{m} · {d}", fontsize=8)
            ax.tick_params(labelsize=7)
            if i == 0 and j == 0:
                ax.legend(fontsize=6)
    fig.supxlabel("step", fontsize=8)
    fig.supylabel("test NLL (nats)", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "sandwich.png", dpi=110)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/bib_sandwich")
