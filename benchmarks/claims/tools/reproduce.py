"""Does today's code give a recorded row's numbers? Re-trains one seed of each arm of a claim (a fresh run under a
temporary directory, with the arm's resolved options) and sets its metric beside the value the result recorded for
that seed. An arm that trained to a CPU-time budget is re-trained to the steps the recorded run reached, without the
budget (a budget stops between steps, so the same steps give the same numbers; the wall-clock does not enter).

    python benchmarks/claims/tools/reproduce.py [--seed 0] [--write] [--flagged | ID ...] >> benchmarks/claims/reproduce.md

``--write`` stores the outcome in the result (``rechecked``: the commit, the seed and each arm's outcome), which
the row on the page then shows beside its provenance.

``--flagged`` takes the rows whose runs trained at another commit than the result's (``trained_at``). Runs are
deterministic on CPU for a given seed, so "equal" is exact equality of the recorded float; a difference means the
code between the commits changed that arm's numbers (or the run's subnormal mode: ``flush_denormal`` arrived after
some rows were recorded, and is printed).
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
import time
from pathlib import Path

from ebmlab.atomic import read_json, write_json
from ebmlab.claims import arms as arms_mod
from ebmlab.claims import runners
from ebmlab.claims.render import earlier_commits, stale
from ebmlab.claims.spec import get_claim, load_claims

SPECS = Path("benchmarks/claims")
ROOT = Path(tempfile.mkdtemp(prefix="ebmlab-reproduce-"))  # this process's fresh runs


def reproduce(cid: str, seed: int, scale: str = "small") -> tuple[list[str], dict[str, str]]:
    claim = get_claim(cid, SPECS)
    r = claim.results.get(scale) or {}
    if stale(claim) or claim.runner != "train":
        return [f"| `{cid}` | — | — | — | not checked: {'stale' if stale(claim) else claim.runner + ' runner'} |"], {}
    rows, outcome = [], {}
    for w, arm in arms_mod.plan(claim, scale).items():
        recorded = (r.get(w) or [None] * (seed + 1))[seed]
        steps = ((r.get("steps") or {}).get(w) or [None] * (seed + 1))[seed]
        opts = dict(arm.options)
        budgeted = any(k in opts for k in arms_mod.BUDGETS)
        if budgeted:
            opts = {k: v for k, v in opts.items() if k not in arms_mod.BUDGETS}
            opts["steps"] = steps
        again = arms_mod.Arm(w, arm.label, arm.method, arm.data, opts, arm.metric, arm.runner)
        t0 = time.process_time()
        task = runners._task(again, seed, ROOT, {})  # an arm two rows share is trained once (finished runs are read)
        done = runners._execute([task], 1, ROOT)
        value = runners._value(done.get(task[4]), Path(task[4]), arm.metric)
        cpu = time.process_time() - t0
        if recorded is None or value is None:
            same = "no value to compare"
        elif value == recorded:
            same = "**equal**"
        else:
            same = f"differs by {value - recorded:+.4g}"
        outcome[w] = same.replace("**", "")
        rows.append(f"| `{cid}` | {w} ({arm.method}{', to the recorded ' + str(steps) + ' steps' if budgeted else ''})"
                    f" | {recorded} | {value} | {same} |")
        print(f"{cid} {w}: recorded {recorded}, today {value} ({cpu:.0f} s in this process)", flush=True,
              file=__import__("sys").stderr)
    return rows, outcome


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ids", nargs="*")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--flagged", action="store_true")
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    ids = list(a.ids)
    if a.flagged:
        ids += [c.id for c in load_claims(SPECS) if earlier_commits((c.results or {}).get("small") or {})]
    from ebmlab.claims.run import _provenance

    here = str(_provenance()["commit"])
    t0 = time.time()
    print(f"\n## {datetime.date.today()}, seed {a.seed}, at {here[:7]}\n\n"
          f"`python benchmarks/claims/tools/reproduce.py --seed {a.seed} {'--write ' if a.write else ''}"
          f"{'--flagged ' if a.flagged else ''}"
          f"{' '.join(a.ids)}`, load {os.getloadavg()[0]:.1f} at the start\n\n"
          "| claim | arm | recorded | today | |\n|---|---|---|---|---|", flush=True)
    for cid in ids:
        rows, outcome = reproduce(cid, a.seed)
        for row in rows:
            print(row, flush=True)
        if a.write and outcome:
            f = SPECS / "results" / f"{cid}.json"
            doc = read_json(f)
            doc["small"]["rechecked"] = {"commit": here, "seed": a.seed, "arms": outcome,
                                         "command": "python benchmarks/claims/tools/reproduce.py"}
            write_json(f, doc)
    print(f"\nwall {time.time() - t0:.0f} s, load {os.getloadavg()[0]:.1f} at the end", flush=True)


if __name__ == "__main__":
    main()
