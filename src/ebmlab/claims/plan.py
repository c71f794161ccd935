"""``ebmlab claims run ID --scale S --dry-run``: what the command would train or read, and where each run stands,
without training, evaluating or writing anything — how a campaign that spans several sessions (or a job array's
parts, ``--shard i/n``) is followed.

Each run of the claim (arm × seed, in the order ``claims run`` makes them; with ``--shard i/n`` only that part's,
and the equal-steps reruns of its seeds, seed mod n = i) is in one of these states, read from its run directory as ``claims run`` reads it:

- ``finished``: its summary written and its last session ended by its steps or its budget (read, never retrained);
- ``training``: another process holds the run (its ``.lock``) — the step and CPU-seconds of its last checkpoint;
- ``stopped``: a session ended or was killed before the end — resumed from its checkpoint (or, with none, started
  again);
- ``other options``: made with options other than its arm's today — set aside and trained again;
- ``not started``.

A run's training left is its budget less what it trained: the CPU-seconds of a CPU-budgeted run (its evaluations are
not counted, as they are not in its budget), the steps of a run of fixed length. An equal-compute claim's
equal-steps reruns are listed once both budget runs of a seed have finished (their length is the slower arm's steps
then); before, as pending. Then, per seed whose two budget runs finished, whether its equal-compute reading will be
kept (``ebmlab.claims.verdict`` rule 4: the arms' machine speeds within the tolerance, or unprobed runs that trained
side by side), and from which runs: a seed's run may exist once per CPU kind (``s<seed>~<kind>``,
``runners.pair_seed``), and the first pair that agrees is read. Where none does, the runs ``claims run`` will train
on this machine's kind are listed: a run of each arm that has none of this kind, or, where this kind has both
already, that pair made again under new names (``s<seed>~<kind>~<n>``; nothing is moved aside): the run that
recorded no machine speed, trained with the probe, or both, side by side, where their probed speeds lie too far
apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import EbmlabError
from . import arms as arms_mod
from .runners import (SeedPair, Task, _dir, _finished, _task, branch_plan, equal_compute_pair, equal_steps_reruns,
                      host_kind, other_options, pair_dirs, rerun_dir, scorer, seed_pairs)
from .spec import Claim, result_key


def run_state(task: Task) -> dict[str, Any]:
    """Where the run of ``task`` stands (module docstring): state, step, CPU-seconds trained, and a note."""
    from ..runs import RunDir

    where = Path(task[4])
    rd = RunDir(where)
    if not rd.config_path.is_file():
        return {"state": "not started", "step": 0, "cpu_s": 0.0}
    if diffs := other_options(task):
        return {"state": "other options", "step": 0, "cpu_s": 0.0, "note": "; ".join(diffs)}
    done = _finished(where)
    if done is not None:
        return {"state": "finished", "step": done.get("steps_run"), "cpu_s": done.get("cpu_s"),
                "speed": done.get("speed"), "spans": done.get("spans"), "scorer": scorer(done)}
    sessions = rd.sessions()
    last = sessions[-1] if sessions else {}
    kept = last.get("checkpointed")
    # a session that ended says where; one still running says its last checkpoint, or, before its first, the one it
    # resumed from (its start step)
    step = (last["end_step"] if last.get("end_step") is not None else kept.get("step") if isinstance(kept, dict)
            else last.get("start_step", 0))
    out: dict[str, Any] = {"state": "stopped", "step": step if isinstance(step, int) else 0, "cpu_s": rd.trained_cpu_seconds()}
    if rd.held():
        logged = [r.get("step") for r in rd.read_metrics() if r.get("kind") == "train"]
        out.update(state="training", logged_step=next((x for x in reversed(logged) if isinstance(x, int)), 0))
    elif not rd.checkpoint_path.is_file():
        out["note"] = "no checkpoint: starts again"
    return out


def _left(arm: arms_mod.Arm, row: dict[str, Any]) -> dict[str, Any]:
    """The training left of a run: CPU-seconds for a CPU-budgeted one, steps for one of fixed length."""
    if row["state"] == "finished":
        return {"left_cpu_s": 0.0}
    budget = arm.options.get("max_cpu_seconds")
    if isinstance(budget, (int, float)) and budget > 0:
        trained = row["cpu_s"] if row["state"] != "other options" and isinstance(row["cpu_s"], float) else 0.0
        return {"budget": f"{budget:g} CPU-s", "left_cpu_s": max(0.0, float(budget) - trained)}
    steps = arm.options.get("steps")
    if isinstance(steps, int) and steps < arms_mod.BUDGET_STEPS:
        return {"budget": f"{steps} steps", "left_steps": max(0, steps - int(row["step"] or 0))}
    return {"budget": "other budget"}


def plan_claim(claim: Claim, scale: str, *, seeds: int | None = None, out: str | Path | None = None,
               device: str | None = None, shard: tuple[int, int] | None = None) -> dict[str, Any]:
    """The runs ``claims run`` would make or read for ``claim`` at ``scale`` and where each stands (module
    docstring); nothing is trained or written."""
    from ..errors import require_int
    from .run import _device_kind

    if claim.status == "untested":
        raise EbmlabError(f"{claim.id} is untested: {claim.reason}")
    if claim.status == "known_answer":
        return {"known_answer": claim.test, "runs": []}
    if claim.runner != "train":
        raise EbmlabError(f"--dry-run lists the runs of claims whose runner is train; {claim.id}'s is "
                          f"{claim.runner} (its runs are made by its own command: run it without --dry-run)")
    if seeds is not None:
        require_int("--seeds", seeds, 1)
    kind = _device_kind(device)
    arms = arms_mod.plan(claim, scale, kind)
    arms_mod.check(claim, scale, arms)  # what `claims run` refuses before anything runs, refused here too
    n_seeds = seeds or int(claim.scales[scale].get("seeds", 3))
    root = (Path(out) if out is not None else Path("claims-runs")) / result_key(scale, kind)
    place = {"device": kind}
    unique = {a.key: a for a in arms.values()}
    sharing: dict[str, list[arms_mod.Arm]] = {}
    for a in arms.values():  # arms with the same options share their runs (a same-run claim's a and b)
        sharing.setdefault(a.key, []).append(a)
    tasks = [(a, s) for s in range(n_seeds) for a in unique.values()]
    every = []
    for a, s in tasks:
        both = sharing[a.key]
        row = {"arm": ", ".join(x.which for x in both), "label": "; ".join(x.label for x in both), "seed": s,
               "dir": str(_dir(root, a, s)), **run_state(_task(a, s, root, place))}
        every.append({**row, **_left(a, row)})
    rows = every if shard is None else every[shard[0]::shard[1]]
    pairs: list[dict[str, Any]] = []
    if equal_compute_pair(claim, arms):
        all_seeds = list(range(n_seeds))
        seed_pair_list = seed_pairs(claim, arms, all_seeds, root, place)
        dirs = pair_dirs(arms, all_seeds, root, seed_pair_list)
        if seed_pair_list is not None and shard is None:
            pairs, extra = _compute_pairs(arms, seed_pair_list, root, place)
            rows = rows + extra
        reruns = _equal_steps_rows(arms, dirs, root, place)  # sized from every budget run
        rows = rows + [r for r in reruns if shard is None or r["seed"] % shard[1] == shard[0]]
    return {"runs": rows, "root": str(root), "shard": list(shard) if shard else None, "pairs": pairs}


def _compute_pairs(arms: dict[str, arms_mod.Arm], seed_pair_list: list[SeedPair], root: Path,
                   place: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per seed whose two arms have finished runs, the pair its equal-compute reading will read (``seed_pair_list``,
    from ``runners.pair_seed``: of the seed's runs on each CPU kind, the first pair that verdict rules 4 and 8 keep)
    and how; where none is kept, the runs ``claims run`` will train on this machine, listed as rows of their own (the
    second list): an arm's run of this machine's kind where it has none, or, where this kind has the pair already
    and it was left out, that pair made again under new names — only the run that recorded no machine speed where
    one did, else both, side by side with ``--jobs 2`` (named in the reason: speeds too far apart, or two
    classifiers, each run's named)."""
    kind = host_kind()
    out, extra = [], []
    for p in seed_pair_list:
        s = p.seed
        if not p.how:
            continue
        shown = p.here or (p.dirs["a"].name, p.dirs["b"].name)
        names = "" if all(n == f"s{s}" for n in shown) else f" (runs {shown[0]} / {shown[1]})"
        out.append({"seed": s, "kept": p.kept, "how": f"{'kept' if p.kept else 'left out'}: {p.how}{names}",
                    "dirs": [str(p.dirs["a"]), str(p.dirs["b"])], "train": [str(d) for d in p.train.values()],
                    "side_by_side": p.here is not None and len(p.train) == 2})
        note = (f"again on this machine ({kind}): the seed's runs of this kind were left out" if p.here else
                f"on this machine's CPU kind ({kind}): the seed's runs ran at machine speeds apart")
        for w, d in p.train.items():
            row = {"arm": w, "label": arms[w].label, "seed": s, "dir": str(d),
                   **run_state(_task(arms[w], s, root, place, d)), "note": note}
            extra.append({**row, **_left(arms[w], row)})
    return out, extra


