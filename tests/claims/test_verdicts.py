"""The verdict rules applied by code: each rule flips the verdict as the recorded numbers cross it (the interval,
the arm guard against the noise floor and the real data, diverged seeds scored as noise, the paper's effect, the
equivalence test at the paper's scale, the known answers' own words)."""

import json

import pytest

from ebmlab.claims import verdict
from ebmlab.claims.spec import get_claim
from ebmlab.claims.verdict import equal_steps_verdict, t_interval

SPEC = """paper = "kale"
where = "§4"
claim = "guided beats base"
status = "measured"
networks = "2D MLPs"
evidence = []
{extra}

[comparison]
metric = "hq"
direction = "{direction}"
budget = "same_run"
a = {{label = "guided", method = "kale", metric = "hq"}}
b = {{label = "base", method = "kale", metric = "base_hq"}}
{comparison}

[scale.small]
data = "ring8"
seeds = 3
overrides = {{steps = 20}}

[scale.paper]
data = "ring8"
seeds = 3
steps = 1000
probe_shape = [2]
"""


def _claim(tmp_path, result, direction="higher", name="c", scale="small", extra="", comparison=""):
    (tmp_path / f"{name}.toml").write_text(SPEC.format(direction=direction, extra=extra, comparison=comparison))
    (tmp_path / "results").mkdir(exist_ok=True)
    (tmp_path / "results" / f"{name}.json").write_text(json.dumps({scale: result}))
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
    # the row's Δ is signed so that a reader needs no convention: a negative Δ is against the claim, and says so
    against = verdict(_claim(tmp_path, behind)).detail
    assert against.startswith("Δ = -0.1 [") and "> 0 favours the claim" in against
    assert verdict(_claim(tmp_path, behind, direction="lower")).detail.startswith("Δ = +0.1 [")


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
    refs["references"] = {"real": 0.99, "noise": 0.0, "collapsed": 0.5}
    assert verdict(_claim(tmp_path, refs)).label == "consistent"
    refs["references"]["noise"] = 0.95  # worse than the real data, but by less than 10 %: noise is not separated
    assert verdict(_claim(tmp_path, refs)).label == "inconclusive"


def test_an_arm_at_the_noise_floor_decides_nothing(tmp_path):
    """The arm guard: per-arm references as `claims run` records them; an arm that did not beat noise by 10 % of
    the real–noise gap makes the row inconclusive, never contradicted — and crossing the line flips it."""
    refs = {"a": {"real": 8.0, "noise": 4.8}, "b": {"real": 8.0, "noise": 4.8}}
    at_floor = {"a": [4.6, 4.7, 4.5], "b": [7.0, 7.2, 7.1], "references": refs}
    v = verdict(_claim(tmp_path, at_floor))
    assert v.label == "inconclusive" and "arm a (guided) did not leave the noise floor" in v.detail
    assert "(4.6 against noise 4.8, real data 8: it must pass noise by 10% of the gap, above 5.12)" in v.detail
    above = {**at_floor, "a": [5.3, 5.4, 5.3]}  # 0.5 above noise > 10 % of the 3.2 gap: the arm learned
    assert verdict(_claim(tmp_path, above)).label == "contradicted"
    # 2D data too, lower-is-better metrics too: the floor is on the worse side
    low = {"a": [0.50, 0.49, 0.5], "b": [0.2, 0.21, 0.2], "references": {"a": {"real": 0.1, "noise": 0.48},
                                                                          "b": {"real": 0.1, "noise": 0.48}}}
    v = verdict(_claim(tmp_path, low, direction="lower"))
    assert v.label == "inconclusive" and "noise floor" in v.detail and "below 0.442)" in v.detail


def test_an_arm_beyond_the_real_data_decides_nothing(tmp_path):
    """A collapsed set scoring above the real data (precision 99 % against the data's 70 %) is a bug signature."""
    refs = {"a": {"real": 0.70, "noise": 0.0}, "b": {"real": 0.70, "noise": 0.0}}
    r = {"a": [0.99, 0.99, 0.98], "b": [0.6, 0.62, 0.61], "references": refs}
    v = verdict(_claim(tmp_path, r))
    assert v.label == "inconclusive" and "beyond the real data" in v.detail and "above 0.77)" in v.detail
    r["a"] = [0.74, 0.75, 0.74]  # above the data by less than 10 % of the gap: allowed
    assert verdict(_claim(tmp_path, r)).label == "consistent"


