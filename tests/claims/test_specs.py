"""Claim specs as experiments: what `claims run` refuses before anything runs (arms that resolve to one experiment,
a metric no arm writes, seeds below 1), what it records (each arm's configuration, steps, CPU-seconds, references,
the commit; the equal-steps pair of an equal-compute claim), results it will not replace silently, rows marked stale,
files of the wrong shape named in one line while the rest still list and render, and the project's own specs."""

import json
from pathlib import Path

import pytest

from ebmlab.claims import arms as arms_mod
from ebmlab.claims.render import render, stale
from ebmlab.claims.spec import get_claim, load_all, load_claims
from ebmlab.cli import main
from ebmlab.errors import EbmlabError

ROOT = Path(__file__).resolve().parents[2]

SPEC = """paper = "vgan"
where = "§7"
claim = "VGAN covers more modes"
status = "measured"
networks = "2D MLPs"
evidence = []

[comparison]
metric = "{metric}"
direction = "higher"
budget = "{budget}"
decides = ["lr_g"]
a = {{label = "A", method = "{a}"{a_over}}}
b = {{label = "B", method = "{b}"}}

[scale.small]
data = "ring8"
seeds = {seeds}
overrides = {{{over}}}
"""


def _spec(d: Path, name="c", *, metric="modes", budget="equal_steps", a="vgan", b="gan", a_over="", seeds=3,
          over="steps = 30, eval_samples = 200"):
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{name}.toml").write_text(SPEC.format(metric=metric, budget=budget, a=a, b=b, a_over=a_over, seeds=seeds,
                                                over=over))
    return d


