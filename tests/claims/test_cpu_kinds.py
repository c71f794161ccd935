"""A seed's run once per CPU kind: an equal-compute claim whose two arms' runs of a seed ran on CPUs of different
kinds (machine speeds apart: verdict rule 4) reads a pair made on one kind, training the missing arm on this machine
into ``s<seed>~<kind>``, and moves or replaces no run (another claim may read it)."""

import json

from ebmlab import machine
from ebmlab.claims.plan import format_plan, plan_claim
from ebmlab.claims.render import render
from ebmlab.claims.runners import host_kind, pair_seed, run_kind, seed_dirs
from ebmlab.claims import arms as arms_mod
from ebmlab.claims.spec import get_claim, load_claims
from ebmlab.cli import main

from .test_specs import _spec

ZEN = {"capability": "AVX512", "cpu_family": "26", "model": "2", "model_name": "AMD EPYC"}
OLD = {"capability": "AVX2", "cpu_family": "25", "model": "1", "model_name": "AMD EPYC"}


def _host(monkeypatch, cpu, speed):
    """This machine as a CPU of kind ``cpu`` whose speed probe reads ``speed`` CPU-s."""
    monkeypatch.setattr(machine, "cpu_info", lambda: dict(cpu))
    monkeypatch.setattr(machine, "probe", lambda: speed)


def _made_on(run, cpu, speed):
    """Rewrite a run's record as made on ``cpu`` at ``speed`` (what another machine's session would have written)."""
    rec = json.loads((run / "run.json").read_text())
    for s in rec["sessions"]:
        s["cpu"] = dict(cpu)
        if "speed_probe" in s:
            s["speed_probe"]["cpu_s"] = [speed] * len(s["speed_probe"]["cpu_s"])
    (run / "run.json").write_text(json.dumps(rec))


def _files(d):
    return sorted((p.relative_to(d), p.stat().st_mtime_ns) for p in d.rglob("*") if p.is_file())


def test_host_kind_names_capability_family_and_model():
    assert host_kind(ZEN) == "avx512-f26m2" and host_kind(OLD) == "avx2-f25m1"
    assert host_kind({"capability": "AVX2"}) == "avx2-fxmx"  # no /proc/cpuinfo: still a name a directory can have
    assert host_kind({"capability": "DEFAULT", "cpu_family": "6 /x", "model": "85"}) == "default-f6xm85"


def test_a_seed_whose_arms_ran_on_two_cpu_kinds_reads_a_pair_made_on_one(tmp_path, monkeypatch, capsys):
    specs = _spec(tmp_path / "specs", budget="equal_wall_time", seeds=1,
                  over="max_cpu_seconds = 0.3, eval_samples = 200")
    runs, claim = tmp_path / "runs", get_claim("c", specs)
    args = ["claims", "run", "c", "--specs", str(specs), "--out", str(runs)]
    _host(monkeypatch, ZEN, 1.0)
    assert main(args) == 0
    first = json.loads((specs / "results" / "c.json").read_text())["small"]
    assert "runs" not in first and first["speed"] == {"a": [1.0], "b": [1.0]}  # both here: their own s0, kept
    arms = arms_mod.plan(claim, "small")
    a0, b0 = (seed_dirs(runs / "small", arms[w], 0)[0] for w in ("a", "b"))
    assert run_kind(a0) == run_kind(b0) == "avx512-f26m2"
    # b's run of seed 0 was made on an older, slower kind of CPU (as when another claim trained it there)
    _made_on(b0, OLD, 2.0)
    pair = pair_seed(arms, 0, runs / "small", "avx512-f26m2")
    assert not pair.kept and "2.00×" in pair.how and pair.train == {"b": b0.with_name("s0~avx512-f26m2")}
    # on a machine of b's kind, a is the arm to train again, beside its first run
    _host(monkeypatch, OLD, 2.0)
    plan = plan_claim(claim, "small", out=runs)
    assert plan["pairs"][0]["train"] == [str(a0.with_name("s0~avx2-f25m1"))]
    extra = [r for r in plan["runs"] if r["dir"] == str(a0.with_name("s0~avx2-f25m1"))]
    assert len(extra) == 1 and extra[0]["arm"] == "a" and extra[0]["state"] == "not started"
    assert "to train on this machine: " + str(a0.with_name("s0~avx2-f25m1")) in format_plan(claim, "small", plan)
    before = {w: _files(d) for w, d in (("a", a0), ("b", b0))}
    capsys.readouterr()
    assert main(args) == 0
    assert "s0~avx2-f25m1 trains on this machine (avx2-f25m1)" in capsys.readouterr().out
    assert {w: _files(d) for w, d in (("a", a0), ("b", b0))} == before  # neither first run moved or touched
    assert run_kind(a0.with_name("s0~avx2-f25m1")) == "avx2-f25m1"
    r = json.loads((specs / "results" / "c.json").read_text())["small"]
    assert r["runs"] == {"a": ["s0~avx2-f25m1"], "b": ["s0"]} and r["speed"] == {"a": [2.0], "b": [2.0]}
    summary = json.loads((a0.with_name("s0~avx2-f25m1") / "summary.json").read_text())
    assert r["a"] == [summary["metrics"]["modes"]] and r["steps"]["a"] == [summary["step"]]
    # the equal-steps rerun is named after its own arm's budget run that the seed reads (it branches from it)
    pair = r["equal_steps"]
    fast = pair["retrained"]
    rerun = runs / "small" / "arms" / pair["keys"][fast][0]
    assert [p.name for p in rerun.iterdir()] == [r["runs"][fast][0]]
    assert (r["equal_steps"]["steps"]["a"] == r["equal_steps"]["steps"]["b"]
            == [r["steps"]["b" if fast == "a" else "a"][0]])
    # the page names the runs read; the dry run says the pair kept; a second run trains nothing
    assert "runs s0~avx2-f25m1" in next(line for line in render(load_claims(specs)).splitlines() if "`c`" in line)
    plan = plan_claim(claim, "small", out=runs)
    assert plan["pairs"][0]["kept"] and "(runs s0~avx2-f25m1 / s0)" in plan["pairs"][0]["how"]
    everything = _files(runs)
    assert main(args) == 0
    assert _files(runs) == everything


