"""``claims run --dry-run``: each run of a claim listed with where it stands, read as ``claims run`` reads it
(finished, training, stopped, made with other options, not started), the training left, the equal-steps reruns
once they can be sized, a shard's part alone — and nothing trained or written."""

import json

from pathlib import Path

from ebmlab.claims.plan import plan_claim
from ebmlab.claims.runners import host_kind
from ebmlab.machine import WORKLOAD
from ebmlab.runs import RunDir
from ebmlab.claims.spec import get_claim
from ebmlab.cli import main

from .test_specs import _spec


def _states(plan):
    return [(r["arm"], r["seed"], r["state"]) for r in plan["runs"]]


def _files(root):
    return sorted((p.relative_to(root), p.stat().st_mtime_ns) for p in root.rglob("*"))


def _pairs_kept_or_left_out(claim, runs, specs, a, b, plan, capsys):
    """Whether seed 0's equal-compute reading will be kept (verdict rules 4 and 8) and, if not, what trains again:
    both runs side by side, or the one that recorded no machine speed, under a new name (nothing is moved)."""
    (a0, d_a), (b0, d_b) = a, b
    # both runs probed the machine's speed
    assert [p["seed"] for p in plan["pairs"]] == [0] and plan["pairs"][0]["dirs"] == [a0["dir"], b0["dir"]]
    for d, value in ((d_a, 1.0), (d_b, 2.0)):  # b's run on a machine twice as slow: left out, with what to move
        rec = json.loads((d / "run.json").read_text())
        for sess in rec["sessions"]:
            if "speed_probe" in sess:
                sess["speed_probe"]["cpu_s"] = [value] * len(sess["speed_probe"]["cpu_s"])
        (d / "run.json").write_text(json.dumps(rec))
    pair = plan_claim(claim, "small", out=runs)["pairs"][0]
    assert not pair["kept"] and "machine speeds 1 / 2 CPU-s of the probe (2.00×)" in pair["how"]
    capsys.readouterr()
    assert main(["claims", "run", "c", "--dry-run", "--specs", str(specs), "--out", str(runs)]) == 0
    again = {w: str(Path(d["dir"]).with_name(f"s0~{host_kind()}")) for w, d in (("a", a0), ("b", b0))}
    assert (f"left out: its arms ran at machine speeds 1 / 2 CPU-s of the probe (2.00×), not equal compute — to train "
            f"on this machine side by side (--jobs 2): {again['a']} and {again['b']}\n") in capsys.readouterr().out
    rec = json.loads((d_b / "run.json").read_text())  # b's run made before the probe: only it is to train again
    (d_b / "run.json").write_text(json.dumps({**rec, "sessions": [{k: v for k, v in x.items() if k != "speed_probe"}
                                                                   for x in rec["sessions"]]}))
    pair = plan_claim(claim, "small", out=runs)["pairs"][0]
    assert not pair["kept"] and "recorded no machine speed" in pair["how"] and pair["train"] == [again["b"]]
    assert main(["claims", "run", "c", "--dry-run", "--specs", str(specs), "--out", str(runs)]) == 0
    assert f"not verified — to train on this machine: {again['b']}\n" in capsys.readouterr().out
    # both probed at one speed, but scored by two classifiers (rule 8): left out, each run's classifier named
    for d in (d_a, d_b):
        rec = json.loads((d / "run.json").read_text())
        for sess in rec["sessions"]:
            sess["speed_probe"] = {"workload": WORKLOAD, "cpu_s": [1.0, 1.0]}
        (d / "run.json").write_text(json.dumps(rec))
    assert plan_claim(claim, "small", out=runs)["pairs"][0]["kept"]
    for d, sha in ((d_a, "ca256820dad92a7e"), (d_b, "32a26749b0951ca5")):
        summary = json.loads((d / "summary.json").read_text())
        (d / "summary.json").write_text(json.dumps({**summary, "metrics": {**summary["metrics"], "clf_sha256": sha}}))
    pair = plan_claim(claim, "small", out=runs)["pairs"][0]
    assert not pair["kept"] and "different classifiers (ca256820 / 32a26749)" in pair["how"]
    assert pair["dirs"] == [a0["dir"], b0["dir"]] and pair["train"] == [again["a"], again["b"]]