def test_arms_that_resolve_to_one_experiment_are_refused_and_nothing_is_written(tmp_path, capsys):
    specs = _spec(tmp_path / "specs", a="gan", b="gan")
    assert main(["claims", "run", "c", "--specs", str(specs), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "resolve to the same experiment" in err and "nothing was run" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists() and not (specs / "results").exists()
    # one setting that differs makes them two experiments
    specs = _spec(tmp_path / "specs", a="gan", b="gan", a_over=", overrides = {lr_g = 0.003}")
    c = get_claim("c", specs)
    configs = arms_mod.check(c, "small", arms_mod.plan(c, "small"))
    assert configs["a"]["method_config"]["lr_g"] == 0.003 != configs["b"]["method_config"]["lr_g"]


def test_a_metric_no_arm_writes_is_refused(tmp_path, capsys):
    specs = _spec(tmp_path / "specs", metric="test_ll")
    assert main(["claims", "run", "c", "--specs", str(specs), "--out", str(tmp_path / "runs")]) == 2
    assert "no arm's method reports its metric" in capsys.readouterr().err
    specs = _spec(tmp_path / "specs", metric="clf_fd")  # an image metric on 2D data
    assert main(["claims", "run", "c", "--specs", str(specs), "--out", str(tmp_path / "runs")]) == 2
    assert not (tmp_path / "runs").exists()
    assert arms_mod.produces("kale", "base_hq", "toy2d") and not arms_mod.produces("gan", "base_hq", "toy2d")
    assert arms_mod.produces("vae", "iwae_5000", "binary") and arms_mod.produces("vae", "active_units", "binary")
    assert arms_mod.produces("bib", "log10_max_abs_energy", "image")
    # a collapse check (verdict rule 2) that the runs would not write is refused alike, and one that is no name
    specs = _spec(tmp_path / "specs")
    f = specs / "c.toml"
    f.write_text(f.read_text().replace('decides = ["lr_g"]', 'decides = ["lr_g"]\ncollapse_check = "clf_fd"'))
    capsys.readouterr()
    assert main(["claims", "run", "c", "--specs", str(specs), "--out", str(tmp_path / "runs")]) == 2
    assert "comparison.collapse_check 'clf_fd' is not a metric every arm's method reports" in capsys.readouterr().err
    f.write_text(f.read_text().replace('collapse_check = "clf_fd"', "collapse_check = 3"))
    assert main(["claims", "run", "c", "--specs", str(specs), "--out", str(tmp_path / "runs")]) == 2
    assert "comparison.collapse_check must name a metric" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_seeds_below_one_and_unknown_options_are_refused(tmp_path, capsys):
    specs = _spec(tmp_path / "specs")
    assert main(["claims", "run", "c", "--seeds", "0", "--specs", str(specs), "--out", str(tmp_path / "r")]) == 2
    assert "--seeds" in capsys.readouterr().err
    specs = _spec(tmp_path / "specs", over="steps = 30, no_such_option = 1")
    assert main(["claims", "run", "c", "--specs", str(specs), "--out", str(tmp_path / "r")]) == 2
    assert "unknown option 'no_such_option'" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_every_budget_a_spec_may_set_is_accepted_for_every_method(tmp_path):
    """The bench's budget names and the run options' alike; a budgeted arm without steps gets the upper bound."""
    for over in ("budget_cpu_seconds = 5", "max_cpu_seconds = 5", "budget_seconds = 5", "budget_evals = 1000"):
        for a in ("kale", "lbt", "bib", "vgan"):
            c = get_claim("c", _spec(tmp_path / "specs", a=a, over=over))
            plan = arms_mod.plan(c, "small")
            arms_mod.check(c, "small", plan)
            assert plan["a"].options["steps"] == arms_mod.BUDGET_STEPS
            assert any(plan["a"].options.get(k) for k in arms_mod.BUDGETS)


def test_an_equal_compute_claim_runs_and_records_its_equal_steps_pair(tmp_path, capsys):
    specs = _spec(tmp_path / "specs", budget="equal_wall_time", seeds=2,
                  over="max_cpu_seconds = 0.6, eval_samples = 200, metrics = ['modes', 'hq']")
    f = specs / "c.toml"
    f.write_text(f.read_text().replace('decides = ["lr_g"]', 'decides = ["lr_g"]\ncollapse_check = "hq"'))
    assert main(["claims", "run", "c", "--specs", str(specs), "--out", str(tmp_path / "runs"), "--jobs", "2"]) == 0
    r = json.loads((specs / "results" / "c.json").read_text())["small"]
    # the collapse check's metric, read from the same runs per seed, with its references (verdict rule 2)
    retrained = set(r["equal_steps"]["keys"][r["equal_steps"]["retrained"]])
    budgeted = [d for d in sorted((tmp_path / "runs" / "small" / "arms").glob("vgan-*/s*"))
                if d.parent.name not in retrained]
    assert r["collapse_check"]["metric"] == "hq" and r["collapse_check"]["references"]["a"]["noise"] >= 0
    assert r["collapse_check"]["a"] == [json.loads((d / "summary.json").read_text())["metrics"]["hq"]
                                        for d in budgeted]
    assert set(r["arms"]) == {"a", "b"} and r["arms"]["a"]["method"] == "vgan"
    assert r["commit"] and isinstance(r["dirty"], bool) and r["command"].startswith("ebmlab claims run c")
    assert r["references"]["a"]["noise"] < r["references"]["a"]["real"] == 8
    assert all(s > 0 for s in r["steps"]["a"] + r["steps"]["b"]) and all(c >= 0.6 for c in r["cpu_s"]["a"])
    # each budgeted run probed the machine's speed (claims runs on the CPU set speed_probe; verdict rule 4)
    assert all(isinstance(x, float) and x > 0 for x in r["speed"]["a"] + r["speed"]["b"])
    assert "CPU-s of the probe" in render(load_claims(specs))
    pair = r["equal_steps"]
    fast, slow = pair["retrained"], "a" if pair["retrained"] == "b" else "b"
    assert pair["steps"][fast] == pair["steps"][slow] == r["steps"][slow]  # exactly the slower arm's steps, per seed
    runs = sorted((tmp_path / "runs" / "small" / "arms").glob("*/s*"))
    assert len(runs) == 2 * 2 + 2  # the two budgeted arms, and the faster arm once per seed at the other's steps
    assert len(pair["collapse_check"][fast]) == 2 and pair["collapse_check"][slow] == r["collapse_check"][slow]
    # the same command again reads the finished runs: the same numbers, nothing retrained
    before = {p: p.stat().st_mtime for p in (tmp_path / "runs").rglob("summary.json")}
    assert main(["claims", "run", "c", "--specs", str(specs), "--out", str(tmp_path / "runs")]) == 0
    again = json.loads((specs / "results" / "c.json").read_text())["small"]
    assert again["a"] == r["a"] and again["equal_steps"] == r["equal_steps"]
    assert {p: p.stat().st_mtime for p in before} == before
    # where each arm's runs trained: this commit; a run an earlier commit trained is reused, and said so
    here = {r["commit"], r["commit"] + "-dirty"}  # a run's commit says "-dirty" when the tree had changes
    assert all(len(at) == 1 and at[0] in here for at in [*r["trained_at"].values(), pair["trained_at"][fast]])
    assert set(r["trained_at"]) == {"a", "b"}
    record = next((tmp_path / "runs" / "small" / "arms").glob("vgan-*/s1/run.json"))
    doc = json.loads(record.read_text())
    doc["sessions"][0]["git_commit"] = "0123456789" * 4
    record.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["claims", "run", "c", "--specs", str(specs), "--out", str(tmp_path / "runs")]) == 0
    assert "a: 0123456" in capsys.readouterr().out
    third = json.loads((specs / "results" / "c.json").read_text())["small"]
    assert third["trained_at"]["a"][1:] == ["0123456789" * 4] and third["a"] == r["a"]
    assert "runs trained at other commits, reused: a: 0123456" in render(load_claims(specs))
    # a seed re-trained on later code (benchmarks/claims/tools/reproduce.py --write) is shown beside it
    doc = json.loads((specs / "results" / "c.json").read_text())
    doc["small"]["rechecked"] = {"commit": "fedcba9876" * 4, "seed": 0, "arms": {"a": "equal", "b": "equal"}}
    (specs / "results" / "c.json").write_text(json.dumps(doc))
    assert "a: 0123456; seed 0 re-trained at fedcba9: a equal, b equal)" in render(load_claims(specs))


def test_an_equal_steps_rerun_branches_from_its_arms_budget_run_and_reads_as_one_trained_from_step_0(tmp_path,
                                                                                                     capsys):
    """Budgeted runs with evaluations during training keep a checkpoint at each; the faster arm's rerun to the other
    arm's steps starts at the last one below them (the plan says so), and its value and final metrics are those of
    the same rerun trained from step 0 once the kept checkpoints are gone."""
    import shutil

    specs = _spec(tmp_path / "specs", budget="equal_wall_time", seeds=1,
                  over="max_cpu_seconds = 0.4, eval_every = 4, eval_samples = 200, metrics = ['modes']")
    runs, args = tmp_path / "runs", ["claims", "run", "c", "--specs", str(specs), "--out", str(tmp_path / "runs")]
    assert main(args) == 0
    said = capsys.readouterr().out
    r = json.loads((specs / "results" / "c.json").read_text())["small"]
    pair, arms = r["equal_steps"], runs / "small" / "arms"
    fast, slow = pair["retrained"], "a" if pair["retrained"] == "b" else "b"
    rerun = arms / pair["keys"][fast][0] / "s0"
    first = json.loads((rerun / "run.json").read_text())["sessions"][0]
    budget_run = Path(first["branched_from"]["run"])
    at, n = first["branched_from"]["step"], r["steps"][slow][0]
    assert budget_run.name == "s0" and budget_run.parent.parent == arms and budget_run.parent != rerun.parent
    assert 0 < at < n and at % 4 == 0 and f"branches from {budget_run} at its kept step {at}" in said
    assert json.loads((rerun / "summary.json").read_text())["step"] == n == pair["steps"][fast][0]
    assert pair["branched_at"] == {fast: [at]} and f"per seed; from its budget run's kept step {at}," in render(
        load_claims(specs))
    metrics = json.loads((rerun / "summary.json").read_text())["metrics"]
    # the plan of a rerun not yet made says where it will start and what is left to train
    shutil.rmtree(rerun)
    assert main([*args, "--dry-run"]) == 0
    assert f"left {n - at} of {n} steps — branches from its budget run's checkpoint at step {at}" in capsys.readouterr().out
    # from step 0: the kept checkpoints removed, the same value and metrics
    shutil.rmtree(budget_run / "checkpoints")
    assert main(args) == 0
    assert "branches from" not in capsys.readouterr().out
    assert "branched_from" not in json.loads((rerun / "run.json").read_text())["sessions"][0]
    again = json.loads((specs / "results" / "c.json").read_text())["small"]["equal_steps"]
    assert again[fast] == pair[fast] and json.loads((rerun / "summary.json").read_text())["metrics"] == metrics
    assert again["branched_at"] == {fast: [None]} and "kept step" not in render(load_claims(specs))


def test_a_run_made_with_other_options_is_set_aside_not_read(tmp_path, capsys):
    """An arm's key hashes the spec's options, not the presets they resolve through: a run made before a preset
    changed sits under the same key. Its configuration is compared with the arm's today; a run of other options is
    renamed .superseded-1 and said so, and a fresh run gives the row its value (not the old run's)."""
    specs = _spec(tmp_path / "specs", seeds=1, over="steps = 20, eval_samples = 200, metrics = ['modes']")
    runs = tmp_path / "runs"
    assert main(["claims", "run", "c", "--specs", str(specs), "--out", str(runs)]) == 0
    first = json.loads((specs / "results" / "c.json").read_text())["small"]
    run = next((runs / "small" / "arms").glob("gan-*/s0"))
    cfg = json.loads((run / "config.json").read_text())
    cfg["method_config"]["lr_g"] = 0.5  # as if the preset had said another rate when this run was made
    (run / "config.json").write_text(json.dumps(cfg))
    summary = json.loads((run / "summary.json").read_text())
    summary["metrics"]["modes"] = 99  # what reading the old run would give
    (run / "summary.json").write_text(json.dumps(summary))
    capsys.readouterr()
    assert main(["claims", "run", "c", "--specs", str(specs), "--out", str(runs), "--replace"]) == 0
    out = capsys.readouterr().out
    assert "method_config.lr_g: 0.5 there" in out and "set aside as s0.superseded-1" in out
    assert (run.parent / "s0.superseded-1" / "summary.json").is_file() and (run / "summary.json").is_file()
    again = json.loads((specs / "results" / "c.json").read_text())["small"]
    assert again["b"] == first["b"] != [99] and again["a"] == first["a"]  # the fresh run, the same seed's numbers
    # a run whose options match is read, not set aside
    capsys.readouterr()
    assert main(["claims", "run", "c", "--specs", str(specs), "--out", str(runs), "--replace"]) == 0
    assert "set aside" not in capsys.readouterr().out


def test_fewer_seeds_never_replace_a_recorded_result_silently(tmp_path, capsys):
    specs = _spec(tmp_path / "specs")
    (specs / "results").mkdir()
    old = {"small": {"a": [1.0, 2.0, 3.0, 4.0, 5.0], "b": [0.0] * 5}}
    (specs / "results" / "c.json").write_text(json.dumps(old))
    assert main(["claims", "run", "c", "--specs", str(specs), "--out", str(tmp_path / "runs")]) == 2
    assert "over 5 seeds" in capsys.readouterr().err
    assert json.loads((specs / "results" / "c.json").read_text()) == old and not (tmp_path / "runs").exists()


def test_a_row_is_stale_when_its_spec_no_longer_resolves_to_what_ran(tmp_path):
    specs = _spec(tmp_path / "specs")
    c = get_claim("c", specs)
    configs = arms_mod.check(c, "small", arms_mod.plan(c, "small"))
    (specs / "results").mkdir()
    (specs / "results" / "c.json").write_text(json.dumps({"small": {"a": [1, 2, 3], "b": [0, 0, 0],
                                                                    "arms": configs}}))
    assert not stale(get_claim("c", specs))
    _spec(specs, over="steps = 31, eval_samples = 200")  # the spec edited after the run
    c = get_claim("c", specs)
    assert stale(c) and "(stale)" in render([c])
    # an option ebmlab added since the record (absent from it) is not a change of the experiment
    configs["a"]["method_config"].pop("lr_g")
    _spec(specs)
    (specs / "results" / "c.json").write_text(json.dumps({"small": {"a": [1, 2, 3], "b": [0, 0, 0],
                                                                    "arms": configs}}))
    assert not stale(get_claim("c", specs))
    # ... unless the spec sets it: the run was made without the setting the spec now asks for
    _spec(specs, a_over=", overrides = {lr_g = 0.003}")
    assert stale(get_claim("c", specs))


READER = """paper = "vgan"
where = "§7"
claim = "VGAN's samples are closer in FD"
status = "measured"
networks = "2D MLPs"
evidence = []
reads = "c"
{extra}
[comparison]
metric = "{metric}"
direction = "lower"
{arm}"""


def test_a_spec_that_reads_anothers_runs_has_its_arms_and_scales_and_its_own_metric(tmp_path):
    """``reads``: the source's arms, budget and scales (so the same runs: the same arm keys, trained once), with the
    reader's metric and direction, an arm's label and metric, and only the scales it names."""
    specs = _spec(tmp_path / "specs", metric="modes")
    text = (specs / "c.toml").read_text() + '\n[scale.medium]\ndata = "grid25"\nseeds = 2\n'
    (specs / "c.toml").write_text(text)
    (specs / "r.toml").write_text(READER.format(extra='scales = ["small"]', metric="w1",
                                                arm='\n[comparison.a]\nlabel = "A read on W1"\nmetric = "base_w1"\n'))
    src, reader = get_claim("c", specs), get_claim("r", specs)
    assert reader.comparison["metric"] == "w1" and reader.comparison["direction"] == "lower"
    assert reader.comparison["budget"] == src.comparison["budget"] and reader.comparison["decides"] == ["lr_g"]
    assert reader.arm("a") == {"label": "A read on W1", "method": "vgan", "metric": "base_w1"}
    assert reader.arm("b") == src.arm("b")
    assert list(reader.scales) == ["small"] and reader.scales["small"] == src.scales["small"]
    same = {w: arms_mod.resolved(x) for w, x in arms_mod.plan(src, "small").items()}
    assert {w: arms_mod.resolved(x) for w, x in arms_mod.plan(reader, "small").items()} == same
    (specs / "r.toml").write_text(READER.format(extra="", metric="w1", arm=""))
    assert list(get_claim("r", specs).scales) == ["small", "medium"]  # every scale of the source by default


@pytest.mark.parametrize("extra, arm, said", [
    ("", "budget = \"equal_wall_time\"\n", "comparison.budget"),  # the budget is the source's
    ("", "\n[comparison.a]\nmethod = \"gan\"\n", "comparison.a.method"),  # so are the arms' methods
    ('scales = ["paper"]', "", "'scales'"),  # a scale the source lacks
    ('[scale.small]\ndata = "ring8"\n', "", "no [scale] tables of its own"),
])
def test_a_reading_spec_that_would_change_what_ran_is_named_in_one_line(tmp_path, extra, arm, said):
    specs = _spec(tmp_path / "specs")
    body = READER.format(extra="", metric="w1", arm=arm)
    if extra.startswith("[scale"):
        body += "\n" + extra
    else:
        body = body.replace('reads = "c"\n', 'reads = "c"\n' + extra + "\n")
    (specs / "r.toml").write_text(body)
    claims, errors = load_all(specs)
    assert [c.id for c in claims] == ["c"] and said in errors[str(specs / "r.toml")]


def test_a_reading_spec_reads_a_spec_with_runs_of_its_own(tmp_path):
    specs = _spec(tmp_path / "specs")
    (specs / "r.toml").write_text(READER.format(extra="", metric="w1", arm=""))
    (specs / "rr.toml").write_text(READER.format(extra="", metric="w1", arm="").replace('reads = "c"', 'reads = "r"'))
    (specs / "nothing.toml").write_text(READER.format(extra="", metric="w1", arm="").replace('"c"', '"gone"'))
    claims, errors = load_all(specs)
    assert sorted(c.id for c in claims) == ["c", "r"]
    assert "reads 'c'" in errors[str(specs / "rr.toml")] and "no spec" in errors[str(specs / "nothing.toml")]


@pytest.mark.parametrize("bad, field", [
    ('order = "first"', "'order'"),
    ('paper_value = {value = "high"}', "paper_value"),
    ('section = "mine"', "section"),
])
def test_a_spec_of_the_wrong_type_is_named_in_one_line_and_the_rest_still_list(tmp_path, capsys, bad, field):
    specs = _spec(tmp_path / "specs", name="good")
    (specs / "bad.toml").write_text((specs / "good.toml").read_text().replace("[comparison]", bad + "\n\n[comparison]"))
    claims, errors = load_all(specs)
    assert [c.id for c in claims] == ["good"] and list(errors) == [str(specs / "bad.toml")]
    assert field in errors[str(specs / "bad.toml")]
    assert main(["claims", "list", "--specs", str(specs)]) == 2
    out, err = capsys.readouterr()
    assert "good" in out and "bad.toml" in err and field in err and "Traceback" not in err
    assert main(["claims", "render", "--specs", str(specs), "--out", str(tmp_path / "page.md")]) == 2
    page = (tmp_path / "page.md").read_text()
    assert "`good`" in page and "Specs that could not be read" in page and "bad.toml" in page


@pytest.mark.parametrize("metric, line, said", [
    ("hq", "effect = 32.0", "0.32"),  # hq is a fraction shown as %: 32 points is 0.32
    ("hq", "threshold = 90", "0.9"),
    ("modes", "effect = 32.0", None),  # modes is a count: any positive effect
])
def test_an_effect_in_percent_for_a_fraction_metric_is_refused(tmp_path, metric, line, said):
    """The paper's number in percent against a metric that is a fraction (Metric unit "%") is named at load — the
    verdict would otherwise weigh an effect 100× too large."""
    specs = _spec(tmp_path / "specs", metric=metric)
    f = specs / "c.toml"
    f.write_text(f.read_text().replace('budget = "equal_steps"', 'budget = "equal_steps"\n' + line))
    claims, errors = load_all(specs)
    if said is None:
        assert [c.id for c in claims] == ["c"] and not errors
    else:
        assert not claims and "is a fraction" in errors[str(f)] and said in errors[str(f)]


@pytest.mark.parametrize("content, field", [
    ('{"small": [1, 2]}', "must be a table"),
    ('{"small": {"a": ["1", "2", "3"]}}', ".a must be a list of per-seed numbers"),
    ('[1, 2]', "JSON object"),
    ('{"tiny": {}}', "not a scale"),
])
def test_a_results_file_of_the_wrong_shape_is_named(tmp_path, capsys, content, field):
    specs = _spec(tmp_path / "specs", name="good")
    _spec(specs, name="other")
    (specs / "results").mkdir()
    (specs / "results" / "other.json").write_text(content)
    claims, errors = load_all(specs)
    assert [c.id for c in claims] == ["good"] and field in next(iter(errors.values()))
    assert main(["claims", "list", "--specs", str(specs)]) == 2
    assert "other.json" in capsys.readouterr().err


def test_the_projects_claims_load_check_and_render(capsys):
    specs = ROOT / "benchmarks" / "claims"
    claims = load_claims(specs)
    assert len(claims) >= 90
    assert {c.status for c in claims} == {"measured", "known_answer", "untested"}
    for c in claims:  # every measured spec is an experiment claims run accepts, at every scale (the paper's: before
        for scale in c.scales:  # its data files are read)
            arms_mod.check(c, scale, arms_mod.plan(c, scale))
        if c.status == "known_answer":
            assert (ROOT / c.test.split("::")[0]).is_file(), c.test
    page = render(claims)
    assert page.startswith("# The papers' claims") and "ebmlab claims render" in page.split("\n\n")[1]
    assert all(f"`{c.id}`" in page for c in claims) and "## ebmlab's own checks" in page
    # the committed page is what the specs and results render to now
    assert (ROOT / "benchmarks" / "claims.md").read_text() == page
    assert main(["claims", "list", "--specs", str(specs)]) == 0
    out = capsys.readouterr().out
    assert "kale-guided-beats-base-ring8" in out and "a test" in out


def test_the_help_names_claims_that_exist(capsys):
    with pytest.raises(SystemExit):
        main(["claims", "run", "--help"])
    help_text = capsys.readouterr().out
    ids = {c.id for c in load_claims(ROOT / "benchmarks" / "claims")}
    named = [w for w in help_text.split() if w.count("-") >= 2 and w[0].isalpha() and w.islower()]
    assert named and all(n in ids for n in named), named


def test_claims_run_refuses_a_scale_the_spec_lacks(tmp_path, capsys):
    specs = _spec(tmp_path / "specs")
    assert main(["claims", "run", "c", "--scale", "paper", "--specs", str(specs)]) == 2
    assert "no paper scale" in capsys.readouterr().err
    assert main(["claims", "run", "nope", "--specs", str(specs)]) == 2
    assert "unknown claim" in capsys.readouterr().err
    with pytest.raises(EbmlabError, match="does not exist"):
        load_claims(tmp_path / "nowhere")


def test_the_paper_scale_probe_times_steady_steps_and_adds_checkpoints_and_evaluations(tmp_path):
    from ebmlab.claims.run import PROBE_STEPS, paper_cost

    specs = _spec(tmp_path / "specs", a="vae", b="gan")
    (specs / "c.toml").write_text((specs / "c.toml").read_text() + """
[scale.paper]
data = "digits"
seeds = 2
steps = 10000
probe_shape = [1, 8, 8]
overrides = {steps = 10000, ckpt_every = 1000, eval_every = 5000, eval_samples = 100, width = 8, net = "conv"}
""")
    cost = paper_cost(get_claim("c", specs), "paper", "cpu", 2)
    assert [a["method"] for a in cost["arms"]] == ["vae", "gan"] and cost["seeds"] == 2
    for a in cost["arms"]:
        assert a["steps_per_s"] > 0 and a["final_eval_s"] > 0 and a["periodic_s"] > 0
        hours = (10000 / a["steps_per_s"] + a["periodic_s"] + a["final_eval_s"]) / 3600
        # the reported rate is rounded to 0.001 step/s (an error of up to 10000 · 0.0005 / rate² s, which a loaded
        # machine's slow rate makes minutes), the hours to 0.001 h
        slack = (10000 * 0.0005 / a["steps_per_s"] ** 2 + 0.002) / 3600 + 0.0005
        assert a["hours_per_seed"] == pytest.approx(hours, abs=slack)
    assert f"{PROBE_STEPS} steady-state steps" in cost["probe"]


def _runner_spec(d: Path, name: str, body: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{name}.toml").write_text('paper = "sr"\nwhere = "§4"\nclaim = "c"\nstatus = "measured"\nnetworks = "n"\n'
                                    + body)
    return d


def test_the_sr_runner_trains_and_scores_each_model_per_seed(tmp_path):
    import numpy as np
    from PIL import Image

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray((rng.random((16, 16)) * 255).astype(np.uint8)).save(imgs / f"{i}.png")
    specs = _runner_spec(tmp_path / "specs", "s", f"""
[comparison]
metric = "psnr"
direction = "higher"
budget = "equal_steps"
runner = "sr"
a = {{label = "TV", method = "tv"}}
b = {{label = "MSE", method = "mse", overrides = {{steps = 2}}}}

[scale.small]
data = "{imgs}"
seeds = 3
overrides = {{crop = 8}}
""")
    assert main(["claims", "run", "s", "--specs", str(specs), "--out", str(tmp_path / "runs")]) == 0
    r = json.loads((specs / "results" / "s.json").read_text())["small"]
    assert len(r["a"]) == len(r["b"]) == 3 and all(isinstance(v, float) for v in r["a"] + r["b"])
    assert r["arms"]["a"] == {"runner": "sr", "model": "tv", "data": str(imgs), "options": {"crop": 8}}
    # the CPU and wall seconds of each run's training loop, from its run record as for trained methods
    runs = sorted((tmp_path / "runs" / "small" / "arms").glob("mse-*/s*/run.json"))
    assert len(runs) == 3
    recorded = [sum(x["train_cpu_seconds"] for x in json.loads(f.read_text())["sessions"]) for f in runs]
    assert all(c > 0 for c in recorded) and r["cpu_s"]["b"] == [round(c, 1) for c in recorded]
    assert r["steps"]["b"] == [2, 2, 2] and all(isinstance(w, float) for w in r["train_s"]["b"])
    assert r["cpu_s"]["a"] == [0.0] * 3 and r["steps"]["a"] == [None] * 3  # TV is fitted: no training loop


def test_the_semisup_runner_trains_one_augmenting_run_and_a_classifier_per_seed_and_arm(tmp_path):
    specs = _runner_spec(tmp_path / "specs", "v", """
[comparison]
metric = "test_error"
direction = "lower"
budget = "equal_steps"
runner = "semisup"
a = {label = "ρ = 0.5", method = "vgan_vcd", overrides = {rho = 0.5}}
b = {label = "ρ = 0", method = "vgan_vcd", overrides = {rho = 0.0}}

[scale.small]
data = "digits"
seeds = 3
labels = 20
classifier_steps = 5
overrides = {steps = 4, eval = "none", width = 8}
""")
    c = get_claim("v", specs)
    configs = arms_mod.check(c, "small", arms_mod.plan(c, "small"))
    assert configs["a"]["semisup"] == {"rho": 0.5} and configs["a"]["method_config"] == configs["b"]["method_config"]
    assert main(["claims", "run", "v", "--specs", str(specs), "--out", str(tmp_path / "runs")]) == 0
    r = json.loads((specs / "results" / "v.json").read_text())["small"]
    assert len(r["a"]) == len(r["b"]) == 3 and all(0 <= v <= 1 for v in r["a"] + r["b"])  # fractions, as test_error
    assert len(list((tmp_path / "runs" / "small" / "arms").iterdir())) == 1  # one augmenting run for both arms


def test_an_arm_that_evaluates_nothing_cannot_give_its_metric(tmp_path, capsys):
    specs = _spec(tmp_path / "specs", over='steps = 30, eval = "none"')
    assert main(["claims", "run", "c", "--specs", str(specs), "--out", str(tmp_path / "runs")]) == 2
    assert "eval=none" in capsys.readouterr().err and not (tmp_path / "runs").exists()


def test_an_arm_with_one_seed_gives_no_spread():
    """One seed has no standard deviation: the row gives its value alone, not "± 0"."""
    from ebmlab.claims.render import _arm_text

    assert _arm_text([519.0, None, None], None) == "519 (n = 1)"
    assert _arm_text([253.0, 536.0, 150.0], None) == "313 ± 199.9 (n = 3)"
    assert _arm_text(None, {"mean": 4.5, "sd": 0.0, "n": 1}) == "4.5 (n = 1, summary)"


def test_a_rows_cpu_seconds_say_over_how_many_seeds_they_were_recorded():
    """A seed whose CPU time is unknown (a run killed after a checkpoint by a version that did not note it) is not
    averaged in silently: the row says the mean is over the seeds recorded."""
    from ebmlab.claims.render import _budget_text

    arms = {"a": {"label": "LBT"}}
    known = _budget_text({"steps": {"a": [100, 100, 100]}, "cpu_s": {"a": [10.0, 20.0, 30.0]}}, arms)
    assert known == "LBT: 100 steps, 20 CPU-s"
    part = _budget_text({"steps": {"a": [100, 100, 100]}, "cpu_s": {"a": [10.0, 20.0, None]}}, arms)
    assert part == "LBT: 100 steps, 15 CPU-s (mean of the 2 of 3 seeds recorded)"
    assert _budget_text({"steps": {"a": [10000, 10000, 10000]}}, arms) == "LBT: 10000 steps"  # not 1e+04
    assert _budget_text({"steps": {"a": [10000, 10003]}}, arms) == "LBT: 10002 steps"  # a mean, to the step
    # seeds whose step counts spread (one CPU budget on machines of different speeds) are shown per seed
    assert _budget_text({"steps": {"a": [2451, 2447, 718]}}, arms) == "LBT: 1872 steps (2451 / 2447 / 718 per seed)"
    assert _budget_text({"steps": {"a": [2451, 2447, 1970]}}, arms) == "LBT: 2289 steps"  # within 25 %



def test_a_row_names_the_classifier_that_scored_its_runs():
    """Rule 8's scorers on the row: one classifier named once; two named per arm and seed (the equal-steps reruns'
    after the budget runs'); nothing for a result recorded before scorers were or without classifier metrics."""
    from ebmlab.claims.render import _scorer_text

    one, other = "32a26749b0951ca5", "ca256820dad92a7e"
    assert _scorer_text({"scorer": {"a": [one] * 3, "b": [one] * 3}}) == "scored by classifier 32a26749"
    mixed = {"scorer": {"a": [other, other, None], "b": [one] * 3}, "equal_steps": {"scorer": {"b": [one]}}}
    assert _scorer_text(mixed) == "scored by classifiers a ca256820/ca256820/—; b 32a26749/32a26749/32a26749/32a26749"
    assert _scorer_text({"a": [1.0]}) == "" and _scorer_text({"scorer": {"a": [None], "b": [None]}}) == ""

CUDA_TABLE = """
[scale.small.cuda]
budget_seconds = 2
eval_every = 10
"""
CHEAP_CUDA_TABLE = CUDA_TABLE.replace("eval_every = 10", "eval_every = 25")  # a few evaluations a run


def test_on_cuda_a_scale_takes_its_cuda_table_and_a_cpu_time_budget_is_refused(tmp_path):
    """CPU time counts nothing of a GPU's work: on cuda a CPU-seconds budget is refused unless the scale's cuda table
    gives the budget in wall seconds, which then replaces it (the CPU's arms are unchanged by the table)."""
    specs = _spec(tmp_path / "specs", budget="equal_wall_time", over="max_cpu_seconds = 5, eval_samples = 200")
    c = get_claim("c", specs)
    with pytest.raises(EbmlabError, match=r"\[scale.small.cuda\] table with budget_seconds"):
        arms_mod.plan(c, "small", "cuda")
    before = {w: a.key for w, a in arms_mod.plan(c, "small").items()}
    with (specs / "c.toml").open("a") as fh:
        fh.write(CUDA_TABLE)
    c = get_claim("c", specs)
    assert {w: a.key for w, a in arms_mod.plan(c, "small").items()} == before  # the CPU's experiment as it was
    gpu = arms_mod.plan(c, "small", "cuda")
    assert all("max_cpu_seconds" not in a.options and a.options["max_seconds"] == 2 and a.options["eval_every"] == 10
               and a.options["eval_samples"] == 200 for a in gpu.values())
    assert not stale(c)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_claims_run_on_cuda_without_it_is_refused_in_one_line(tmp_path, capsys):
    specs = _spec(tmp_path / "specs")
    assert main(["claims", "run", "c", "--specs", str(specs), "--out", str(tmp_path / "runs"), "--device",
                 "cuda"]) == 2
    err = capsys.readouterr().err
    assert "CUDA is not available" in err and "Traceback" not in err and not (tmp_path / "runs").exists()


def _gpu_result(a: list[float], b: list[float]) -> dict:
    return {"a": a, "b": b, "seeds": [0, 1, 2], "device": "NVIDIA H100 80GB HBM3", "data": "ring8",
            "command": "ebmlab claims run c --scale small --device cuda", "commit": "ab" * 20,
            "steps": {"a": [900, 910, 920], "b": [400, 410, 420]}, "train_s": {"a": [2.0, 2.0, 2.0],
                                                                              "b": [2.0, 2.0, 2.0]},
            "cpu_s": {"a": [9.0, 9.0, 9.0], "b": [9.0, 9.0, 9.0]}}


def test_a_gpu_result_is_recorded_apart_and_judged_in_its_own_column(tmp_path, capsys):
    """A result of runs on a CUDA device (``small@cuda``) is read beside the CPU's, judged by the same rules in the
    column "on a GPU" with the device's name and the wall seconds its runs got; the row's verdict stays the CPU's."""
    from ebmlab.claims.verdict import device_verdicts, verdict

    specs = _spec(tmp_path / "specs")
    (specs / "results").mkdir()
    (specs / "results" / "c.json").write_text(json.dumps({"small": {"a": [1, 2, 3], "b": [2, 3, 4]},
                                                          "small@cuda": _gpu_result([5, 6, 7], [1, 1, 2])}))
    c = get_claim("c", specs)
    assert verdict(c).label == "contradicted" and verdict(c).scale == "small"  # the CPU's result decides the row
    assert device_verdicts(c)["small@cuda"].label == "consistent"
    page = render([c])
    assert "| verdict | on a GPU |" in page
    row = next(line for line in page.splitlines() if "`c`" in line)
    gpu_cell = row.split(" | ")[-1]
    assert gpu_cell.startswith("**small@cuda** on NVIDIA H100 80GB HBM3") and "A: 910 steps, 2 wall-s" in gpu_cell
    assert "verdict: **consistent at small scale**" in gpu_cell and "CPU-s" not in gpu_cell
    assert main(["claims", "list", "--specs", str(specs)]) == 0
    assert "contradicted at small scale" in (out := capsys.readouterr().out) and \
        "; small@cuda: consistent at small scale" in out
    # a result without its runs' train_s reads each run's wall seconds at its curve's last point (final evaluation)
    from ebmlab.claims.render import _budget_text

    old = {**_gpu_result([5, 6, 7], [1, 1, 2]), "clock": "wall",
           "curves": {"a": [[[10, 1.0, 5], [910, 2.5, 5]]] * 3, "b": [[[410, 2.0, 1]]] * 3}}
    del old["train_s"]
    assert _budget_text(old, {"a": {"label": "A"}, "b": {"label": "B"}}) == "A: 910 steps, 2.5 wall-s; B: 410 " \
                                                                           "steps, 2 wall-s"
    # the spec changed since the GPU's runs: the column marks its verdict stale (the CPU's row is judged apart)
    from ebmlab.claims.arms import check, plan

    (specs / "c.toml").write_text((specs / "c.toml").read_text() + CUDA_TABLE)
    c = get_claim("c", specs)
    rec = {**_gpu_result([5, 6, 7], [1, 1, 2]), "arms": check(c, "small", plan(c, "small", "cuda"))}
    (specs / "results" / "c.json").write_text(json.dumps({"small@cuda": rec}))
    assert not stale(get_claim("c", specs), "small@cuda")
    (specs / "c.toml").write_text((specs / "c.toml").read_text().replace("budget_seconds = 2", "budget_seconds = 3"))
    c = get_claim("c", specs)
    assert stale(c, "small@cuda") and not stale(c)
    assert "verdict: **consistent at small scale (stale)**" in render([c])
    # a claim without one says so with a dash; a key of another device is refused in one line naming the file
    (specs / "results" / "c.json").write_text(json.dumps({"small": {"a": [1, 2, 3], "b": [2, 3, 4]}}))
    assert next(line for line in render(load_claims(specs)).splitlines() if "`c`" in line).endswith("| — |")
    (specs / "results" / "c.json").write_text(json.dumps({"small@tpu": _gpu_result([1, 2, 3], [0, 0, 0])}))
    with pytest.raises(EbmlabError, match=r"c.json: 'small@tpu' is not a scale"):
        get_claim("c", specs)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_claims_run_on_cuda_records_a_gpu_result_read_on_the_wall_clock(tmp_path):
    specs = _spec(tmp_path / "specs", budget="equal_wall_time", seeds=3,
                  over="max_cpu_seconds = 5, eval_samples = 200")
    with (specs / "c.toml").open("a") as fh:
        fh.write(CHEAP_CUDA_TABLE)
    assert main(["claims", "run", "c", "--specs", str(specs), "--out", str(tmp_path / "runs"), "--device", "cuda",
                 "--jobs", "3"]) == 0
    doc = json.loads((specs / "results" / "c.json").read_text())
    assert set(doc) == {"small@cuda"}
    r = doc["small@cuda"]
    assert r["device"] and r["clock"] == "wall" and all(w >= 2 for w in r["train_s"]["a"] + r["train_s"]["b"])
    readings = r.get("curve_readings") or {}  # curves where some run evaluated before its budget ended
    assert all("wall_s" in x["read_at"] for x in [readings.get("equal_compute")] if x) and "equal_steps" in r
    assert (tmp_path / "runs" / "small@cuda" / "arms").is_dir()


def test_claims_list_gives_the_small_scale_cost_of_a_claim_run_or_its_plan(tmp_path, capsys):
    """A claim not yet run lists its plan: the runs, each run's training budget, and that the equal-steps pair and the
    evaluations come on top; a claim a `claims run` recorded lists the wall time that run took."""
    from ebmlab.claims.arms import small_cost

    specs = _spec(tmp_path / "specs", budget="equal_wall_time", seeds=2, over="max_cpu_seconds = 5")
    assert small_cost(get_claim("c", specs)) == "4 runs of ≤ 5 s training each (+ the equal-steps pair, + evaluations)"
    specs = _spec(tmp_path / "steps", seeds=3)
    assert small_cost(get_claim("c", specs)) == "6 runs (steps-bound)"
    (specs / "results").mkdir()
    (specs / "results" / "c.json").write_text(json.dumps({"small": {"wall_s": 600.0, "load_1min": 1.5}}))
    assert small_cost(get_claim("c", specs)) == "10 min wall (recorded, load 1.5)"
    assert main(["claims", "list", "--specs", str(specs)]) == 0
    assert "10 min wall (recorded, load 1.5)" in capsys.readouterr().out


def test_a_scales_note_is_printed_on_its_rows_result_and_in_its_dry_run_and_must_be_text(tmp_path, capsys):
    """A scale's ``note`` (what the scale is, how its budget was chosen) stands under the CPU's result of that scale
    on the page (not under the GPU's, whose budget is its cuda table's) and under the dry run's header; one that is
    not text is named in one line."""
    specs = _spec(tmp_path / "specs")
    f = specs / "c.toml"
    f.write_text(f.read_text().replace('seeds = 3\n', 'seeds = 3\nnote = "budget from a one-seed probe"\n'))
    (specs / "results").mkdir()
    (specs / "results" / "c.json").write_text(json.dumps({"small": {"a": [1, 2, 3], "b": [2, 3, 4]},
                                                          "small@cuda": _gpu_result([5, 6, 7], [1, 1, 2])}))
    row = next(line for line in render(load_claims(specs)).splitlines() if "`c`" in line)
    measured_cell, gpu_cell = row.split(" | ")[1], row.split(" | ")[-1]
    assert "<br>small scale: budget from a one-seed probe" in measured_cell
    assert "small@cuda" in gpu_cell and "one-seed probe" not in gpu_cell
    assert main(["claims", "run", "c", "--dry-run", "--specs", str(specs), "--out", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "  the small scale: budget from a one-seed probe" and not (tmp_path / "runs").exists()
    f.write_text(f.read_text().replace('note = "budget from a one-seed probe"', "note = 3"))
    claims, errors = load_all(specs)
    assert not claims and "scale.small" in errors[str(f)] and "note" in errors[str(f)]
