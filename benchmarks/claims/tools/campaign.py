"""Every measured claim re-run at the small scale by ``ebmlab claims run``, in the order of this list (cheap rows
first), one claim at a time with two runs in parallel, each result recorded with --replace (the campaign replaces the
results of older code deliberately); a claim whose small result was already recorded by ``claims
run`` on the current commit's code is skipped, so the campaign resumes where it stopped (its runs are shared and
resumable under claims-runs/). Its log: claims-runs/campaign.log.

    python benchmarks/claims/tools/campaign.py [--jobs 2] [--out claims-runs] [--scale small|medium] [ID ...]
    python benchmarks/claims/tools/campaign.py --scale medium --status     # what is recorded, what is left

``--scale medium`` runs the headline comparisons' medium scale (``MEDIUM``, the issue's ~10 wall-hours on a 2-core
CPU: benchmarks/claims/medium.md) the same way; a claim is done when its medium result was recorded by claims run.

Across sessions: a fresh checkout has no ``claims-runs/``; the finished runs are kept in the repository by
``python benchmarks/claims/tools/keep_runs.py save`` (records, summaries and evaluation lines, a few kB a run; commit
``benchmarks/claims/kept-runs/``) and put back by ``keep_runs.py restore`` before the campaign starts again, so only the runs
under way when a session ended are trained again.

``touch OUT/campaign.stop`` stops it between two claims (the file is removed), e.g. to move its worktree to a later
commit without runs of one claim spanning two commits. Run it from a clean checkout of a commit (a worktree) so that every result records that commit with no uncommitted
change (``dirty`` false); results recorded from a tree with changes, or whose spec changed since (stale), are run again (their runs are reused).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ORDER = """
kale-guided-beats-base-ring8 kale-guided-w1-ring8 kale-guided-beats-base-ring8-t1 kale-guided-beats-base-grid25
vgan-covers-ring8 vgan-covers-2d-mixtures bib-density-grid25 bib-stable-grid25-vs-official
bib-upper-bound-stabilises-ring8 bib-pairings-jac-diff-ring8 ebgan-pt-adds-diversity-grid25 bihm-db-below-rws
bihm-beats-rws-likelihood kale-fixed-flow-improves-uci lbt-ring8-vs-gan lbt-grid25-vs-gan lbt-gan-improves-on-lbt-ring8
vgan-modes-beat-gan-stacked-fashion-500 lbt-stacked-vs-gan-equal-steps vgan-energy-features-beat-gan
vgan-mode-kl-beats-gan-stacked-digits vgan-fd-beats-gan-stacked-digits kale-beats-gan-equal-compute
bib-beats-gan-paper-nets kale-beats-gan-paper-nets lbt-beats-gan-paper-nets lbt-gan-beats-gan-paper-nets
vcd-beats-vgan-paper-nets bib-r1-ablation-penalty bib-r1-ablation-energy-bounded bib-r1-ablation-upper-bound
lbt-ring8-all-modes-10k pacgan-pack2-grid25 ebgan-stabler-than-gan-ring8 lbt-gan-improves-on-lbt-grid100
lbt-covers-grid100-vs-gan lbt-grid100-above-noise-floor
vgan-modes-beat-gan-stacked-fashion vcd-leads-stacked-fashion vcd-coverage-is-not-inherited
kale-modes-vs-gan-stacked-fashion lbt-stacked-vs-gan-equal-compute lbt-gan-stacked-vs-gan-equal-compute
ebgan-pt-adds-diversity-stacked bib-images-modes-vs-onesided
sr-stats-sharper-than-mse sr-stats-lower-psnr sr-mse-regresses-to-the-mean iwae-beats-vae-test-ll iwae-active-units
vcd-semisup-augmentation ebgan-ln-beats-ladder-1000 ebgan-ln-beats-ladder-100 ebgan-ln-margin-decay
bihm-fewer-samples aevb-beats-wake-sleep pacgan-stacked-mnist-modes
""".split()
MEDIUM = """
vcd-beats-vgan-paper-nets vcd-from-noise-beats-vgan-paper-nets vcd-fd-beats-vgan-paper-nets vgan-beats-gan-paper-nets
vgan-fd-beats-gan-paper-nets bib-beats-gan-paper-nets
kale-beats-gan-paper-nets kale-guided-beats-base-paper-nets lbt-gan-beats-gan-paper-nets lbt-gan-fd-beats-gan-paper-nets
lbt-beats-gan-paper-nets bib-beats-onesided-paper-nets
bib-without-r1-paper-nets
""".split()
SPECS = Path("benchmarks/claims")


def done(cid: str, scale: str = "small") -> bool:
    f = SPECS / "results" / f"{cid}.json"
    if not f.is_file():
        return False
    r = json.loads(f.read_text()).get(scale) or {}
    if not (r.get("command", "").startswith("ebmlab claims run") and "arms" in r and r.get("dirty") is False):
        return False
    from ebmlab.claims.render import stale
    from ebmlab.claims.spec import get_claim

    return not stale(get_claim(cid, SPECS))  # a spec edited since its result is run again


def status(ids: list[str], scale: str, out: str) -> None:
    """One line per claim: recorded (by claims run, on this code), or the last line of its dry run; then, for an
    equal-compute claim, how many seeds' pairs its equal-compute reading keeps (verdict rule 4: the arms ran at
    one machine speed) — `claims run` makes the others again on this machine, side by side, under new names (the dry
    run names them)."""
    from ebmlab.claims.plan import format_plan, plan_claim
    from ebmlab.claims.spec import get_claim
    from ebmlab.errors import EbmlabError

    for cid in ids:
        c = get_claim(cid, SPECS)
        if c.status == "measured" and c.runner != "train":  # a grid, a table: its own command makes its runs
            print(f"{cid}: {'recorded' if done(cid, scale) else 'not recorded'} (runner {c.runner}: its runs are "
                  f"made by its own command, not listed here)")
            continue
        try:
            plan = plan_claim(c, scale, out=out)
        except EbmlabError as e:  # an untested claim: its reason
            print(f"{cid}: {e}")
            continue
        line = "recorded" if done(cid, scale) else format_plan(c, scale, plan).splitlines()[-1]
        pairs = plan.get("pairs") or []
        if pairs:
            line += (f"; equal compute keeps {sum(p['kept'] for p in pairs)} of {len(pairs)} finished seed pairs"
                     f" (seeds left out: {', '.join(str(p['seed']) for p in pairs if not p['kept']) or 'none'})")
        print(f"{cid}: {line}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ids", nargs="*")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="claims-runs", help="the claims' runs (shared between checkouts)")
    ap.add_argument("--scale", default="small", choices=["small", "medium"])
    ap.add_argument("--status", action="store_true", help="say, per claim, whether its result is recorded and what is "
                                                          "left of its runs (`claims run --dry-run`); run nothing")
    a = ap.parse_args()
    if a.status:
        return status(a.ids or (MEDIUM if a.scale == "medium" else ORDER), a.scale, a.out)
    log = Path(a.out) / "campaign.log"
    log.parent.mkdir(exist_ok=True)
    stop = Path(a.out) / "campaign.stop"
    for cid in a.ids or (MEDIUM if a.scale == "medium" else ORDER):
        if done(cid, a.scale):
            continue
        if stop.exists():  # `touch OUT/campaign.stop`: stop between claims (to move the worktree to another commit)
            stop.unlink()
            with log.open("a") as fh:
                fh.write(f"{time.strftime('%H:%M:%S')} stopped on request ({stop}) before {cid}\n")
            return
        t0 = time.time()
        with log.open("a") as fh:
            fh.write(f"{time.strftime('%H:%M:%S')} start {cid}{'' if a.scale == 'small' else ' ' + a.scale}\n")
        p = subprocess.run([sys.executable, "-m", "ebmlab", "claims", "run", cid, "--scale", a.scale, "--jobs",
                            str(a.jobs), "--replace", "--out", a.out], capture_output=True, text=True)
        with log.open("a") as fh:
            fh.write(f"{time.strftime('%H:%M:%S')} end {cid} rc={p.returncode} {time.time() - t0:.0f} s: "
                     f"{(p.stdout.strip().splitlines() or [''])[-2:]} {p.stderr.strip().splitlines()[-1:] if p.returncode else ''}\n")


if __name__ == "__main__":
    main()
