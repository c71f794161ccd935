"""The claims campaign's finished runs kept in the repository, so that a campaign resumes in a later session on a
fresh checkout (where its run directory, ``claims-runs/``, is gone) without training them again.

    python benchmarks/claims/tools/keep_runs.py save [--out claims-runs] [--to benchmarks/claims/kept-runs]
    python benchmarks/claims/tools/keep_runs.py restore [--out claims-runs] [--to benchmarks/claims/kept-runs]

``save`` copies, from every *finished* run under ``OUT/<scale>/arms/<key>/<run>`` (its summary written and, for a
trained run, its last session ended by its steps or its budget: ``ebmlab.claims.runners._finished``), what ``claims
run`` reads of it: ``config.json``, ``run.json``, ``summary.json``, the claims' caches (``claims_probe.json``,
``semisup-*.json``) and the evaluation lines of ``metrics.jsonl`` (the learning curves; the training-log lines are left
out). No checkpoint, event file or picture: a few kB a run. ``restore`` puts them back where no run directory stands,
so ``claims run`` reads them as finished runs; a run that was under way when a session ended is trained again from its
start (its checkpoint was not kept: megabytes, in git, for every session).

A kept run cannot be resumed or evaluated again (no checkpoint): what reads one is what ``claims run`` reads of a
finished run. ``benchmarks/claims/tools/reproduce.py`` re-trains a seed from nothing anyway.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

KEEP = ("config.json", "run.json", "summary.json", "claims_probe.json")


def finished(run: Path) -> bool:
    from ebmlab.claims.runners import _finished

    if not (run / "summary.json").is_file():
        return False
    return not (run / "run.json").is_file() or _finished(run) is not None  # an sr run has no run.json


def _runs(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/arms/*/*") if p.is_dir() and ".superseded-" not in p.name)


def _eval_lines(src: Path) -> str:
    out = []
    for line in src.read_text().splitlines():
        try:
            kind = json.loads(line).get("kind")
        except (json.JSONDecodeError, AttributeError):
            continue  # a torn last line of a killed run: not an evaluation
        if kind != "train":
            out.append(line)
    return "".join(x + "\n" for x in out)


def save(out: Path, to: Path) -> int:
    n = 0
    for run in _runs(out):
        if not finished(run):
            continue
        dest = to / run.relative_to(out)
        dest.mkdir(parents=True, exist_ok=True)
        for f in [*(run / k for k in KEEP), *run.glob("semisup-*.json")]:
            if f.is_file():
                shutil.copyfile(f, dest / f.name)
        if (run / "metrics.jsonl").is_file():
            (dest / "metrics.jsonl").write_text(_eval_lines(run / "metrics.jsonl"))
        n += 1
    return n


def restore(out: Path, to: Path) -> int:
    n = 0
    for kept in _runs(to):
        dest = out / kept.relative_to(to)
        if dest.exists():
            continue  # a run directory here (finished or under way) is left as it is
        shutil.copytree(kept, dest)
        n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["save", "restore"])
    ap.add_argument("--out", default="claims-runs", help="the campaign's run directory")
    ap.add_argument("--to", default="benchmarks/claims/kept-runs", help="where the finished runs are kept (committed)")
    a = ap.parse_args()
    out, to = Path(a.out), Path(a.to)
    if a.what == "save":
        print(f"kept {save(out, to)} finished runs of {out} in {to}")
    else:
        if not to.is_dir():
            sys.exit(f"error: no kept runs at {to}")
        print(f"restored {restore(out, to)} runs from {to} into {out}")


if __name__ == "__main__":
    main()
