"""BiB with and without ``share_jacobian`` at equal CPU time: per seed, the steps the budget gave, the modes and the
classifier FD at the end; the paired differences (shared − per-step estimates) with their 95 % Student-t interval
over the seeds (``ebmlab.claims.verdict``'s rule), and the decision rule for the image default.

    python benchmarks/images/bib_share_jacobian/summarize.py OUT > benchmarks/images/bib_share_jacobian/results.md

Decision rule (declared before the runs): ``share_jacobian`` becomes BiB's image default if, at equal CPU time over
3 seeds, neither its modes nor its FD are worse than the default's with 95 % confidence (the paired interval of the
modes' difference does not lie below zero, nor the FD's above zero).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from ebmlab.claims.verdict import t_interval as interval


def main() -> None:
    out = Path(sys.argv[1])
    rep = json.loads((out / "results.json").read_text())
    by: dict[str, dict[int, dict]] = {}
    for r in rep["runs"]:
        by.setdefault(r.get("setting", ""), {})[r["seed"]] = {"steps": r.get("steps_run"), "modes": r["metrics"]["modes"],
                                                             "clf_fd": r["metrics"]["clf_fd"]}
    print(f"# BiB with and without share_jacobian on stacked Fashion-MNIST\n\nCommand: `{rep['command']}`; "
          f"{rep['meta']['machine']}, torch {rep['meta']['torch']}; wall {rep['meta']['wall_s']:.0f} s, "
          f"{rep['meta']['jobs']} runs at a time.\n")
    print("| setting | seed | steps | modes | classifier FD |\n|---|---|---|---|---|")
    for label, seeds in by.items():
        for s, v in sorted(seeds.items()):
            print(f"| {label} | {s} | {v['steps']} | {v['modes']} | {v['clf_fd']:.0f} |")
    (off, a), (on, b) = sorted(by.items(), key=lambda kv: "true" in kv[0])
    seeds = sorted(set(a) & set(b))
    rows = {k: [b[s][k] - a[s][k] for s in seeds] for k in ("steps", "modes", "clf_fd")}
    print(f"\nPaired differences ({on} − {off}) over seeds {seeds}, mean [95 % interval]:\n")
    for k, d in rows.items():
        m, lo, hi = interval(d)
        print(f"- {k}: {m:+.1f} [{lo:+.1f}, {hi:+.1f}]")
    steps = statistics.fmean(b[s]["steps"] / a[s]["steps"] for s in seeds)
    worse = [k for k, bad in (("modes", interval(rows["modes"])[2] < 0), ("clf_fd", interval(rows["clf_fd"])[1] > 0))
             if bad]
    print(f"\nSteps in the same CPU time: {steps:.2f}× with share_jacobian. Decision: "
          + ("share_jacobian=true becomes the image default (neither modes nor FD worse with 95 % confidence)."
             if not worse else f"the default stays (worse with 95 % confidence in {', '.join(worse)})."))
    print("\n```json\n" + json.dumps(by) + "\n```")


if __name__ == "__main__":
    main()