def test_diverged_seeds_score_their_arms_noise_floor(tmp_path):
    refs = {"a": {"real": 1.0, "noise": 0.0}, "b": {"real": 1.0, "noise": 0.0}}
    r = {"a": [0.9, None, 0.92, 0.91], "b": [0.5, 0.52, 0.51, 0.5], "seeds": [0, 1, 2, 3],
         "diverged": {"a": [1], "b": []}, "references": refs}
    v = verdict(_claim(tmp_path, r))
    # with the diverged seed as noise (0 against 0.52) the pairs disagree: no longer consistent
    assert v.label == "inconclusive" and "1 diverged run scored as noise" in v.detail
    without = {**r, "diverged": {"a": [], "b": []}}  # a missing value that did not diverge is left out
    assert verdict(_claim(tmp_path, without)).label == "consistent"


def test_the_papers_effect_is_weighed(tmp_path):
    effect = "effect = 0.3\neffect_source = \"Table 9\""
    small_gain = {"a": [0.90, 0.82, 0.86], "b": [0.80, 0.81, 0.79]}  # Δ in [−0.05, +0.17]: no gain of 0.3
    v = verdict(_claim(tmp_path, small_gain, comparison=effect))
    assert v.label == "excludes the paper's effect" and "Table 9" in v.detail
    assert verdict(_claim(tmp_path, small_gain)).label == "inconclusive"  # the same numbers without the effect
    sure_small = {"a": [0.85, 0.86, 0.855], "b": [0.80, 0.81, 0.79]}
    v = verdict(_claim(tmp_path, sure_small, comparison=effect))
    assert v.label == "consistent" and v.marks == ("smaller than the paper's effect",)
    big = {"a": [1.15, 1.16, 1.155], "b": [0.80, 0.81, 0.79]}
    assert verdict(_claim(tmp_path, big, comparison=effect)).marks == ()


def test_an_effect_beyond_the_room_the_real_data_leaves_is_not_weighed(tmp_path):
    effect = "effect = 0.3\neffect_source = \"Table 9\""
    refs = {"a": {"real": 1.0, "noise": 0.0}, "b": {"real": 1.0, "noise": 0.0}}
    # b at 0.8 leaves 0.2 to the real data: no model could gain the paper's 0.3 over it
    small_gain = {"a": [0.90, 0.82, 0.86], "b": [0.80, 0.81, 0.79], "references": refs}
    v = verdict(_claim(tmp_path, small_gain, comparison=effect))
    assert v.label == "inconclusive" and "cannot be weighed" in v.detail and "+0.2 to the real data" in v.detail
    sure_small = {"a": [0.85, 0.86, 0.855], "b": [0.80, 0.81, 0.79], "references": refs}
    v = verdict(_claim(tmp_path, sure_small, comparison=effect))
    assert v.label == "consistent" and v.marks == ()
    # the same gain over a baseline with room for the paper's effect: weighed, and excluded
    low_b = {"a": [0.50, 0.42, 0.46], "b": [0.40, 0.41, 0.39], "references": refs}
    assert verdict(_claim(tmp_path, low_b, comparison=effect)).label == "excludes the paper's effect"


def test_reproduced_only_by_equivalence_at_the_papers_scale(tmp_path):
    pv = "paper_value = {value = 0.9, margin = 0.05}"
    inside = {"a": [0.89, 0.91, 0.90], "b": [0.1, 0.1, 0.1]}
    v = verdict(_claim(tmp_path, inside, scale="paper", extra=pv))
    assert v.label == "reproduced" and "inside" in v.detail
    wide = {"a": [0.8, 1.0, 0.9], "b": [0.1, 0.1, 0.1]}  # the same mean, a wider interval: not inside the band
    assert verdict(_claim(tmp_path, wide, scale="paper", extra=pv)).label == "consistent"
    outside = {"a": [0.70, 0.71, 0.72], "b": [0.1, 0.1, 0.1]}
    assert verdict(_claim(tmp_path, outside, scale="paper", extra=pv)).label == "not reproduced"
    # below the paper's scale the same numbers never "reproduce"
    assert verdict(_claim(tmp_path, inside, scale="small", extra=pv)).label == "consistent"