def _equal_steps_rows(arms: dict[str, arms_mod.Arm], dirs: dict[str, list[Path]], root: Path,
                      place: dict[str, Any]) -> list[dict[str, Any]]:
    """The equal-steps reruns' rows, sized from the budget runs each seed reads (``dirs``: their finished steps)."""
    n_seeds = len(dirs["a"])
    steps: dict[str, list[Any]] = {w: [(_finished(d) or {}).get("steps_run") for d in dirs[w]] for w in arms}
    fast, slow, redo = equal_steps_reruns(arms, n_seeds, steps)
    rows = []
    for s in range(n_seeds):
        if s not in redo or steps["a"][s] is None or steps["b"][s] is None:
            rows.append({"arm": "equal steps", "label": "the faster arm at the other's steps", "seed": s, "dir": "",
                         "state": "pending", "step": 0, "cpu_s": None,
                         "note": "made once both budget runs of this seed have finished"})
            continue
        a = redo[s]
        where = rerun_dir(root, a, dirs[fast][s])
        task = _task(a, s, root, place, where)
        row = {"arm": f"{fast} at {slow}'s steps", "label": a.label, "seed": s, "dir": str(where), **run_state(task)}
        left = _left(a, row)
        if row["state"] == "not started":
            at, why = branch_plan(task, dirs[fast][s])
            if at is not None:
                row["note"] = f"branches from its budget run's checkpoint at step {at}"
                left["left_steps"] = max(0, left.get("left_steps", 0) - at)
            elif why:
                row["note"] = f"trains from step 0: {why}"
        rows.append({**row, **left})
    return rows


