"""Learning curves of a claim's arms (``ebmlab.claims.curves``): a verdict at equal steps reads only points every run
of every arm reached; one at equal compute reads each run at its last point within the CPU time every run reached;
a real run's curve comes from its periodic evaluations and its final one; the readings get their own verdicts."""

import json

import pytest

import ebmlab
from ebmlab.claims import curves
from ebmlab.claims.verdict import curve_verdicts, verdict

from .test_verdicts import _claim

# (step, CPU seconds, value): the fast arm a reaches step 40, arm b's seeds only 20 and 30
A = [[(10, 1.0, 0.50), (20, 2.0, 0.60), (30, 3.0, 0.70), (40, 4.0, 0.95)],
     [(10, 1.1, 0.52), (20, 2.1, 0.61), (30, 3.1, 0.72), (40, 4.1, 0.96)],
     [(10, 0.9, 0.49), (20, 1.9, 0.59), (30, 2.9, 0.69), (40, 3.9, 0.94)]]
B = [[(10, 2.0, 0.70), (20, 4.0, 0.80)],
     [(10, 2.1, 0.71), (20, 4.2, 0.81), (30, 6.3, 0.85)],
     [(10, 1.9, 0.69), (20, 3.9, 0.79)]]


def test_equal_steps_reads_only_the_steps_every_run_of_every_arm_reached():
    got = {"a": A, "b": B}
    assert curves.common_step(got) == 20  # not 30 (two of b's seeds never got there), nor a's 40
    r = curves.read_at(got, step=20)
    assert r["a"] == [0.60, 0.61, 0.59] and r["b"] == [0.80, 0.81, 0.79]
    assert r["steps"] == {"a": [20, 20, 20], "b": [20, 20, 20]} and r["read_at"] == {"step": 20}
    assert curves.read_at(got, step=30) is None  # a step some run lacks is never read
    assert curves.common_step({"a": A, "b": [[(15, 1.0, 0.1)]]}) is None  # no step shared by all
    assert curves.common_step({"a": A, "b": []}) is None


def test_equal_compute_reads_each_run_within_the_cpu_time_every_run_reached():
    got = {"a": A, "b": B}
    assert curves.common_cpu(got) == pytest.approx(3.9)  # b's third seed ended first
    r = curves.read_at(got, cpu=3.9)
    # each run at its last point at or before 3.9 CPU-s, to one step: a at step 30, 40 for the seeds that got there
    # by 3.9 (the third) or within one of their steps of it (the first: 4.0 CPU-s less 0.1 a step)
    assert r["steps"]["a"] == [40, 30, 40] and r["a"] == [0.95, 0.72, 0.94]
    assert r["steps"]["b"] == [20, 10, 20] and r["b"] == [0.80, 0.71, 0.79]  # b's first: 4.0 less 0.2 a step
    assert curves.read_at(got, cpu=0.5) is None  # a run with no point that early is not read


def test_runs_stopped_by_one_budget_are_read_at_their_final_points():
    """A CPU budget stops a run after the step that crossed it: runs given 1800 CPU-s end at 1800.3 to 1800.8, and
    each is read at its final evaluation, not at its evaluation 500 steps before (the first reading of the medium
    campaign's VCD row read two of its three seeds there)."""
    vcd = [[(2500, 1484.7, 999.0), (2998, 1800.7, 1000.0)], [(2500, 1527.8, 997.0), (2927, 1800.6, 1000.0)],
           [(3000, 1745.4, 1000.0), (3097, 1800.4, 997.0)]]
    vgan = [[(1500, 1375.1, 973.0), (1960, 1800.8, 1000.0)], [(1500, 1412.4, 948.0), (1906, 1800.5, 977.0)],
            [(2000, 1750.2, 994.0), (2055, 1800.3, 995.0)]]
    got = {"a": vcd, "b": vgan}
    assert curves.common_cpu(got) == pytest.approx(1800.3)
    r = curves.read_at(got, cpu=1800.3)
    assert r["steps"] == {"a": [2998, 2927, 3097], "b": [1960, 1906, 2055]}
    assert r["a"] == [1000.0, 1000.0, 997.0] and r["b"] == [1000.0, 977.0, 995.0]
    # a point more than one step past the reading is not taken: at 1760 CPU-s each run is read before its end
    r = curves.read_at(got, cpu=1760.0)
    assert r["steps"] == {"a": [2500, 2500, 3000], "b": [1500, 1500, 2000]}