def test_the_equal_steps_pair_has_its_own_verdict(tmp_path):
    r = {"a": [0.97, 0.98, 0.975], "b": [0.80, 0.81, 0.79],
         "equal_steps": {"a": [0.70, 0.71, 0.69], "b": [0.80, 0.81, 0.79], "steps": {"a": [5, 5, 5], "b": [5, 5, 5]}}}
    c = _claim(tmp_path, r)
    assert verdict(c).label == "consistent" and equal_steps_verdict(c).label == "contradicted"


def test_known_answers_hold_or_fail(tmp_path):
    (tmp_path / "k.toml").write_text('paper = "sampling"\nwhere = "x"\nclaim = "c"\nstatus = "known_answer"\n'
                                     'networks = "n"\ntest = "tests/x.py::t"\n')
    (tmp_path / "results").mkdir()
    for status, label in (("passed", "known answer holds"), ("failed", "known answer fails")):
        (tmp_path / "results" / "k.json").write_text(json.dumps({"known_answer": {"test": status}}))
        assert verdict(get_claim("k", tmp_path)).label == label


def test_t_interval_known_answer():
    m, lo, hi = t_interval([1.0, 2.0, 3.0])  # mean 2, sd 1, t(0.975, 2) = 4.302653
    assert m == 2 and hi - 2 == pytest.approx(4.302653 / 3 ** 0.5, rel=1e-6) and lo == pytest.approx(4 - hi)


def test_an_interval_without_spread_says_why_it_has_none(tmp_path):
    """Every seed at the same value (a bounded metric at its ceiling: 8 of 8 modes) gives an interval of zero width:
    the detail says so rather than print a bare [+0.5, +0.5]."""
    same = {"a": [0.9, 0.9, 0.9], "b": [0.8, 0.8, 0.8]}
    assert "no spread: every seed gave the same difference" in verdict(_claim(tmp_path, same)).detail
    spread = {"a": [0.9, 0.91, 0.9], "b": [0.8, 0.8, 0.8]}
    assert "no spread" not in verdict(_claim(tmp_path, spread)).detail


def test_a_metric_that_cannot_tell_collapse_decides_beside_a_collapse_check_that_can(tmp_path):
    """Precision ranks a collapsed set (one image, inside the data) above the real data: alone it decides nothing.
    With the spec's ``collapse_check`` (the mode count) recorded for the same runs, the comparison goes on when both
    arms are off that metric's noise floor, and says so; an arm at the floor there, a check that does not separate,
    or a check not recorded leaves the row inconclusive, each with its reason."""
    refs = {"real": 0.874, "noise": 0.482, "collapsed": 1.0}
    modes_refs = {"real": 1000.0, "noise": 26.0, "collapsed": 1.0}
    r = {"a": [0.871, 0.838, 0.869], "b": [0.862, 0.767, 0.752], "references": {"a": refs, "b": refs}}
    assert "cannot separate a model from collapse" in verdict(_claim(tmp_path, r)).detail  # no check named
    check = '\ncollapse_check = "modes"'
    v = verdict(_claim(tmp_path, r, comparison=check))
    assert v.label == "inconclusive" and "no modes was recorded beside it" in v.detail
    r["collapse_check"] = {"metric": "modes", "a": [998, 996, 998], "b": [935, 921, 935],
                           "references": {"a": modes_refs, "b": modes_refs}}
    v = verdict(_claim(tmp_path, r, comparison=check))
    assert v.label == "inconclusive" and v.interval[0] < 0 < v.interval[1]  # judged: Δ = +0.049 [−0.12, +0.22]
    assert "on modes both arms are off the floors: guided 997.3, base 930.3 (collapsed 1, noise 26, real 1000)" in \
        v.detail
    r["b"] = [0.70, 0.71, 0.69]  # the same check, and a clear gap on precision: the verdict follows the numbers
    assert verdict(_claim(tmp_path, r, comparison=check)).label == "consistent"
    r["collapse_check"]["b"] = [20, 31, 25]  # arm b at the noise floor of the mode count: a collapse, or noise
    v = verdict(_claim(tmp_path, r, comparison=check))
    assert v.label == "inconclusive" and "on modes, arm b (base) did not leave the noise floor" in v.detail
    r["collapse_check"]["b"] = [935, 921, 935]
    r["collapse_check"]["references"] = {w: {**modes_refs, "noise": 990.0} for w in ("a", "b")}  # stacked digits
    v = verdict(_claim(tmp_path, r, comparison=check))
    assert v.label == "inconclusive" and "modes does not separate the real data from noise and collapse here" in v.detail


