"""A run branched from another run's kept checkpoint: its first N steps are the other run's, read from that run's
checkpoint at step N (run option ``keep_checkpoints``), and ``ebmlab train`` goes on from there as it resumes a run.

Two runs of the same options that differ only in where they end (``steps``, a budget: ``max_cpu_seconds`` …) train
the same steps up to any step both reach, as long as nothing in the training reads where the run ends. So a run to
fewer steps than a finished one (the equal-steps rerun of a claim's faster arm, ``ebmlab.claims.runners``) need not
train its first N steps again: it can start at the finished run's last kept checkpoint below its length. Resuming is
exact (model, optimizers, batch stream, RNG and step restored), so the branched run is the run it stands for.

What a branch may change: the steps, the budgets, and the options of where a run runs that a resumed run may change
(``ebmlab.placement.RESUMABLE``). Refused, with nothing written: any other option that differs, a learning-rate
schedule that decays over the run's length (``linear``, ``cosine``: the step-N learning rate reads ``steps``), a
branch point at or past the new run's length, a destination that holds files.

The new run's ``run.json`` holds one session record for the N steps it took over, marked ``branched_from`` (the run
and the step), with that run's training seconds up to step N (its evaluation line at N records them) and its machine
and speed probes; no ``ended`` time: those steps were not computed in one span of its own. Its ``metrics.jsonl`` holds
the other run's lines up to step N, so its learning curve is whole. With ``keep_best`` its ``best.pt`` and
``best.json`` are the best of those evaluations, the model from the checkpoint kept at it, as the run trained from
step 0 holds them at step N; refused with ``ema``, whose evaluated (averaged) weights no kept checkpoint holds.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from .atomic import read_json, write_json
from .errors import EbmlabError
from .runs import RunDir

HORIZON_FREE = ("constant", "step")  # learning-rate schedules that do not read the run's length
BUDGET_KEYS = ("max_seconds", "max_cpu_seconds", "max_evals")
# a session record's keys that describe how that session ended, not the steps a branch takes over
_SESSION_END = ("ended", "end_step", "steps_per_s", "status", "train_seconds", "train_cpu_seconds", "checkpointed",
                "graphs", "compile", "failure")


def branch_point(source: str | Path, steps: int) -> int | None:
    """The largest step below ``steps`` at which ``source`` kept a checkpoint and logged its evaluation (with the
    seconds trained up to it), or None."""
    run = RunDir(source)
    kept = run.kept_checkpoint_steps()
    if not kept:
        return None
    logged = {m.get("step") for m in _eval_lines(_metrics(run))}
    kept = [k for k in kept if 0 < k < steps and k in logged]
    return kept[-1] if kept else None


def _metrics(run: RunDir) -> list[dict[str, Any]]:
    """A run's metrics.jsonl lines; none where it cannot be read (a branch point is then not found)."""
    try:
        return run.read_metrics()
    except (OSError, ValueError, EbmlabError):
        return []


