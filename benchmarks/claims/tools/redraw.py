"""Draw the claims' learning-curve pictures again from their recorded results, after a change to how they are drawn
(``ebmlab.claims.curves.plot``), without reading or training any run.

    python benchmarks/claims/tools/redraw.py [CLAIM_ID ...]

A result records the curves it was judged on (``curves``: per arm, per seed, the points step / seconds / value), its
clock and its picture's name; this draws each picture from exactly those points, with the labels ``claims run``
gives them. The result files are not touched: the verdicts, commands and timings stay those of the run that made
them.
"""

from __future__ import annotations

import argparse
import json

from ebmlab.claims import arms as arms_mod
from ebmlab.claims import curves
from ebmlab.claims.runners import curve_labels
from ebmlab.claims.spec import key_parts, load_claims


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ids", nargs="*", help="claim ids (default: every claim with a curves picture)")
    a = ap.parse_args()
    for claim in load_claims():
        if a.ids and claim.id not in a.ids:
            continue
        path = claim.path.parent / "results" / f"{claim.id}.json"
        if not path.exists():
            continue
        for key, r in json.loads(path.read_text()).items():
            if not isinstance(r, dict) or not r.get("curves") or not r.get("curves_picture"):
                continue
            scale, device = key_parts(key)
            arms = arms_mod.plan(claim, scale, device)
            metric, labels = curve_labels(claim, arms)
            got = {w: [[tuple(p) for p in c] for c in runs] for w, runs in r["curves"].items()}
            picture = path.parent / r["curves_picture"]
            curves.plot(got, labels, metric, picture, r.get("clock", "cpu"))
            print(picture)


if __name__ == "__main__":
    main()