def test_curve_readings_get_their_own_verdicts_by_the_same_rules(tmp_path):
    got = {"a": A, "b": B}
    result = {"a": [0.95, 0.96, 0.94], "b": [0.80, 0.85, 0.79], "curve_readings": curves.readings(got)}
    c = _claim(tmp_path, result)  # direction higher: a − b
    assert verdict(c).label == "consistent"
    cv = curve_verdicts(c)
    assert cv["equal_steps"].label == "contradicted" and cv["equal_steps"].detail.startswith("at step 20: Δ = -0.2")
    assert cv["equal_compute"].detail.startswith("at 3.9 CPU-s:")
    assert curve_verdicts(_claim(tmp_path, {"a": [0.9] * 3, "b": [0.8] * 3}, name="d")) == {}


def test_a_runs_curve_is_its_periodic_and_final_evaluations_and_the_picture_is_written(tmp_path):
    over = {"steps": 20, "eval_every": 5, "eval_samples": 200, "eval_density": False, "plots": False,
            "loggers": "", "log_every": 5, "metrics": "modes,hq"}
    res = ebmlab.train("gan", "ring8", out=tmp_path / "r", overrides=over, progress=False)
    c = curves.run_curve(tmp_path / "r", "hq")
    assert [p[0] for p in c] == [5, 10, 15, 20]
    assert all(a[1] < b[1] for a, b in zip(c, c[1:]))  # CPU seconds rise along the curve
    assert c[-1][2] == res.summary["metrics"]["hq"]  # the last point is the final evaluation
    evals = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [p[2] for p in c[:3]] == [e["hq"] for e in evals if e["kind"] == "eval"][:3]
    png = curves.plot({"a": [c, c], "b": [c[:2], c[:3]]}, {"a": "GAN", "b": "GAN, shorter"}, "hq",
                      tmp_path / "c.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # on the wall clock (runs on a GPU): the same points at the wall seconds each evaluation recorded
    w = curves.run_curve(tmp_path / "r", "hq", clock="wall")
    assert [(p[0], p[2]) for p in w] == [(p[0], p[2]) for p in c]
    assert [p[1] for p in w[:3]] == [e["train_seconds"] for e in [e for e in evals if e["kind"] == "eval"][:3]]
    r = curves.readings({"a": [w], "b": [w]}, clock="wall")["equal_compute"]
    assert set(r["read_at"]) == {"wall_s"} and "wall_s" in r and "cpu_s" not in r


def test_from_which_point_on_the_claims_direction_holds_along_the_curves(tmp_path):
    """Along the curves, the first point from which every later reading is consistent (95 %), at shared steps and in
    compute; an arm that is ahead per step but slower per second holds from a step on and not in compute."""
    from ebmlab.claims.render import render
    from ebmlab.claims.verdict import holds_from

    a_vals, b_vals = [0.3, 0.5, 0.8, 0.85, 0.9], [0.6] * 5
    steps = [10, 20, 30, 40, 50]
    got = {"a": [[(s, s * 0.1, v + d) for s, v in zip(steps, a_vals)] for d in (0.0, 0.01, -0.01)],
           "b": [[(s, s * 0.05, v + d / 2) for s, v in zip(steps, b_vals)] for d in (0.0, 0.01, -0.01)]}
    result = {"a": [0.9, 0.91, 0.89], "b": [0.6, 0.605, 0.595], "curves": got}
    c = _claim(tmp_path, result)  # direction higher: a − b
    held = holds_from(c)
    assert held["steps"] == "from step 30 on (3 of 5 points)"  # behind at 10 and 20, ahead with confidence after
    # in compute (a twice as slow a step): read up to b's last point at 2.5 CPU-s, a never ahead there
    assert held["compute"] == "not at the last of 4 points"
    row = next(line for line in render([c]).splitlines() if "`c`" in line)
    assert "the claim's direction holds (95 %) along the curves: at shared steps from step 30 on (3 of 5 points); " \
           "in compute not at the last of 4 points" in row
    got["a"][1][3] = (40, 4.0, 0.4)  # one seed falls back at step 40: from step 50 on only
    assert holds_from(_claim(tmp_path, {**result, "curves": got}, name="d"))["steps"] == "from step 50 on (1 of 5 " \
                                                                                      "points)"
    assert holds_from(_claim(tmp_path, {"a": [0.9] * 3, "b": [0.8] * 3}, name="e")) == {}  # no curves


def test_the_curves_axis_is_the_comparisons_metric_and_an_arm_reading_another_key_says_so(tmp_path):
    from types import SimpleNamespace

    from ebmlab.claims.runners import curve_labels

    c = _claim(tmp_path, {"a": [0.9] * 3, "b": [0.8] * 3})  # metric hq; a "guided", b "base" reading base_hq
    metric, labels = curve_labels(c, {"a": SimpleNamespace(metric="hq"), "b": SimpleNamespace(metric="base_hq")})
    assert metric == "hq" and labels == {"a": "guided", "b": "base [base_hq]"}
