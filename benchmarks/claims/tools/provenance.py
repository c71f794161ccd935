"""Where each recorded row's runs trained: for every result that ``ebmlab claims run`` recorded, the commits in the
``run.json`` sessions of its arms' runs (``claims-runs/<scale>/arms``) beside the commit the result names. Results
recorded before ``claims run`` stored ``trained_at`` itself are audited this way; a row whose runs trained at another
commit reused runs that commit trained (or resumed one across commits).

    python benchmarks/claims/tools/provenance.py [--out claims-runs] [--write] > benchmarks/claims/provenance.md

``--write`` stores what it found as the result's ``trained_at`` (arm → commits, as ``claims run`` now records it,
with ``trained_at_source`` naming this audit) in results that lack it, so that their rows on the page say when
their runs trained at other commits.

A row of the ``train`` runner is audited on the runs it read: per seed, its arm's ``s<seed>``, or the run its
``runs`` names (``s<seed>~<kind>``, made on another CPU kind), and its equal-steps reruns; a run set aside or made for
another row is not counted. A stale row (its spec no longer resolves to what ran) is listed without an audit: its arms' keys are today's, not
the recorded runs'. Grid rows read every grid directory of the arm's key (one grid per key in this repository).
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from ebmlab.atomic import read_json, write_json
from ebmlab.claims import arms as arms_mod
from ebmlab.claims.render import stale
from ebmlab.claims import runners
from ebmlab.claims.runners import other_options, trained_at
from ebmlab.claims.spec import key_parts, load_claims


def run_dirs(root: Path, key: str) -> list[Path]:
    arms = root / "arms"
    return sorted([*arms.glob(f"{key}/s*"), *arms.glob(f"{key}-grid*/g*-s*")])


def recorded_run(root: Path, arm, w: str, result: dict, seed: int) -> Path:
    """The run directory a result read arm ``w``'s seed from: the one its ``runs`` names (a seed read from a run
    made on another CPU kind, ``s<seed>~<kind>``), else the seed's first."""
    names = (result.get("runs") or {}).get(w)  # one per seed, as the result's seeds (0, 1, …)
    if isinstance(names, list) and seed < len(names) and isinstance(names[seed], str):
        return root / "arms" / arm.key / names[seed]
    return runners._dir(root, arm, seed)


def changed(old: str, new: str) -> str:
    """What changed in the package's source between two commits: the files when few, else their count."""
    r = subprocess.run(["git", "diff", "--name-only", old, new, "--", "src/ebmlab"], capture_output=True, text=True)
    if r.returncode != 0:
        return "commit not in this history"
    files = [f.removeprefix("src/ebmlab/") for f in r.stdout.split()]
    if not files:
        return "no source change"
    return "source changed since: " + (", ".join(files) if len(files) <= 4 else f"{len(files)} files")


def superseded(arm, w: str, result: dict, root: Path) -> list[str]:
    """The seeds whose run here stopped at other steps than the result recorded for arm ``w``: the recorded run was
    moved aside and trained again (for another row sharing the arm, e.g. on one host kind), so the row no longer
    reads from the runs on this machine (``claims run`` on it would record what is here)."""
    steps, seeds = (result.get("steps") or {}).get(w), result.get("seeds")
    if not isinstance(steps, list) or not isinstance(seeds, list):
        return []
    out = []
    for seed, recorded in zip(seeds, steps):
        run = recorded_run(root, arm, w, result, seed)
        here = _steps(run)
        if recorded is None or here is None or here == int(recorded):
            continue
        aside = [d.name for d in sorted(run.parent.glob(f"{run.name}.superseded-*")) if _steps(d) == int(recorded)]
        out.append(f"s{seed}: recorded {recorded} steps, here {here}"
                   + (f"; the recorded run moved aside as {aside[-1]}" if aside else "; the recorded run is gone"))
    return out


def _steps(run: Path) -> int | None:
    f = run / "summary.json"
    step = read_json(f).get("step") if f.is_file() else None
    return int(step) if step is not None else None


def audit(claim, scale: str, result: dict, root: Path) -> tuple[str, dict[str, list[str]]]:
    """The table cell of one result, and arm → the commits its runs trained at (empty where not audited)."""
    if stale(claim):
        return "stale: not audited", {}
    arms = arms_mod.plan(claim, scale)
    here = str(result.get("commit") or "")
    cells, found = [], {}
    for w, arm in arms.items():
        keys = [*((result.get("equal_steps") or {}).get("keys") or {}).get(w, [])]
        own = [d for seed in result.get("seeds") or [] if (d := recorded_run(root, arm, w, result, seed)).is_dir()] \
            if claim.runner == "train" else run_dirs(root, arm.key)  # the runs the result read, not all there
        dirs = [*own, *(d for k in dict.fromkeys(keys) if k != arm.key for d in run_dirs(root, k))]
        if not dirs:
            cells.append(f"{w}: no runs here")
            continue
        found[w] = trained_at(dirs)
        if claim.runner == "train":  # the arms' own runs: made with the options the arms resolve to today?
            if moved := superseded(arm, w, result, root):
                cells.append(f"{w}: RECORDED RUNS REPLACED ({' | '.join(moved)})")
            other = [f"s{seed}: {'; '.join(diffs)}" for seed in range(len(result.get(w) or []))
                     if (diffs := other_options(runners._task(arm, seed, root, {},
                                                               recorded_run(root, arm, w, result, seed))))]
            if other:
                cells.append(f"{w}: RUNS MADE WITH OTHER OPTIONS ({' | '.join(other)})")
        other = [c for c in dict.fromkeys(c.removesuffix("-dirty") for c in found[w]) if c != here]
        cells.append(f"{w}: {len(dirs)} runs" + (", also trained at " + ", ".join(
            f"{c[:7]} ({changed(c, here)})" for c in other) if other else ""))
    return "; ".join(cells), found


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="claims-runs")
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    print("# Where the recorded rows' runs trained\n\nGenerated by `python benchmarks/claims/tools/provenance.py`: "
          "for each result recorded by `ebmlab claims run`, its arms' runs under `claims-runs/<scale>/arms` and the "
          "commits their sessions trained at, beside the result's commit (a `-dirty` mark is not counted: the "
          "result's `dirty` says whether the source had changes), and what changed in `src/ebmlab` between the "
          "two commits.\n")
    print("| claim | scale | result's commit | runs |\n|---|---|---|---|")
    for claim in load_claims("benchmarks/claims"):
        for scale, r in sorted(claim.results.items()):
            if not isinstance(r, dict) or not str(r.get("command", "")).startswith("ebmlab claims run"):
                continue
            if scale == "known_answer":
                continue
            if key_parts(scale)[1] != "cpu":  # a GPU's runs stay on the lent machine or in .gpu/, not under --out
                print(f"| `{claim.id}` | {scale} | {str(r.get('commit'))[:7]} | trained on {r.get('device', 'a GPU')}: "
                      f"its runs are not under {a.out}, not audited |")
                continue
            cell, found = audit(claim, scale, r, Path(a.out) / scale)
            print(f"| `{claim.id}` | {scale} | {str(r.get('commit'))[:7]} | {cell} |")
            if a.write and found and "trained_at" not in r:
                f = claim.path.parent / "results" / f"{claim.id}.json"
                doc = read_json(f)
                doc[scale] = {**r, "trained_at": found,
                              "trained_at_source": "run.json sessions of the arms' runs, read by "
                                                   "benchmarks/claims/tools/provenance.py after the result"}
                write_json(f, doc)


if __name__ == "__main__":
    main()