def format_plan(claim: Claim, scale: str, plan: dict[str, Any]) -> str:
    """The plan as lines: one per run, then the training left in all."""
    if plan.get("known_answer"):
        return f"{claim.id} is a known answer: `claims run` runs its test {plan['known_answer']} (no runs)"
    part = f" (part {plan['shard'][0]}/{plan['shard'][1]})" if plan.get("shard") else ""
    lines = [f"{claim.id} at {scale}{part}: {len(plan['runs'])} runs under {plan['root']}"]
    if note := claim.scale_note(scale):
        lines.append(f"  the {scale} scale: {note}")
    for r in plan["runs"]:
        trained = f"step {r['step']}" + (f", {r['cpu_s']:.0f} CPU-s" if isinstance(r.get("cpu_s"), float) else "")
        if r["state"] == "training":
            trained = f"step {r['logged_step']} logged; at its last checkpoint {trained}"
        left = (f"; left {r['left_cpu_s']:.0f} of {r['budget']}" if r.get("left_cpu_s") and r.get("budget")
                else f"; left {r['left_steps']} of {r['budget']}" if r.get("left_steps") else "")
        note = f" — {r['note']}" if r.get("note") else ""
        lines.append(f"  {r['arm']:<14} seed {r['seed']}  {r['state']:<13} {trained}{left}{note}  [{r['label']}]")
    cpu = sum(r.get("left_cpu_s") or 0.0 for r in plan["runs"])
    steps = sum(r.get("left_steps") or 0 for r in plan["runs"])
    pending = sum(r["state"] == "pending" for r in plan["runs"])
    todo = sum(r["state"] != "finished" for r in plan["runs"])
    for p in plan.get("pairs") or []:
        todo_here = (f" — to train on this machine{' side by side (--jobs 2)' if p.get('side_by_side') else ''}: "
                     f"{' and '.join(p['train'])}" if p.get("train") else "")
        lines.append(f"  equal compute  seed {p['seed']}  {p['how']}{todo_here}")
    lines.append(f"{todo} of {len(plan['runs'])} runs to make or finish: {cpu:.0f} CPU-s of budgeted training left"
                 + (f", {steps} steps of fixed-length runs" if steps else "")
                 + (f", {pending} equal-steps rerun{'s' if pending != 1 else ''} not yet sized" if pending else "")
                 + " (evaluations not counted); nothing was run")
    return "\n".join(lines)
