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

The classifiers that scored the kept runs (their summaries' ``clf_sha256``: the stacked modes and the
classifier-feature metrics) are kept too, in ``--classifiers`` (``benchmarks/claims/classifiers``): each record and
its weights as ``ebmlab classifier train`` wrote them (``ebmlab.metrics.classifier``). Training one is deterministic
on one kind of CPU only, so a fresh machine of another kind trains another network, and runs it scores cannot be
set beside the kept ones (``ebmlab.claims.verdict`` rule 8). ``restore`` therefore puts the kept classifiers where
``ebmlab`` looks for them (``EBMLAB_CLASSIFIERS`` or ``~/.cache/ebmlab/classifiers``) after checking each file's
sha256 against its record; a machine that already has a classifier of that name keeps it, and ``restore`` says that
the two differ, with how to use the campaign's instead. Run ``restore`` before anything trains a classifier.
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


def _scorers(kept: Path) -> set[str]:
    """The classifier hashes (16 hex digits) that scored the runs kept in ``kept``: each summary's metrics'
    ``clf_sha256``, read as ``claims run`` reads it (``ebmlab.claims.runners.scorer``)."""
    from ebmlab.claims.runners import scorer

    found: set[str] = set()
    for f in kept.glob("*/arms/*/*/summary.json"):
        try:
            sha = scorer(json.loads(f.read_text()))
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
        if sha:
            found.add(sha[:16])
    return found


def _records(d: Path) -> list[tuple[Path, dict, Path]]:
    """(record, its contents, its weights file) of each classifier kept in ``d``."""
    out = []
    for rec in sorted(d.glob("*.json")) if d.is_dir() else []:
        try:
            info = json.loads(rec.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(info, dict) and isinstance(info.get("sha256"), str) and isinstance(info.get("file"), str):
            out.append((rec, info, d / info["file"]))
    return out


def save_classifiers(kept: Path, store: Path) -> int:
    """Copy into ``store`` each classifier of this machine that scored a run kept in ``kept``; the number copied."""
    from ebmlab.metrics.classifier import classifier_dir

    used, n = _scorers(kept), 0
    for rec, info, pt in _records(classifier_dir()):
        if info["sha256"][:16] not in used or not pt.is_file():
            continue
        if (store / rec.name).is_file() and json.loads((store / rec.name).read_text()).get("sha256") == info["sha256"]:
            continue
        store.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pt, store / pt.name)
        shutil.copyfile(rec, store / rec.name)
        n += 1
    return n


def restore_classifiers(store: Path) -> tuple[int, list[str]]:
    """Put the classifiers kept in ``store`` where ebmlab looks for them, each checked against its record's sha256
    first; one already there under the same name is left. (number restored, a line per classifier that differs)."""
    from ebmlab.data.readers import sha256_file
    from ebmlab.metrics.classifier import classifier_dir

    dest, n, differ = classifier_dir(), 0, []
    for rec, info, pt in _records(store):
        if not pt.is_file() or sha256_file(pt) != info["sha256"]:
            sys.exit(f"error: the kept classifier {pt} is missing or differs from its record {rec} (sha256 "
                     f"{info['sha256'][:16]}…); restore it from git (git checkout -- {store})")
        here = dest / rec.name
        if here.is_file():
            mine = json.loads(here.read_text()).get("sha256", "")
            if mine != info["sha256"]:
                differ.append(f"{rec.stem}: this machine's classifier {str(mine)[:16]} is not the campaign's "
                              f"{info['sha256'][:16]} (its runs are left out beside the kept ones, verdict rule 8); "
                              f"to score with the campaign's, move {here} aside and restore again")
            continue
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pt, dest / pt.name)
        shutil.copyfile(rec, here)
        n += 1
    return n, differ


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["save", "restore"])
    ap.add_argument("--out", default="claims-runs", help="the campaign's run directory")
    ap.add_argument("--to", default="benchmarks/claims/kept-runs", help="where the finished runs are kept (committed)")
    ap.add_argument("--classifiers", default="benchmarks/claims/classifiers",
                    help="where the classifiers that scored them are kept (committed)")
    a = ap.parse_args()
    out, to, store = Path(a.out), Path(a.to), Path(a.classifiers)
    if a.what == "save":
        print(f"kept {save(out, to)} finished runs of {out} in {to}; "
              f"{save_classifiers(to, store)} classifier(s) newly kept in {store}")
    else:
        if not to.is_dir():
            sys.exit(f"error: no kept runs at {to}")
        n, differ = restore_classifiers(store)
        print(f"restored {restore(out, to)} runs from {to} into {out}; {n} classifier(s) from {store}")
        for line in differ:
            print(f"note: {line}")


if __name__ == "__main__":
    main()
