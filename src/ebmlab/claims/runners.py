"""The runners that make a claim's runs and read its per-seed values (``comparison.runner`` of a spec):

- ``train`` (the default): each arm is ``ebmlab train`` of its method on the scale's data, one run per seed; the
  value of a seed is its run's metric (final evaluation; the linear probe's ``probe_test_error`` from ``ebmlab
  eval --probe``; the training record's ``log10_max_abs_energy``). An equal-compute claim also gets its
  equal-steps pair (:func:`_equal_steps`).
- ``grid``: each arm is its method over every setting of the scale's ``grid`` file (``ebmlab bench --grid``), the
  value of a setting its metric's mean over the seeds; the arms are paired by setting, in the grid's order.
- ``sr``: each arm is an ``ebmlab sr`` model trained and evaluated per seed.
- ``semisup``: both arms augment a semi-supervised classifier (``ebmlab semisup``'s protocol) with one trained run
  of the arm's method (the run is shared when the arms' training options agree); an arm's ``rho`` weighs its
  augmentation (0: none), the value of a seed is the classifier's test error (a fraction, as the metric
  ``test_error`` is everywhere) on that seed's label subset.

Every runner returns the per-seed (or per-setting) values of each arm with None where a run diverged (its seeds
listed per arm in ``diverged``), the steps and CPU-seconds the runs got, and each arm's references (noise floor,
real data, collapsed samples) of its metric at the runs' sample count. Finished runs are read, never re-evaluated.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import EbmlabError
from . import arms as arms_mod
from .curves import finite_number
from .arms import Arm
from .spec import Claim

Task = tuple[str, str, int, dict[str, Any], str]  # method, data, seed, overrides, run directory (ebmlab.bench)
REFERENCE_KEYS = (("real", "real_vs_real"), ("noise", "noise_floor"), ("collapsed", "collapse_floor"))


def _dir(root: Path, arm: Arm, seed: int, kind: str | None = None) -> Path:
    """The run directory of ``arm`` at ``seed``: ``s<seed>``, or ``s<seed>~<kind>`` for the seed's run made on a CPU
    of another kind (:func:`host_kind`) than its first, for an equal-compute pair (:func:`pair_seed`)."""
    return root / "arms" / arm.key / (f"s{seed}~{kind}" if kind else f"s{seed}")


def _task(arm: Arm, seed: int, root: Path, place: dict[str, Any], where: Path | None = None) -> Task:
    """A run of ``arm`` at ``seed`` (in ``where``, else its seed's first directory); on the CPU with the machine's
    speed probed (run option ``speed_probe``), so that an equal-compute reading can tell arms that ran at different
    speeds (``ebmlab.machine``). A budgeted run with evaluations during training keeps a checkpoint at each
    (``keep_checkpoints``): its equal-steps rerun branches from the last one below its steps
    (:func:`branch_plan`)."""
    probe = {"speed_probe": True} if place.get("device") == "cpu" else {}
    budgeted = any(arm.options.get(k) for k in arms_mod.BUDGETS) and arm.options.get("eval_every")
    keep = {"keep_checkpoints": True} if budgeted else {}
    return (arm.method, arm.data, seed, {**arms_mod.QUIET, **probe, **keep, **arm.options, **place},
            str(where if where is not None else _dir(root, arm, seed)))


def host_kind(info: dict[str, str] | None = None) -> str:
    """A CPU's kind as a seed directory names it: torch's vector capability, the family and the model
    (``avx2-f25m1``), of this machine or of a session's ``cpu`` record (``ebmlab.machine.cpu_info``). Two CPUs of
    one kind run the same kernels at comparable speeds; of two kinds, the same CPU-seconds are not the same
    compute."""
    from ..machine import cpu_info

    i = info if info is not None else cpu_info()
    raw = f"{i.get('capability', 'cpu')}-f{i.get('cpu_family', 'x')}m{i.get('model', 'x')}".lower()
    return re.sub(r"[^a-z0-9-]", "", raw)


def run_kind(run_dir: Path) -> str | None:
    """The CPU kind (:func:`host_kind`) that a run trained on: the one its training sessions recorded, None when they
    recorded none or more than one."""
    from ..runs import RunDir

    kinds = {host_kind(s["cpu"]) for s in RunDir(run_dir).sessions()
             if isinstance(s.get("cpu"), dict) and s.get("end_step") != s.get("start_step")}
    return kinds.pop() if len(kinds) == 1 else None


def seed_dirs(root: Path, arm: Arm, seed: int) -> list[Path]:
    """The run directories of ``arm`` at ``seed``: its first (``s<seed>``), then those made on other CPU kinds or
    again on one (``s<seed>~<kind>``, ``s<seed>~<kind>~<n>``: :func:`pair_seed`), by name; a directory set aside
    (``.superseded-<n>``) is none of them."""
    first = _dir(root, arm, seed)
    others = [p for p in first.parent.glob(f"s{seed}~*") if ".superseded-" not in p.name and p.is_dir()]
    return [first, *sorted(others, key=_name_order)]


def _name_order(p: Path) -> tuple[str, int]:
    """A seed's run of another kind by its kind's name, then its number (``~2`` before ``~10``)."""
    kind, _, n = p.name.partition("~")[2].partition("~")
    return kind, int(n) if n.isdigit() else 1


@dataclass
class SeedPair:
    """One seed's runs for an equal-compute reading (:func:`pair_seed`): the directory each arm's value is read from,
    whether the pair is kept (verdict rules 4 and 8) and how, and the runs still to make on this machine (arm →
    directory) to get a pair that is. Where the pair is left out and this machine's kind already has a run of each
    arm, ``here`` names that pair (its names: ``how`` is its reason)."""

    seed: int
    dirs: dict[str, Path]
    kept: bool
    how: str
    train: dict[str, Path] = field(default_factory=dict)
    read: dict[str, dict[str, Any]] = field(default_factory=dict)  # arm → its run's result (``_finished``), if any
    here: tuple[str, str] | None = None


def _pair_rule(ra: dict[str, Any], rb: dict[str, Any]) -> tuple[bool, str]:
    """Verdict rules 4 (machine speeds within the tolerance) and 8 (one classifier) on two finished runs."""
    from .verdict import scorer_apart, seed_pair

    kept, how = seed_pair(ra.get("speed"), rb.get("speed"), ra.get("spans"), rb.get("spans"))
    if kept and (apart := scorer_apart({"scorer": {"a": [scorer(ra)], "b": [scorer(rb)]}})):
        return False, f"{how}, but {apart[0]} (rule 8)"
    return kept, how


def fresh_name(root: Path, arms: dict[str, Arm], seed: int, kind: str) -> str:
    """The first run name of this machine's kind that no arm's seed has yet: ``s<seed>~<kind>``, then
    ``s<seed>~<kind>~2``, ``~3``, …"""
    n = 1
    while any((root / "arms" / a.key / (name := f"s{seed}~{kind}" + (f"~{n}" if n > 1 else ""))).exists()
              for a in arms.values()):
        n += 1
    return name


def _again(arms: dict[str, Arm], seed: int, root: Path, kind: str,
           here: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Path]:
    """The runs to make again on this machine for a seed whose pair of this kind (``here``: the two runs' results)
    was left out: the run that recorded no machine speed where only one did not (trained with the probe, the pair is
    judged on the probes), else both arms, side by side (``--jobs 2``), into a name neither has
    (:func:`fresh_name`) — a machine's speed drifts within hours (the same host's probe read 0.217, 0.15 and 0.19
    CPU-s within a day), and only runs trained at one time are sure to share it."""
    from ..machine import speed_value

    unprobed = [w for w, r in zip(("a", "b"), here) if speed_value(r.get("speed")) is None]
    which = unprobed if len(unprobed) == 1 else ["a", "b"]
    name = fresh_name(root, arms, seed, kind)
    return {w: root / "arms" / arms[w].key / name for w in which}


def pair_seed(arms: dict[str, Arm], seed: int, root: Path, kind: str) -> SeedPair:
    """Which runs of its two arms a seed's equal-compute reading reads. A seed's run may exist once per CPU kind
    (:func:`seed_dirs`): the first pair of finished runs, in the order the directories are listed, that rules 4
    and 8 keep is read. Where none is kept, each arm that has no finished run of this machine's kind (``kind``)
    gets one to train here (``s<seed>~<kind>``); where both have one, the pair of this kind is made again
    (:func:`_again`), into new names. Until then the seed's first pair is read (and left out by the verdict), and
    the reason given is that of the pair of this kind where there is one. A run is never moved or replaced for
    this: the runs another claim reads stay where they are."""
    finished = {w: [(d, r) for d in seed_dirs(root, a, seed) if (r := _finished(d)) is not None]
                for w, a in arms.items()}
    first = {w: (finished[w][0][0] if finished[w] else _dir(root, a, seed)) for w, a in arms.items()}
    read = {w: finished[w][0][1] for w in arms if finished[w]}
    if not finished["a"] or not finished["b"]:
        return SeedPair(seed, first, False, "", read=read)
    how0, here = "", None
    for da, ra in finished["a"]:
        for db, rb in finished["b"]:
            kept, how = _pair_rule(ra, rb)
            if kept:
                return SeedPair(seed, {"a": da, "b": db}, True, how, read={"a": ra, "b": rb})
            how0 = how0 or how
            if here is None and run_kind(da) == kind == run_kind(db):
                here = (da, db, ra, rb, how)
    if here is not None:
        da, db, ra, rb, how = here
        return SeedPair(seed, first, False, how, _again(arms, seed, root, kind, (ra, rb)), read, (da.name, db.name))
    train = {w: _dir(root, a, seed, kind) for w, a in arms.items()
             if not any(run_kind(d) == kind for d, _ in finished[w])}
    return SeedPair(seed, first, False, how0, train, read)


def equal_compute_pair(claim: Claim, arms: dict[str, Arm]) -> bool:
    """Whether a claim compares two arms at equal compute (and so also at equal steps: :func:`_equal_steps`)."""
    return (claim.comparison or {}).get("budget") == "equal_wall_time" and set(arms) == {"a", "b"}


def pairs_apply(claim: Claim, arms: dict[str, Arm], place: dict[str, Any]) -> bool:
    """Whether a claim's seeds pair their runs by machine speed: an equal-compute comparison of two arms with their
    own runs, read on the CPU clock."""
    return equal_compute_pair(claim, arms) and arms["a"].key != arms["b"].key and place.get("device") == "cpu"


def seed_pairs(claim: Claim, arms: dict[str, Arm], seeds: list[int], root: Path, place: dict[str, Any]
               ) -> list[SeedPair] | None:
    """Each seed's pair as the runs there now give it (:func:`pair_seed`, nothing trained); None where the claim's
    seeds do not pair their runs (:func:`pairs_apply`: each seed reads ``s<seed>``)."""
    if not pairs_apply(claim, arms, place):
        return None
    kind = host_kind()
    return [pair_seed(arms, s, root, kind) for s in seeds]


def pair_dirs(arms: dict[str, Arm], seeds: list[int], root: Path, pairs: list[SeedPair] | None
              ) -> dict[str, list[Path]]:
    """Arm → the run directory each seed reads: its pair's (``pairs``, as :func:`seed_pairs` gives them), else
    ``s<seed>``."""
    if pairs is None:
        return {w: [_dir(root, a, s) for s in seeds] for w, a in arms.items()}
    return {w: [p.dirs[w] for p in pairs] for w in arms}


def _paired_dirs(claim: Claim, arms: dict[str, Arm], seeds: list[int], root: Path, jobs: int,
                 place: dict[str, Any], done: dict[str, dict[str, Any]]) -> dict[str, list[Path]]:
    """Arm → the run directory each seed's value is read from: its first, or where its arms' runs ran at machine
    speeds apart, a pair made on one CPU kind (:func:`pair_seed`), the missing runs trained here first (their
    results added to ``done``)."""
    pairs = seed_pairs(claim, arms, seeds, root, place)
    if pairs is None:
        return pair_dirs(arms, seeds, root, None)
    kind = host_kind()
    extra = [_task(arms[w], p.seed, root, place, d) for p in pairs for w, d in p.train.items()]
    if extra:
        for p in pairs:
            if p.train:
                print(f"claims: seed {p.seed}'s runs are left out of equal compute ({p.how}); "
                      f"{' and '.join(str(d) for d in p.train.values())} train{'s' if len(p.train) == 1 else ''} "
                      f"on this machine ({kind})")
        done.update(_execute(extra, jobs, root))
        pairs = [pair_seed(arms, s, root, kind) if p.train else p for s, p in zip(seeds, pairs)]
    for p in pairs:
        for w, r in p.read.items():
            done.setdefault(str(p.dirs[w]), r)
    return pair_dirs(arms, seeds, root, pairs)


def _resolved(task: Task) -> Any:
    """The resolved configuration of a task's run, as ``ebmlab.bench`` trains it (one thread unless it says)."""
    from ..config import resolve_config

    method, data, seed, overrides, _ = task
    return resolve_config(method, data, overrides={"threads": 1, **overrides, "seed": seed})


def branch_plan(rerun: Task, source: Path, cfg: Any = None) -> tuple[int | None, str]:
    """Where the equal-steps rerun ``rerun`` (no run in its directory yet; ``cfg``: its resolved configuration, if
    already made) can start: the last checkpoint that the same arm's budget run ``source`` kept below the rerun's
    steps (``ebmlab.branch``) and "", or None and why not ("" when the budget run kept none)."""
    from ..branch import branch_point, check_branch
    from ..config import saved_config
    from ..runs import RunDir

    cfg = cfg if cfg is not None else _resolved(rerun)
    step = branch_point(source, cfg.run.steps)
    if step is None:
        return None, ""
    try:
        check_branch(RunDir(source), saved_config(RunDir(source)), cfg, step)
    except EbmlabError as exc:
        return None, str(exc)
    return step, ""


def _branch_reruns(tasks: list[Task], sources: list[Path], say: Callable[[str], Any] = print) -> None:
    """Each rerun whose directory holds no run starts as a branch of its arm's budget run (:func:`branch_plan`), said
    so; one that cannot is trained from step 0, and the reason said."""
    from ..branch import branch
    from ..runs import RunDir

    for t, src in zip(tasks, sources):
        if RunDir(t[4]).exists() or not RunDir(src).exists():
            continue
        cfg = _resolved(t)
        step, why = branch_plan(t, src, cfg)
        if step is None:
            if why:
                say(f"claims: {t[4]} trains from step 0: {why}")
            continue
        branch(src, t[4], cfg, step)
        say(f"claims: {t[4]} branches from {src} at its kept step {step}: steps 1–{step} are that run's, "
            f"{cfg.run.steps - step} are trained")


def _finished(run_dir: Path) -> dict[str, Any] | None:
    """The result of a run that finished in an earlier session (its summary, steps and CPU-seconds), else None."""
    from ..atomic import read_json
    from ..runs import RunDir

    rd = RunDir(run_dir)
    if not (rd.summary_path.is_file() and rd.record_path.is_file() and rd.config_path.is_file()):
        return None
    try:
        summary, record, config = read_json(rd.summary_path), read_json(rd.record_path), read_json(rd.config_path)
        last = record["sessions"][-1]
        done = last.get("status") == "ended" and (summary.get("step") == config["run"]["steps"]
                                                  or (summary.get("budget") or {}).get("stopped_by"))
    except (EbmlabError, KeyError, IndexError, TypeError):
        return None
    if not done:
        return None
    from ..machine import run_speed, training_spans

    sessions = record["sessions"]  # read once above: the speed and the spans come from it
    return {"status": "ok", "metrics": summary.get("metrics", {}), "steps_run": summary.get("step"),
            "cpu_s": rd.trained_cpu_seconds(), "train_s": rd.trained_seconds(), "speed": run_speed(sessions),
            "spans": training_spans(sessions)}


def other_options(task: Task) -> list[str]:
    """How the run directory of ``task`` was made with other options than the task's ("key: there, now"; empty when
    it matches or holds no run), compared as a resumed run's are (``config.option_differences``)."""
    from ..config import option_differences, resolve_config, saved_config
    from ..placement import RESUMABLE
    from ..runs import RunDir

    method, data, seed, overrides, where = task
    run = RunDir(where)
    if not run.config_path.is_file():
        return []
    try:
        saved = saved_config(run)
    except EbmlabError as exc:
        return [f"its config.json cannot be read: {exc}"]
    now = resolve_config(method, data, overrides={"threads": 1, **overrides, "seed": seed})
    return [f"{k}: {a!r} there, {b!r} now" for k, (a, b) in option_differences(saved, now, RESUMABLE).items()]


def set_aside_if_other(task: Task, say: Callable[[str], Any] = print) -> Path | None:
    """A run directory made with other options than the task's (:func:`other_options`; the arm's key hashes the
    spec's options, not the presets they resolve through: a preset changed since leaves the key as it was) is
    renamed ``<dir>.superseded-<n>`` and said so, so that a fresh run takes its place rather than a finished one of
    another experiment being read, or a stopped one refusing to resume; returns the new name, None when it matched
    (or there was none)."""
    diffs = other_options(task)
    if not diffs:
        return None
    d = Path(task[4])
    n = 1
    while (new := d.with_name(f"{d.name}.superseded-{n}")).exists():
        n += 1
    d.rename(new)
    say(f"claims: {d} was made with other options than its arm's today ({'; '.join(diffs)}); set aside as "
        f"{new.name}, trained again")
    return new


def _execute(tasks: list[Task], jobs: int, root: Path) -> dict[str, dict[str, Any]]:
    """Run directory → result of each task: finished runs read (a run of other options set aside:
    :func:`set_aside_if_other`), the others trained (``jobs`` at a time)."""
    from ..bench.run import _run_all

    out: dict[str, dict[str, Any]] = {}
    todo = []
    for t in tasks:
        set_aside_if_other(t)
        prior = _finished(Path(t[4]))
        if prior is not None:
            out[t[4]] = prior
        else:
            todo.append(t)
    if todo:
        for t, r in zip(todo, _run_all(todo, jobs, "claims", root, runs_dir=root / "arms")):
            # read from its run directory as a later read of it is (the seconds as recorded there, to the ms)
            out[t[4]] = (_finished(Path(t[4])) if r.get("status") == "ok" else None) or r
    return out


def _post_metrics(run_dir: Path, metric: str) -> dict[str, Any]:
    """Metrics a run's summary does not hold: the linear probe (cached in the run directory) and the training
    record's."""
    from ..metrics import probe, registry, trajectory

    base = registry.split_prefix(metric)[1]
    if base in trajectory.METRICS:
        return trajectory.from_record(run_dir)
    if base in probe.METRICS:
        cache = run_dir / "claims_probe.json"
        if not cache.is_file():
            from ..api import evaluate_run
            from ..atomic import write_json

            m = evaluate_run(run_dir, probe=True, device="cpu", keep=False)["metrics"]
            write_json(cache, {k: v for k, v in m.items() if k.startswith("probe_")})
        cached: dict[str, Any] = json.loads(cache.read_text())
        return cached
    return {}


def _value(r: dict[str, Any] | None, run_dir: Path, metric: str) -> float | None:
    if r is None or r.get("status") != "ok":
        return None
    m = dict(r.get("metrics") or {})
    if metric not in m:
        m.update(_post_metrics(run_dir, metric))
    return finite_number(m.get(metric))


def _references(run_dir: Path, metric: str) -> dict[str, float]:
    """The real-data, noise-floor and collapsed values of ``metric`` (its base, for an extra sample set's) that a
    run's summary records at its sample count."""
    from ..metrics import registry
    from ..atomic import read_json

    path = run_dir / "summary.json"
    if not path.is_file():
        return {}
    s = read_json(path)
    base = registry.split_prefix(metric)[1]
    return {name: float(v) for name, key in REFERENCE_KEYS
            if isinstance(v := (s.get(key) or {}).get(base), (int, float)) and not isinstance(v, bool)}


def trained_at(run_dirs: list[Path]) -> list[str]:
    """The commits the sessions of these runs trained at (``run.json``), each once, in order of first use: one commit
    unless a run resumed across commits or an arm reused a run that an earlier commit trained."""
    from ..atomic import read_json
    from ..runs import RunDir

    seen: list[str] = []
    for d in run_dirs:
        path = RunDir(d).record_path
        try:
            sessions = read_json(path).get("sessions", []) if path.is_file() else []
        except (EbmlabError, AttributeError):
            continue
        for s in sessions if isinstance(sessions, list) else []:
            c = s.get("git_commit") if isinstance(s, dict) else None
            if isinstance(c, str) and c not in seen:
                seen.append(c)
    return seen


def scorer(r: dict[str, Any] | None) -> str | None:
    """The SHA-256 of the classifier that scored a finished run (``r``, as :func:`_finished` reads it: its summary's
    ``clf_sha256``; the stacked modes and the classifier-feature metrics), None where it has none: two runs scored
    by different classifiers are not one measurement (``ebmlab.claims.verdict`` rule 8)."""
    v = ((r or {}).get("metrics") or {}).get("clf_sha256")
    return v if isinstance(v, str) else None


def _arm_values(arm: Arm, dirs: list[Path], done: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """An arm's per-seed values and what its runs got, read from ``dirs`` (one per seed, in order)."""
    vals, steps, cpu, wall, diverged, speed, spans, scorers = [], [], [], [], [], [], [], []
    for s, d in enumerate(dirs):
        r = done.get(str(d))
        vals.append(_value(r, d, arm.metric))
        if r is not None and r.get("status") == "diverged":
            diverged.append(s)
        steps.append((r or {}).get("steps_run"))
        c, w = (r or {}).get("cpu_s"), (r or {}).get("train_s")
        cpu.append(round(c, 1) if isinstance(c, (int, float)) else None)
        wall.append(round(w, 1) if isinstance(w, (int, float)) else None)
        speed.append((r or {}).get("speed"))
        spans.append((r or {}).get("spans"))
        scorers.append(scorer(r))
    refs = next((x for d in dirs if (x := _references(d, arm.metric))), {})
    return {"values": vals, "steps": steps, "cpu_s": cpu, "train_s": wall, "diverged": diverged, "references": refs,
            "speed": speed, "spans": spans, "scorer": scorers, "trained_at": trained_at(dirs),
            "runs": [d.name for d in dirs]}


def _assemble(per_arm: dict[str, dict[str, Any]], n: int) -> dict[str, Any]:
    out: dict[str, Any] = {"seeds": list(range(n))}
    for key in ("steps", "cpu_s", "train_s", "diverged", "references", "trained_at", "speed", "spans", "scorer"):
        out[key] = {w: v.get(key, []) for w, v in per_arm.items()}
    runs = {w: v["runs"] for w, v in per_arm.items() if "runs" in v}
    if any(name != f"s{s}" for names in runs.values() for s, name in enumerate(names)):
        out["runs"] = runs  # the seeds read from a run made on another CPU kind (``pair_seed``) name their runs
    out.update({w: v["values"] for w, v in per_arm.items()})
    return out


def run_train(claim: Claim, sc: dict[str, Any], arms: dict[str, Arm], n_seeds: int, *, root: Path, jobs: int,
              place: dict[str, Any], shard: tuple[int, int] | None) -> dict[str, Any]:
    unique = {a.key: a for a in arms.values()}
    tasks = [_task(a, s, root, place) for s in range(n_seeds) for a in unique.values()]
    equal_steps = equal_compute_pair(claim, arms)
    if shard is not None:
        done = _execute(tasks[shard[0]::shard[1]], jobs, root)
        if equal_steps:
            mine = [s for s in range(n_seeds) if s % shard[1] == shard[0]]
            _paired_dirs(claim, arms, mine, root, jobs, place, done)
            _shard_reruns(claim, arms, n_seeds, root=root, jobs=jobs, place=place, shard=shard)
        return {}
    done = _execute(tasks, jobs, root)
    dirs = _paired_dirs(claim, arms, list(range(n_seeds)), root, jobs, place, done)
    out = _assemble({w: _arm_values(a, dirs[w], done) for w, a in arms.items()}, n_seeds)
    out["clock"] = "wall" if place.get("device") == "cuda" else "cpu"  # what equal compute is read on
    check = (claim.comparison or {}).get("collapse_check")
    if check:
        out["collapse_check"] = _check_values(check, {w: list(ds) for w, ds in dirs.items()}, done)
    out.update(_curves(claim, arms, dirs, root, out["clock"]))
    if equal_steps:
        out["equal_steps"] = _equal_steps(arms, dirs, out["steps"], root=root, jobs=jobs, place=place, check=check)
    return out


def _check_values(metric: str, dirs: dict[str, list[Path | None]], done: dict[str, dict[str, Any]]
                  ) -> dict[str, Any]:
    """The spec's ``collapse_check`` metric of the same runs (per arm, per seed; None where a seed has no run) and its
    references, for the verdict's rule 2 (``ebmlab.claims.verdict``)."""
    out: dict[str, Any] = {"metric": metric, "references": {}}
    for w, ds in dirs.items():
        out[w] = [_value(done.get(str(d)), d, metric) if d is not None else None for d in ds]
        out["references"][w] = next((x for d in ds if d is not None and (x := _references(d, metric))), {})
    return out


def curve_labels(claim: Claim, arms: dict[str, Arm]) -> tuple[str, dict[str, str]]:
    """The curves' axis (the comparison's metric) and each arm's label, naming the summary key an arm reads where it
    is not that metric (VCD's ``noise_modes``, KALE's ``base_hq``)."""
    c = claim.comparison or {}
    metric = str(c.get("metric", arms["a"].metric))
    return metric, {w: str((c.get(w) or {}).get("label", w)) + (f" [{a.metric}]" if a.metric != metric else "")
                    for w, a in arms.items()}


def _curves(claim: Claim, arms: dict[str, Arm], dirs: dict[str, list[Path]], root: Path, clock: str = "cpu"
            ) -> dict[str, Any]:
    """Where the arms evaluated during training (``eval_every``): their learning curves (``ebmlab.claims.curves``)
    from their runs ``dirs`` (arm → one per seed), read at equal steps and at equal compute (on ``clock``: CPU
    seconds, or wall seconds for runs on a GPU), and their picture beside the claim's results
    (``results/<id>-<scale>-curves.png``, the scale as the result's key); nothing where no arm has more than its
    final point."""
    from . import curves

    got = {w: [curves.run_curve(d, a.metric, clock) for d in dirs[w]] for w, a in arms.items()}
    if not any(len(c) > 1 for runs in got.values() for c in runs):
        return {}
    picture = claim.path.parent / "results" / f"{claim.id}-{root.name.replace('@', '-')}-curves.png"
    metric, labels = curve_labels(claim, arms)
    curves.plot(got, labels, metric, picture, clock)
    return {"curves": {w: [[list(p) for p in c] for c in runs] for w, runs in got.items()},
            "curve_readings": curves.readings(got, clock), "curves_picture": picture.name}


def equal_steps_reruns(arms: dict[str, Arm], n_seeds: int, steps: dict[str, list[Any]]
                       ) -> tuple[str, str, dict[int, Arm]]:
    """The arm that trained more steps in the budget (on average over the seeds it has steps for), the other, and
    per seed where both budget runs have steps, the faster arm's rerun (no budget) to the slower arm's steps."""
    mean = {w: sum(x for x in steps[w] if x) / max(1, sum(1 for x in steps[w] if x)) for w in ("a", "b")}
    fast = "a" if mean["a"] > mean["b"] else "b"
    slow = "b" if fast == "a" else "a"
    redo: dict[int, Arm] = {}
    for s in range(n_seeds):
        n = steps[slow][s]
        if isinstance(n, int) and n > 0 and isinstance(steps[fast][s], int):
            opts = {k: v for k, v in arms[fast].options.items() if k not in arms_mod.BUDGETS}
            redo[s] = Arm(fast, arms[fast].label, arms[fast].method, arms[fast].data, {**opts, "steps": n},
                          arms[fast].metric, arms[fast].runner)
    return fast, slow, redo


def _branched_at(run_dir: Path) -> int | None:
    """The step of its budget run that a rerun branched from (its first session's ``branched_from``), or None."""
    from ..runs import RunDir

    sessions = RunDir(run_dir).sessions()
    step = ((sessions[0] if sessions else {}).get("branched_from") or {}).get("step")
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def rerun_dir(root: Path, rerun: Arm, source: Path) -> Path:
    """An equal-steps rerun's directory: its arm's key (which holds its steps, the other arm's), and the name of its
    own arm's budget run that the seed reads, which it branches from (``s<seed>``, or ``s<seed>~<kind>`` where that
    run was made on another CPU kind than the seed's first)."""
    return root / "arms" / rerun.key / source.name


def _shard_reruns(claim: Claim, arms: dict[str, Arm], n_seeds: int, *, root: Path, jobs: int,
                  place: dict[str, Any], shard: tuple[int, int]) -> None:
    """A part's share of the equal-steps reruns (``--shard i/n``), made after its budget runs: the reruns of the
    seeds that are its own (:func:`shard_seeds`) whose two budget runs have both finished by then, sized and
    branched as :func:`_equal_steps` does, the faster arm read from the budget runs finished so far. Nothing is
    recorded; the command without ``--shard`` reads these reruns and makes the rest (a seed whose other budget run
    was still training, or every seed anew if more finished seeds make the other arm the faster one)."""
    seeds = list(range(n_seeds))
    dirs = pair_dirs(arms, seeds, root, seed_pairs(claim, arms, seeds, root, place))
    steps = {w: [(_finished(d) or {}).get("steps_run") for d in dirs[w]] for w in arms}
    fast, _slow, redo = equal_steps_reruns(arms, n_seeds, steps)
    mine = [s for s in sorted(redo) if s % shard[1] == shard[0]]
    tasks = [_task(redo[s], s, root, place, rerun_dir(root, redo[s], dirs[fast][s])) for s in mine]
    _branch_reruns(tasks, [dirs[fast][s] for s in mine])
    _execute(tasks, jobs, root)


def _equal_steps(arms: dict[str, Arm], dirs: dict[str, list[Path]], steps: dict[str, list[Any]], *, root: Path,
                 jobs: int, place: dict[str, Any], check: str | None = None) -> dict[str, Any]:
    """The equal-steps pair of an equal-compute claim, from the budget runs ``dirs`` (arm → one per seed): the arm
    that trained more steps in the budget on average over the seeds (:func:`equal_steps_reruns`) is trained again in
    every seed (a new run, no budget) to exactly the steps the other arm reached in that seed, whose budget run is
    reused; the rerun starts at the last checkpoint its own budget run kept below those steps where there is one
    (:func:`_branch_reruns`). In a seed where the rerun arm's own budget run made fewer steps than the other's, its
    rerun trains past them: still equal steps. One arm for every seed keeps the row's reading one comparison ("b at
    a's steps"); its cost is that a seed trained again can move the mean across and make every seed's rerun anew. A
    seed where either budget run diverged is left out (None)."""
    n_seeds = len(dirs["a"])
    fast, slow, redo = equal_steps_reruns(arms, n_seeds, steps)
    where = {s: rerun_dir(root, a, dirs[fast][s]) for s, a in redo.items()}
    tasks = [_task(a, s, root, place, where[s]) for s, a in redo.items()]
    _branch_reruns(tasks, [dirs[fast][s] for s in redo])
    done = _execute(tasks, jobs, root)
    values = {fast: [_value(done.get(str(where[s])), where[s], redo[s].metric) if s in redo else None
                     for s in range(n_seeds)]}
    slow_done = {str(d): r for d in dirs[slow] if (r := _finished(d)) is not None}
    slow_values = _arm_values(arms[slow], dirs[slow], slow_done)
    values[slow] = slow_values["values"]
    out = {"a": values["a"], "b": values["b"], "seeds": list(range(n_seeds)),
           "steps": {w: [steps[slow][s] if s in redo else None for s in range(n_seeds)] for w in ("a", "b")},
           "retrained": fast, "keys": {fast: [redo[s].key for s in sorted(redo)]},
           "branched_at": {fast: [_branched_at(where[s]) if s in redo else None for s in range(n_seeds)]},
           "trained_at": {fast: trained_at([where[s] for s in sorted(redo)])},
           "scorer": {fast: [scorer(done.get(str(where[s]))) if s in redo else None for s in range(n_seeds)],
                      slow: slow_values["scorer"]}}
    if any(d.name != f"s{s}" for s, d in where.items()):
        out["runs"] = {fast: [where[s].name if s in redo else None for s in range(n_seeds)]}
    if check:
        out["collapse_check"] = _check_values(check, {fast: [where.get(s) for s in range(n_seeds)],
                                                      slow: list(dirs[slow])}, {**done, **slow_done})
    return out


def run_grid(claim: Claim, sc: dict[str, Any], arms: dict[str, Arm], n_seeds: int, *, root: Path, jobs: int,
             place: dict[str, Any], shard: tuple[int, int] | None) -> dict[str, Any]:
    from ..bench.grid import grid_settings, load_grid

    grid = load_grid(sc["grid"])
    tag = hashlib.sha256(json.dumps(grid, sort_keys=True, default=str).encode()).hexdigest()[:8]
    tasks, where = [], {}
    for w, arm in arms.items():
        for g, (label, setting) in enumerate(grid_settings(grid, arm.method)):
            for s in range(n_seeds):
                d = root / "arms" / f"{arm.key}-grid{tag}" / f"g{g}-s{s}"
                tasks.append((arm.method, arm.data, s, {**arms_mod.QUIET, **arm.options, **setting, **place}, str(d)))
                where[(w, g, s)] = (d, label)
    if shard is not None:
        _execute(tasks[shard[0]::shard[1]], jobs, root)
        return {}
    done = _execute(tasks, jobs, root)
    per_arm: dict[str, dict[str, Any]] = {}
    for w, arm in arms.items():
        n_set = len(grid_settings(grid, arm.method))
        vals, labels, diverged, steps = [], [], [], []
        refs: dict[str, float] = {}
        for g in range(n_set):
            seed_vals = []
            for s in range(n_seeds):
                d, label = where[(w, g, s)]
                r = done.get(str(d))
                refs = refs or _references(d, arm.metric)
                v = _value(r, d, arm.metric)
                if v is None and refs.get("noise") is not None:  # a diverged run scores as noise (verdict's rule)
                    diverged.append(f"g{g}-s{s}")
                    v = refs["noise"]
                seed_vals.append(v)
                steps.append((r or {}).get("steps_run"))
            ok = [v for v in seed_vals if v is not None]
            vals.append(sum(ok) / len(ok) if ok else None)
            labels.append(label)
        per_arm[w] = {"values": vals, "settings": labels, "diverged": diverged, "references": refs,
                      "runs": n_set * n_seeds, "steps": steps,
                      "trained_at": trained_at([where[(w, g, s)][0] for g in range(n_set) for s in range(n_seeds)])}
    return {**{w: v["values"] for w, v in per_arm.items()},
            "grid_settings": {w: v["settings"] for w, v in per_arm.items()},
            "diverged": {w: v["diverged"] for w, v in per_arm.items()},
            "references": {w: v["references"] for w, v in per_arm.items()},
            "steps": {w: v["steps"] for w, v in per_arm.items()},
            "trained_at": {w: v["trained_at"] for w, v in per_arm.items()},
            "pairing": f"grid settings by position (each the mean over {n_seeds} seeds); a diverged run scores as "
                       f"the noise floor"}


def run_sr(claim: Claim, sc: dict[str, Any], arms: dict[str, Arm], n_seeds: int, *, root: Path, jobs: int,
           place: dict[str, Any], shard: tuple[int, int] | None) -> dict[str, Any]:
    from ..atomic import read_json
    from ..runs import RunDir
    from ..sr import api

    per_arm = {}
    jobs_list = [(w, a, s) for s in range(n_seeds) for w, a in arms.items()]
    if shard is not None:
        jobs_list = jobs_list[shard[0]::shard[1]]
    for w, arm, s in jobs_list:
        d = _dir(root, arm, s)
        if not (d / "summary.json").is_file() or "test" not in read_json(d / "summary.json"):
            opts, args = arms_mod.sr_options(arm.options)
            api.train_sr(arm.data, arm.method, out=d, seed=s, options=opts or None, scale=int(sc.get("sr_scale", 4)),
                         progress=False, threads=1, data_dir=place.get("data_dir"), **args)
    if shard is not None:
        return {}
    for w, arm in arms.items():
        vals, cpu, wall = [], [], []
        for s in range(n_seeds):
            test = read_json(_dir(root, arm, s) / "summary.json").get("test", {})
            v = test.get(arm.metric)
            vals.append(float(v) if isinstance(v, (int, float)) else None)
            rd = RunDir(_dir(root, arm, s))  # the SR sessions record their training loop's seconds as train's do
            c, t = (rd.trained_cpu_seconds(), rd.trained_seconds()) if rd.record_path.is_file() else (None, None)
            cpu.append(None if c is None else round(c, 1))
            wall.append(None if t is None else round(t, 1))
        per_arm[w] = {"values": vals, "steps": [arm.options.get("steps")] * n_seeds, "cpu_s": cpu, "train_s": wall,
                      "diverged": [], "references": {},
                      "trained_at": trained_at([_dir(root, arm, s) for s in range(n_seeds)])}
    return _assemble(per_arm, n_seeds)


def run_semisup(claim: Claim, sc: dict[str, Any], arms: dict[str, Arm], n_seeds: int, *, root: Path, jobs: int,
                place: dict[str, Any], shard: tuple[int, int] | None) -> dict[str, Any]:
    from ..api import load_run
    from ..data import get_dataset
    from ..atomic import write_json
    from ..semisup import semisup_table

    support = {a.key: a for a in arms.values()}
    done = _execute([_task(a, 0, root, place) for a in support.values()], jobs, root)
    if shard is not None:
        return {}
    labels, steps = int(sc.get("labels", 1000)), int(sc.get("classifier_steps", 400))
    per_arm = {}
    for w, arm in arms.items():
        d = _dir(root, arm, 0)
        if (done.get(str(d)) or {}).get("status") != "ok":
            raise EbmlabError(f"{claim.id}: the {arm.method} run that augments arm {w} did not finish ({d})")
        rho = float(arm.extra.get("rho", 0.0))
        cache = d / f"semisup-rho{rho:g}-labels{labels}-steps{steps}-seeds{n_seeds}.json"
        if not cache.is_file():
            _, method, _ = load_run(d, "cpu")
            table = semisup_table(get_dataset(arm.data, data_dir=place.get("data_dir")), labels=labels, rhos=(rho,),
                                  seeds=n_seeds, steps=steps, method=method if rho > 0 else None, progress=False)
            write_json(cache, table)
        errs = json.loads(cache.read_text())["rows"][0]["errors"]
        per_arm[w] = {"values": [float(e) for e in errs], "steps": [steps] * n_seeds, "cpu_s": [None] * n_seeds,
                      "diverged": [], "references": {}, "trained_at": trained_at([d])}
    return _assemble(per_arm, n_seeds)


RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {"train": run_train, "grid": run_grid, "sr": run_sr,
                                                     "semisup": run_semisup}