def test_a_claim_not_run_yet_names_the_cheapest_scale_it_declares(tmp_path):
    text = SPEC.format(direction="higher", extra="", comparison="")
    (tmp_path / "both.toml").write_text(text)
    medium_only = text.replace("[scale.small]", "[scale.medium]")
    (tmp_path / "medium.toml").write_text(medium_only)
    assert "--scale small`" in verdict(get_claim("both", tmp_path)).detail
    v = verdict(get_claim("medium", tmp_path))
    assert v.label == "untested" and "`ebmlab claims run medium --scale medium`" in v.detail


def test_an_equal_compute_reading_leaves_out_seeds_whose_arms_ran_at_different_machine_speeds(tmp_path):
    (tmp_path / "e.toml").write_text(SPEC.format(direction="higher", extra="", comparison="").replace(
        'budget = "same_run"', 'budget = "equal_wall_time"').replace('method = "kale", metric = "base_hq"',
                                                                    'method = "gan", metric = "hq"'))
    ahead = {"a": [0.97, 0.98, 0.975, 0.97], "b": [0.80, 0.81, 0.79, 0.80], "clock": "cpu"}
    pair = {"a": [0.97, 0.98, 0.975, 0.97], "b": [0.80, 0.81, 0.79, 0.80], "steps": {"a": [5] * 4, "b": [5] * 4}}

    def judged(result):
        (tmp_path / "results").mkdir(exist_ok=True)
        (tmp_path / "results" / "e.json").write_text(json.dumps({"small": result}))
        return get_claim("e", tmp_path)

    # seed 1's arms ran 2x apart (b at 0.41 CPU-s of the probe, a at 0.2): left out, said so with the speeds
    c = judged({**ahead, "speed": {"a": [0.2, 0.2, 0.21, 0.2], "b": [0.21, 0.41, 0.2, 0.22]}, "equal_steps": pair})
    v = verdict(c)
    assert v.label == "consistent" and "n = 3" in v.detail
    assert "seed 1 left out: its arms ran at machine speeds 0.2 / 0.41" in v.detail and "2.05×" in v.detail
    # the equal-steps reading of the same runs is not a compute reading: all four seeds
    assert "n = 4" in equal_steps_verdict(c).detail
    # within the tolerance (19 % apart): counted; 21 % apart: left out
    v = verdict(judged({**ahead, "speed": {"a": [0.2] * 4, "b": [0.2, 0.238, 0.2, 0.2]}}))
    assert "n = 4" in v.detail and "left out" not in v.detail
    v = verdict(judged({**ahead, "speed": {"a": [0.2] * 4, "b": [0.2, 0.242, 0.2, 0.2]}}))
    assert "n = 3" in v.detail and "seed 1 left out" in v.detail
    # two seeds apart leave two pairs: too few to decide, and the row says why
    v = verdict(judged({**ahead, "speed": {"a": [0.2] * 4, "b": [0.5, 0.5, 0.2, 0.2]}}))
    assert v.label == "inconclusive" and v.detail.startswith("2 seeds with both arms") and "seed 0 left out" in v.detail
    # runs made before the probe: kept where the two trained side by side (seed 0: overlapping sessions on one
    # host), else left out as not verified (seed 1: one after the other; seed 2: on another host)
    spans = {"a": [[["vm", 0, 100]], [["vm", 0, 100]], [["vm", 0, 100]], None],
             "b": [[["vm", 50, 150]], [["vm", 100, 200]], [["other", 0, 100]], None]}
    v = verdict(judged({**ahead, "speed": {"a": [None, None, None, 0.2], "b": [0.2] * 4}, "spans": spans}))
    assert v.label == "inconclusive" and v.detail.startswith("2 seeds with both arms")
    assert "seed 1 left out: a run of it recorded no machine speed" in v.detail and "seed 2 left out" in v.detail
    assert "seed 0 left" not in v.detail and "1 seed kept without probes: its arms trained side by side" in v.detail
    # a result recorded before speeds were: judged as before, and the row says equal compute was assumed
    v = verdict(judged(ahead))
    assert "n = 4" in v.detail and "equal compute assumed" in v.detail
    # a fixed-steps claim (same_run) is not read at equal compute: the speeds decide nothing
    r = {**ahead, "speed": {"a": [0.2] * 4, "b": [0.5] * 4}}
    assert "n = 4" in verdict(_claim(tmp_path, r, name="fixed")).detail


