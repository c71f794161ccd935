"""Claims as specs: the verdict rules applied by code (a verdict changes when the recorded numbers change), the spec
checks, the generated page, and the project's own specs loading with the rules' verdicts."""

import json
from pathlib import Path

import pytest

from ebmlab.claims import load_claims, verdict
from ebmlab.claims.render import render
from ebmlab.claims.spec import get_claim
from ebmlab.cli import main
from ebmlab.errors import EbmlabError

ROOT = Path(__file__).resolve().parents[1]

SPEC = """paper = "kale"
where = "§4"
claim = "guided beats base"
status = "measured"
networks = "2D MLPs"
evidence = []

[comparison]
metric = "hq"
direction = "{direction}"
budget = "same_run"
a = {{label = "guided", method = "kale", metric = "hq"}}
b = {{label = "base", method = "kale", metric = "base_hq"}}

[scale.small]
data = "ring8"
seeds = 3
overrides = {{steps = 20}}
"""


def _claim(tmp_path, result, direction="higher", name="c"):
    (tmp_path / f"{name}.toml").write_text(SPEC.format(direction=direction))
    (tmp_path / "results").mkdir(exist_ok=True)
    (tmp_path / "results" / f"{name}.json").write_text(json.dumps({"small": result}))
    return get_claim(name, tmp_path)


def test_a_verdict_changes_when_the_recorded_numbers_change(tmp_path):
    ahead = {"a": [0.97, 0.98, 0.975], "b": [0.80, 0.81, 0.79]}
    assert verdict(_claim(tmp_path, ahead)).text == "consistent at small scale"
    behind = {"a": [0.70, 0.71, 0.69], "b": [0.80, 0.81, 0.79]}
    assert verdict(_claim(tmp_path, behind)).text == "contradicted at small scale"
    mixed = {"a": [0.90, 0.70, 0.85], "b": [0.80, 0.81, 0.79]}
    v = verdict(_claim(tmp_path, mixed))
    assert v.text == "inconclusive at small scale" and v.interval[0] < 0 < v.interval[1]
    # the direction is the claim's: lower is better turns the same numbers around
    assert verdict(_claim(tmp_path, ahead, direction="lower")).text == "contradicted at small scale"


def test_the_rules_hard_cases(tmp_path):
    two = verdict(_claim(tmp_path, {"a": [0.9, 0.95], "b": [0.1, 0.2]}))
    assert two.label == "inconclusive" and "≥ 3" in two.detail  # two seeds: never a verdict, however large
    unpaired = verdict(_claim(tmp_path, {"a": [0.9, 0.95, 0.9], "b": [0.1, 0.2]}))
    assert unpaired.label == "inconclusive" and "not paired" in unpaired.detail
    welch = verdict(_claim(tmp_path, {"a_summary": {"mean": 0.9, "sd": 0.01, "n": 3},
                                      "b_summary": {"mean": 0.8, "sd": 0.01, "n": 4}}))
    assert welch.text == "consistent at small scale"
    diff = verdict(_claim(tmp_path, {"diff": [-0.1, -0.12, -0.11]}))
    assert diff.text == "contradicted at small scale"
    # an image metric that ranks the collapsed reference above the real data cannot judge a claim
    refs = {"a": [0.97, 0.98, 0.975], "b": [0.80, 0.81, 0.79],
            "references": {"real": 0.93, "noise": 0.0, "collapsed": 1.0}}
    v = verdict(_claim(tmp_path, refs))
    assert v.label == "inconclusive" and "collapse" in v.detail
    refs["references"]["collapsed"] = 0.5
    assert verdict(_claim(tmp_path, refs)).label == "consistent"
    refs["references"]["noise"] = 0.9  # worse than the real data, but by less than 10 %: noise is not separated
    assert verdict(_claim(tmp_path, refs)).label == "inconclusive"


def test_t_interval_known_answer():
    from ebmlab.claims.verdict import t_interval

    m, lo, hi = t_interval([1.0, 2.0, 3.0])  # mean 2, sd 1, t(0.975, 2) = 4.302653
    assert m == 2 and hi - 2 == pytest.approx(4.302653 / 3 ** 0.5, rel=1e-6) and lo == pytest.approx(4 - hi)


def test_bad_specs_are_refused_with_the_file_named(tmp_path):
    (tmp_path / "x.toml").write_text(SPEC.format(direction="sideways"))
    with pytest.raises(EbmlabError, match="x.toml.*direction"):
        load_claims(tmp_path)
    (tmp_path / "x.toml").write_text('paper = "kale"\nwhere = "§1"\nclaim = "c"\nstatus = "measured"\nnetworks = "n"\n')
    with pytest.raises(EbmlabError, match=r"\[comparison\]"):
        load_claims(tmp_path)
    with pytest.raises(EbmlabError, match="does not exist"):
        load_claims(tmp_path / "nowhere")


def test_the_projects_claims_load_and_render(tmp_path, capsys):
    claims = load_claims(ROOT / "benchmarks" / "claims")
    assert len(claims) >= 60
    assert {c.status for c in claims} == {"measured", "known_answer", "untested"}
    page = render(claims)
    assert page.startswith("# The papers' claims") and "ebmlab claims render" in page.split("\n\n")[1]
    assert all(f"`{c.id}`" in page for c in claims)
    # the committed page is what the specs and results render to now
    assert (ROOT / "benchmarks" / "claims.md").read_text() == page
    assert main(["claims", "list", "--specs", str(ROOT / "benchmarks" / "claims")]) == 0
    assert "kale-guided-beats-base-ring8" in capsys.readouterr().out


def test_claims_run_refuses_what_it_cannot_run(tmp_path, capsys):
    c = _claim(tmp_path, {"a": [1.0], "b": [0.0]})
    assert main(["claims", "run", c.id, "--scale", "paper", "--specs", str(tmp_path)]) == 2
    assert "no paper scale" in capsys.readouterr().err
    assert main(["claims", "run", "nope", "--specs", str(tmp_path)]) == 2
    assert "unknown claim" in capsys.readouterr().err