def test_a_pair_of_this_kind_left_out_is_made_again_side_by_side_under_new_names(tmp_path, monkeypatch, capsys):
    specs = _spec(tmp_path / "specs", budget="equal_wall_time", seeds=1,
                  over="max_cpu_seconds = 0.3, eval_samples = 200")
    runs, claim = tmp_path / "runs", get_claim("c", specs)
    args = ["claims", "run", "c", "--specs", str(specs), "--out", str(runs)]  # one process: the mocked host holds
    _host(monkeypatch, ZEN, 1.0)
    assert main(args) == 0
    arms = arms_mod.plan(claim, "small")
    a0, b0 = (seed_dirs(runs / "small", arms[w], 0)[0] for w in ("a", "b"))
    # this machine's speed drifted between its two runs (as a host's does within hours): both of this kind, apart
    _made_on(a0, ZEN, 1.0)
    _made_on(b0, ZEN, 1.5)
    pair = pair_seed(arms, 0, runs / "small", "avx512-f26m2")
    assert not pair.kept and "1.50×" in pair.how and pair.here == ("s0", "s0")
    assert pair.train == {"a": a0.with_name("s0~avx512-f26m2"), "b": b0.with_name("s0~avx512-f26m2")}
    # where only one run of the pair recorded no speed, only it trains again
    rec = json.loads((b0 / "run.json").read_text())
    (b0 / "run.json").write_text(json.dumps({**rec, "sessions": [{k: v for k, v in x.items() if k != "speed_probe"}
                                                                   for x in rec["sessions"]]}))
    pair = pair_seed(arms, 0, runs / "small", "avx512-f26m2")
    assert "recorded no machine speed" in pair.how and pair.train == {"b": b0.with_name("s0~avx512-f26m2")}
    (b0 / "run.json").write_text(json.dumps(rec))
    before = {w: _files(d) for w, d in (("a", a0), ("b", b0))}
    capsys.readouterr()
    assert main(args) == 0
    assert "s0~avx512-f26m2 train on this machine" in capsys.readouterr().out
    assert {w: _files(d) for w, d in (("a", a0), ("b", b0))} == before  # neither first run moved or touched
    r = json.loads((specs / "results" / "c.json").read_text())["small"]
    assert r["runs"] == {"a": ["s0"], "b": ["s0~avx512-f26m2"]} and r["speed"] == {"a": [1.0], "b": [1.0]}  # 1st kept
    # the new pair apart too, and the first pair now of another kind with no speed: the reason given is that of the
    # pair of this kind (not the first pair's), and the next names are ~2
    _made_on(b0.with_name("s0~avx512-f26m2"), ZEN, 1.5)
    _made_on(b0, OLD, 1.0)
    rec = json.loads((b0 / "run.json").read_text())
    (b0 / "run.json").write_text(json.dumps({**rec, "sessions": [{k: v for k, v in x.items() if k != "speed_probe"}
                                                                   for x in rec["sessions"]]}))
    pair = pair_seed(arms, 0, runs / "small", "avx512-f26m2")
    assert pair.here == ("s0", "s0~avx512-f26m2") and "1.50×" in pair.how
    assert pair.train == {"a": a0.with_name("s0~avx512-f26m2~2"), "b": b0.with_name("s0~avx512-f26m2~2")}
    plan = plan_claim(claim, "small", out=runs)
    assert "(runs s0 / s0~avx512-f26m2)" in plan["pairs"][0]["how"] and plan["pairs"][0]["side_by_side"]
    # a tenth run of a kind is listed after its second
    for n in (2, 10):
        (a0.parent / f"s0~avx512-f26m2~{n}").mkdir()
    assert [d.name for d in seed_dirs(runs / "small", arms["a"], 0)] == [
        "s0", "s0~avx512-f26m2", "s0~avx512-f26m2~2", "s0~avx512-f26m2~10"]
