"""The BiB bound columns of a toy benchmark: reads OUT/results.json (``ebmlab bench toy``) and writes OUT/bounds.md.

Per (data, method), over the runs that finished: exact NLL (or the box NLL where the energy is not normalisable),
the reported lower and upper bounds (mean ± std over seeds), the number of runs whose sandwich
lower − 3 s.e. ≤ NLL ≤ upper + 3 s.e. holds (only runs with a normalisable energy count), the χ² upper bound
where the pairing's own upper bound is the diffusion one, the mean fold fraction of the Jacobian generators, and
two instability counts: runs stopped by a non-finite loss (``diverged``) and runs whose exact KL(p_data ‖ p_θ)
ended above 10 nats (``KL>10``; an energy that ran away without producing a NaN).

    python benchmarks/bib_bounds_table.py benchmarks/bib
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path


def fmt(vals: list[float]) -> str:
    vals = [v for v in vals if v is not None and math.isfinite(v)]
    if not vals:
        return "–"
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{statistics.fmean(vals):.3g} ± {sd:.2g}"


def main(out: str) -> None:
    res = json.loads((Path(out) / "results.json").read_text())
    keys = sorted({(r["data"], r["method"]) for r in res["runs"]})
    lines = ["# BiB bounds on the exact NLL", "", f"From `{res['command']}` ({out}/results.json).", "",
             "nll: exact test NLL by quadrature (`nll_box*`: energy not normalisable, model restricted to the box). "
             "lower/upper: `nll_lower`/`nll_upper` (upper = diffusion bound for (iv), χ² bound otherwise); "
             "sandwich: runs with lower − 3 s.e. ≤ nll ≤ upper + 3 s.e. among runs with a normalisable energy; "
             "KL>10: runs whose exact KL(p_data ‖ p_θ) (or box KL) ended above 10 nats.", "",
             "| data | method | runs | diverged | KL>10 | nll | lower | upper | sandwich | χ² upper | fold_frac |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for data, method in keys:
        rs = [r for r in res["runs"] if r["data"] == data and r["method"] == method]
        ok = [r["metrics"] for r in rs if r["status"] == "ok"]
        nll = [m.get("nll", m.get("nll_box")) for m in ok]
        kl = [m.get("kl", m.get("kl_box")) for m in ok]
        boxed = sum("nll" not in m and "nll_box" in m for m in ok)
        norm = [m for m in ok if "nll" in m and "nll_lower" in m]
        sand = sum(m["nll_lower"] - 3 * m["nll_lower_se"] <= m["nll"] <= m["nll_upper"] + 3 * m["nll_upper_se"]
                   for m in norm)
        has_bounds = any("nll_lower" in m for m in ok)
        lines.append("| " + " | ".join([
            data, method, str(len(rs)), str(sum(r["status"] == "diverged" for r in rs)),
            str(sum(k is not None and k > 10 for k in kl)),
            fmt(nll) + (f" ({boxed} box)" if boxed else ""),
            fmt([m.get("nll_lower") for m in ok]) if has_bounds else "–",
            fmt([m.get("nll_upper") for m in ok]) if has_bounds else "–",
            f"{sand}/{len(norm)}" if has_bounds else "–",
            fmt([m.get("nll_upper_chi2") for m in ok]) if any("nll_upper_diffusion" in m for m in ok) else "–",
            fmt([m.get("fold_frac") for m in ok]) if any("fold_frac" in m for m in ok) else "–"]) + " |")
    notes = sorted({m["upper_note"] for r in res["runs"] if r["status"] == "ok"
                    for m in [r["metrics"]] if "upper_note" in m})
    lines += ["", "Notes printed with the numbers:", ""] + [f"- {n}" for n in notes]
    (Path(out) / "bounds.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/bib")