def _eval_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The evaluation lines during training (they carry the seconds trained up to their step)."""
    return [m for m in lines if m.get("kind") == "eval" and "train_seconds" in m]


def check_branch(source: RunDir, saved: dict[str, Any], cfg: Any, step: int) -> None:
    """Refuse a branch of ``cfg`` (a resolved configuration) from ``source`` (its configuration ``saved``) at
    ``step``, with one message naming what differs and what to do."""
    from .config import option_differences
    from .placement import RESUMABLE

    if saved.get("method") != cfg.method or saved.get("data") != cfg.data:
        raise EbmlabError(f"{source.path} is a run of {saved.get('method')} on {saved.get('data')}, not of "
                          f"{cfg.method} on {cfg.data}: a branch continues a run of the same method and data")
    schedule = cfg.run.lr_schedule
    if schedule not in HORIZON_FREE:
        raise EbmlabError(f"lr_schedule={schedule} decays over the run's length (steps), so a run to other steps "
                          f"has other learning rates from its first step: it cannot branch from {source.path} — "
                          f"train it from step 0, or use lr_schedule {' or '.join(HORIZON_FREE)}")
    diffs = option_differences(saved, cfg, (*RESUMABLE, *BUDGET_KEYS))
    if diffs:
        raise EbmlabError(f"{source.path} was trained with other options than the branch asks ("
                          + "; ".join(f"{k}: there {a!r}, here {b!r}" for k, (a, b) in diffs.items())
                          + "): its first steps are not this run's — train it from step 0")
    if cfg.run.keep_best and cfg.run.ema > 0:
        raise EbmlabError(f"keep_best={cfg.run.keep_best} with ema={cfg.run.ema}: best.pt holds the averaged weights "
                          f"of its evaluation, which the kept checkpoints do not — branch without keep_best, or train "
                          f"from step 0")
    if not 0 < step < cfg.run.steps:
        raise EbmlabError(f"a branch at step {step} of a run to {cfg.run.steps} steps: the step must lie between 0 "
                          f"and the run's length")
    if not source.kept_checkpoint_path(step).is_file():
        kept = source.kept_checkpoint_steps()
        raise EbmlabError(f"{source.path} kept no checkpoint at step {step} (kept: "
                          f"{', '.join(map(str, kept)) or 'none — train it with keep_checkpoints=true and eval_every=N'})")


def _taken_over(source: RunDir, step: int, evals: list[dict[str, Any]]) -> dict[str, Any]:
    """The session record of the branch's first ``step`` steps (see the module docstring); ``evals``: the source's
    evaluation lines."""
    line = next((m for m in evals if m.get("step") == step), None)
    if line is None:
        raise EbmlabError(f"{source.metrics_path} has no evaluation line at step {step} with the seconds trained up "
                          f"to it: the branch could not say what its first steps cost")
    sessions = source.sessions()
    at = [s for s in sessions if isinstance(s.get("start_step"), int) and s["start_step"] < step]
    base = {k: v for k, v in (at[-1] if at else {}).items() if k not in _SESSION_END}
    probes = [p for s in at for p in ((s.get("speed_probe") or {}).get("cpu_s") or [])]
    rec = {**base, "start_step": 0, "end_step": step, "status": "ended", "train_seconds": line["train_seconds"],
           "branched_from": {"run": str(source.path), "step": step}}
    if "train_cpu_seconds" in line:
        rec["train_cpu_seconds"] = line["train_cpu_seconds"]
    if probes:
        rec["speed_probe"] = {**(base.get("speed_probe") or {}), "cpu_s": probes}
    return rec


def plan_branch(source: str | Path, dest: str | Path, cfg: Any, step: int | None = None) -> int | None:
    """The step at which ``ebmlab train --branch-from SOURCE`` branches a new run of ``cfg`` into ``dest``: ``step``,
    or the last checkpoint ``source`` kept below ``cfg``'s steps; checked as :func:`branch` checks it, nothing written.
    None when ``dest`` already is that branch (the same command again resumes it); refused when it holds another
    run."""
    from .config import saved_config

    src, out = RunDir(source), RunDir(dest)
    if out.exists():
        first = (out.sessions() or [{}])[0].get("branched_from") or {}
        there = first.get("run")
        if there is not None and Path(there).resolve() == src.path.resolve() and step in (None, first.get("step")):
            return None
        raise EbmlabError(f"--out {out.path} already holds a run that is not a branch of {src.path}"
                          f"{'' if step is None else f' at step {step}'}: name a new --out for the branch, or leave "
                          f"--branch-from out to resume that run")
    if not src.config_path.is_file():
        raise EbmlabError(f"--branch-from {src.path} holds no run (no config.json) to branch from")
    if step is None:
        step = branch_point(src.path, cfg.run.steps)
        if step is None:
            kept = src.kept_checkpoint_steps()
            raise EbmlabError(f"{src.path} kept no checkpoint below step {cfg.run.steps} to branch from (kept: "
                              f"{', '.join(map(str, kept)) or 'none'}); a run keeps them with keep_checkpoints=true "
                              f"and eval_every=N")
    check_branch(src, saved_config(src), cfg, step)
    out.check_new()
    return step


def _best_up_to(source: RunDir, part: RunDir, cfg: Any, step: int, evals: list[dict[str, Any]]) -> None:
    """Run option ``keep_best``: the branch's best.pt and best.json as the run trained from step 0 would hold them
    at ``step`` — the evaluation up to it that scored best (``registry.improves``, keep_best's rule: the first of
    equals), its model from the checkpoint kept there; none when no evaluation up to it scored."""
    from .metrics import registry

    name = cfg.run.keep_best
    best: tuple[int, float] | None = None
    for m in evals:
        k = m.get("step")
        if isinstance(k, int) and k <= step and registry.improves(name, m.get(name), None if best is None else best[1]):
            best = (k, float(m[name]))
    if best is None:
        return
    ckpt = source.load_checkpoint(cfg.method, source.kept_checkpoint_path(best[0]))
    if ckpt is None:
        raise EbmlabError(f"{source.path} kept no checkpoint at step {best[0]}, its best evaluation of {name} up to "
                          f"step {step}: the branch's best.pt could not be the run's — branch without keep_best")
    part.save_checkpoint({k: ckpt[k] for k in ("format", "method", "step", "method_state")}, part.best_path)
    write_json(part.best_record_path, {"metric": name, "value": best[1], "step": best[0],
                                       "better": "higher" if registry.higher_is_better(name) else "lower"})


def branch(source: str | Path, dest: str | Path, cfg: Any, step: int) -> None:
    """Make ``dest`` a run of the resolved configuration ``cfg`` that holds ``source``'s first ``step`` steps (its
    kept checkpoint at ``step``): ``ebmlab.train`` with the same options on ``dest`` trains on from there. Checked
    before anything is written (:func:`check_branch`); written into a temporary directory beside ``dest`` and
    renamed, so a kill leaves either no branch or a whole one."""
    from .config import config_from_dict

    src, out = RunDir(source), RunDir(dest)
    if not src.config_path.is_file():
        raise EbmlabError(f"{src.path} holds no run (no config.json) to branch from")
    raw = read_json(src.config_path)
    saved = config_from_dict(raw, src.config_path).to_dict()
    check_branch(src, saved, cfg, step)
    if out.exists():
        raise EbmlabError(f"{out.path} already holds a run; a branch is made into a new directory")
    out.check_new()
    metrics = src.read_metrics()
    evals = _eval_lines(metrics)
    record = _taken_over(src, step, evals)
    lines = [json.dumps(m) for m in metrics if isinstance(m.get("step"), int) and m["step"] <= step]
    tmp = out.path.with_name(f".{out.path.name}.branch.tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # a branch a kill interrupted
    tmp.mkdir(parents=True)
    part = RunDir(tmp)
    shutil.copyfile(src.kept_checkpoint_path(step), part.checkpoint_path)
    part.metrics_path.write_text("".join(f"{line}\n" for line in lines))
    write_json(part.record_path, {"format": "ebmlab-run-record-1", "sessions": [record]})
    if cfg.run.keep_best:
        _best_up_to(src, part, cfg, step, evals)
    sha = raw.get("data_sha256")
    write_json(part.config_path, {**cfg.to_dict(), **({"data_sha256": sha} if sha else {})})
    if out.path.is_dir():
        shutil.rmtree(out.path)  # empty but for its lock or temporary files (check_new)
    os.replace(tmp, out.path)


__all__ = ["BUDGET_KEYS", "HORIZON_FREE", "branch", "branch_point", "check_branch", "plan_branch"]