def test_a_dry_run_lists_each_runs_state_and_what_is_left_and_writes_nothing(tmp_path, capsys):
    specs = _spec(tmp_path / "specs", budget="equal_wall_time", seeds=1,
                  over="max_cpu_seconds = 0.5, eval_samples = 200, log_every = 1")  # a train line at every step
    runs, claim = tmp_path / "runs", get_claim("c", specs)
    assert main(["claims", "run", "c", "--dry-run", "--specs", str(specs), "--out", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "3 of 3 runs to make or finish: 1 CPU-s of budgeted training left, 1 equal-steps rerun not yet sized" \
        in out and "nothing was run" in out
    assert not runs.exists() and not (specs / "results").exists()
    # the first part of two (the runs are ordered seed by seed, arm by arm: a0 b0 → a0), trained
    assert main(["claims", "run", "c", "--shard", "0/2", "--specs", str(specs), "--out", str(runs)]) == 0
    before = _files(runs)
    plan = plan_claim(claim, "small", out=runs)
    assert _states(plan) == [("a", 0, "finished"), ("b", 0, "not started"), ("equal steps", 0, "pending")]
    a0, b0 = plan["runs"][:2]
    d_a, d_b = runs / "small" / "arms" / a0["dir"].split("/arms/")[1], runs / "small" / "arms" / b0["dir"].split(
        "/arms/")[1]
    summary = json.loads((d_a / "summary.json").read_text())
    assert a0["step"] == summary["step"] > 0 and a0["cpu_s"] >= 0.5 and a0["left_cpu_s"] == 0.0
    assert b0["left_cpu_s"] == 0.5 and b0["budget"] == "0.5 CPU-s"
    assert _states(plan_claim(claim, "small", out=runs, shard=(1, 2))) == [("b", 0, "not started")]
    assert _files(runs) == before  # the dry runs wrote nothing
    # the other part: the equal-steps rerun is sized, the faster arm at the slower one's steps
    assert main(["claims", "run", "c", "--shard", "1/2", "--specs", str(specs), "--out", str(runs)]) == 0
    plan = plan_claim(claim, "small", out=runs)
    steps = {r["arm"]: r["step"] for r in plan["runs"][:2]}
    fast, slow = ("a", "b") if steps["a"] > steps["b"] else ("b", "a")
    rerun = next(r for r in plan["runs"] if r["arm"].endswith("'s steps"))  # after any pair to train again
    assert rerun["arm"] == f"{fast} at {slow}'s steps" and rerun["state"] == "not started"
    assert rerun["left_steps"] == steps[slow] and rerun["budget"] == f"{steps[slow]} steps"
    _pairs_kept_or_left_out(claim, runs, specs, (a0, d_a), (b0, d_b), plan, capsys)
    # a run whose final evaluation was killed is stopped (its steps kept), such a run held by a process is training,
    # one made with other options is set aside by `claims run` and trained again — each said so
    for d in (d_a, d_b):
        (d / "summary.json").unlink()
    with RunDir(d_b).lock():  # held, as by a process training it
        held = plan_claim(claim, "small", out=runs)
    assert held["runs"][0]["state"] == "stopped" and held["runs"][0]["step"] == a0["step"]
    assert held["runs"][1]["state"] == "training" and held["runs"][1]["logged_step"] > 0
    # a resumed run before its first checkpoint of the new session is at the checkpoint it resumed from
    rec = json.loads((d_b / "run.json").read_text())
    resumed = {**rec, "sessions": [*rec["sessions"], {"start_step": 7, "status": "running"}]}
    (d_b / "run.json").write_text(json.dumps(resumed))
    with RunDir(d_b).lock():  # held, as by a process training it
        assert plan_claim(claim, "small", out=runs)["runs"][1]["step"] == 7
    (d_b / "run.json").write_text(json.dumps(rec))
    assert held["runs"][2]["state"] == "pending"  # a budget run unfinished: the rerun's length is not known
    cfg = json.loads((d_b / "config.json").read_text())
    cfg["method_config"]["lr_g"] = 0.5
    (d_b / "config.json").write_text(json.dumps(cfg))
    other = plan_claim(claim, "small", out=runs)["runs"][1]
    assert other["state"] == "other options" and "lr_g" in other["note"] and other["left_cpu_s"] == 0.5


def test_a_dry_run_refuses_what_the_run_refuses(tmp_path, capsys):
    specs = _spec(tmp_path / "specs", a="gan", b="gan")
    assert main(["claims", "run", "c", "--dry-run", "--specs", str(specs), "--out", str(tmp_path / "r")]) == 2
    assert "resolve to the same experiment" in capsys.readouterr().err
    specs = _spec(tmp_path / "specs")
    assert main(["claims", "run", "c", "--dry-run", "--seeds", "0", "--specs", str(specs)]) == 2
    assert "--seeds" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_whether_a_run_is_held_is_read_without_taking_its_lock(tmp_path):
    """``RunDir.held`` reads the kernel's lock table (a run starting meanwhile is not refused); where there is none,
    the lock is tried and released — both say held while a process holds it, and not after."""
    from ebmlab.runs import _try_lock

    run = RunDir(tmp_path / "run")
    assert not run.held()  # no lock file: never run
    with run.lock():
        assert run.held() and _try_lock(run.path / ".lock")
    assert not run.held() and not _try_lock(run.path / ".lock")


def test_a_part_makes_the_equal_steps_reruns_of_its_seeds_and_records_nothing(tmp_path, capsys):
    specs = _spec(tmp_path / "specs", budget="equal_wall_time", seeds=3, over="max_cpu_seconds = 0.5, eval_samples = 200")
    runs, claim = tmp_path / "runs", get_claim("c", specs)
    (specs / "results").mkdir()
    recorded = json.dumps({"small": {"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0, 3.0]}})
    (specs / "results" / "c.json").write_text(recorded)
    # two seeds of a claim recorded over three: the whole command is refused, a part (which records nothing) is not
    assert main(["claims", "run", "c", "--seeds", "2", "--specs", str(specs), "--out", str(runs)]) == 2
    assert "over 3 seeds" in capsys.readouterr().err and not runs.exists()
    # part 1 of 2 (runs ordered a0 b0 a1 b1: b0, b1); seed 1's rerun is its own, but a1 has not run: none made
    assert main(["claims", "run", "c", "--seeds", "2", "--shard", "1/2", "--specs", str(specs), "--out",
                 str(runs)]) == 0
    assert _states(plan_claim(claim, "small", seeds=2, out=runs, shard=(1, 2))) == [
        ("b", 0, "finished"), ("b", 1, "finished"), ("equal steps", 1, "pending")]
    # part 0 of 2: a0 and a1, then seed 0's rerun (both its budget runs finished), not seed 1's (part 1's)
    assert main(["claims", "run", "c", "--seeds", "2", "--shard", "0/2", "--specs", str(specs), "--out",
                 str(runs)]) == 0
    plan = plan_claim(claim, "small", seeds=2, out=runs)
    states = _states(plan)
    assert states[:4] == [("a", 0, "finished"), ("b", 0, "finished"), ("a", 1, "finished"), ("b", 1, "finished")]
    steps = {(r["arm"], r["seed"]): r["step"] for r in plan["runs"][:4]}
    fast, slow = ("a", "b") if steps[("a", 0)] + steps[("a", 1)] > steps[("b", 0)] + steps[("b", 1)] else ("b", "a")
    assert states[4:] == [(f"{fast} at {slow}'s steps", 0, "finished"), (f"{fast} at {slow}'s steps", 1, "not started")]
    assert plan["runs"][4]["step"] == steps[(slow, 0)]
    # the part's dry run lists the reruns of its own seeds; part 1 now makes seed 1's; nothing was recorded
    assert _states(plan_claim(claim, "small", seeds=2, out=runs, shard=(1, 2)))[2:] == [
        (f"{fast} at {slow}'s steps", 1, "not started")]
    assert main(["claims", "run", "c", "--seeds", "2", "--shard", "1/2", "--specs", str(specs), "--out",
                 str(runs)]) == 0
    rerun = plan_claim(claim, "small", seeds=2, out=runs)["runs"][5]
    assert rerun["state"] == "finished" and rerun["step"] == steps[(slow, 1)]
    assert (specs / "results" / "c.json").read_text() == recorded