def test_a_seed_whose_arms_were_scored_by_different_classifiers_is_left_out(tmp_path):
    """Rule 8: per seed, the two arms' runs must name one classifier (``scorer``: their ``clf_sha256``); a seed
    that does not is left out of the reading it is in (the budget pair or the equal-steps pair), and the row says
    so with both classifiers; a result without scorers is judged as before."""
    (tmp_path / "e.toml").write_text(SPEC.format(direction="higher", extra="", comparison="").replace(
        'budget = "same_run"', 'budget = "equal_wall_time"').replace('method = "kale", metric = "base_hq"',
                                                                    'method = "gan", metric = "hq"'))
    ahead = {"a": [0.97, 0.98, 0.975, 0.97], "b": [0.80, 0.81, 0.79, 0.80], "clock": "steps"}
    one, other = "ca256820dad92a7e" * 4, "32a26749b0951ca5" * 4

    def judged(result):
        (tmp_path / "results").mkdir(exist_ok=True)
        (tmp_path / "results" / "e.json").write_text(json.dumps({"small": result}))
        return get_claim("e", tmp_path)

    same = {"a": [one] * 4, "b": [one] * 4}
    mixed = {"a": [one] * 4, "b": [one, other, one, None]}  # seed 3's b names none: not a mismatch
    pair = {**ahead, "steps": {"a": [5] * 4, "b": [5] * 4}}
    c = judged({**ahead, "scorer": mixed, "equal_steps": {**pair, "scorer": same}})
    v = verdict(c)
    assert v.label == "consistent" and "n = 3" in v.detail
    assert "seed 1 left out: its arms were scored by different classifiers (ca256820 / 32a26749)" in v.detail
    assert "n = 4" in equal_steps_verdict(c).detail  # its own runs name one classifier
    c = judged({**ahead, "scorer": same, "equal_steps": {**pair, "scorer": {"a": [one] * 4, "b": [other] * 4}}})
    assert "n = 4" in verdict(c).detail
    es = equal_steps_verdict(c)
    assert es.label == "inconclusive" and es.detail.startswith("0 seeds with both arms")
    assert "n = 4" in verdict(judged(ahead)).detail  # recorded before scorers were


def test_the_scorer_of_a_run_is_its_summarys_classifier_hash(tmp_path):
    from ebmlab.claims.runners import scorer

    runs = [{"status": "ok", "metrics": {"modes": 900, "clf_sha256": "ca256820dad92a7e"}},
            {"status": "ok", "metrics": {"w1": 0.1}}, None, {"status": "ok"}, {"status": "ok", "metrics": None}]
    assert [scorer(r) for r in runs] == ["ca256820dad92a7e", None, None, None, None]
