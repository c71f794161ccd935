"""`ebmlab bench toy --grid FILE`: the product of the axes each method has, tied options, skipped axes."""

import json

import pytest

from ebmlab.bench import grid_settings
from ebmlab.cli import main

GRID = """
"lr_g,lr_d" = [1e-3, 2e-3]
margin = [0.5, 1.5]
tau_search = [false]
"""


def test_grid_settings_skip_axes_a_method_lacks_and_tie_comma_keys():
    grid = {"lr_g,lr_d": [1e-3, 2e-3], "margin": [0.5, 1.5], "steps": [7]}
    gan = grid_settings(grid, "gan")  # gan has no margin: 2 settings, not 4
    assert [s for _, s in gan] == [{"lr_g": 1e-3, "lr_d": 1e-3, "steps": 7}, {"lr_g": 2e-3, "lr_d": 2e-3, "steps": 7}]
    ebgan = grid_settings(grid, "ebgan")
    assert len(ebgan) == 4 and ebgan[3] == ("lr_g,lr_d=0.002 margin=1.5 steps=7",
                                            {"lr_g": 2e-3, "lr_d": 2e-3, "margin": 1.5, "steps": 7})
    assert grid_settings({"d_hidden": [[8, 8], [4]]}, "gan")[0] == ("d_hidden=8,8", {"d_hidden": [8, 8]})


def test_a_method_scoped_axis_applies_to_that_method_only():
    grid = {"lr_g": [1e-3, 2e-3], "gan:n_critic": [1, 2], "margin": [0.5]}
    gan = grid_settings(grid, "gan")
    assert len(gan) == 4 and gan[3] == ("lr_g=0.002 gan:n_critic=2", {"lr_g": 2e-3, "n_critic": 2})
    ebgan = grid_settings(grid, "ebgan")  # ebgan has n_critic too, but the axis is gan's
    assert [s for _, s in ebgan] == [{"lr_g": 1e-3, "margin": 0.5}, {"lr_g": 2e-3, "margin": 0.5}]


def test_an_axis_of_points_sets_each_tables_options_together():
    grid = {"gan:budget": [{"steps": 60}, {"n_critic": 5, "steps": 15}], "lr_g": [1e-3, 2e-3]}
    gan = grid_settings(grid, "gan")
    assert [s for _, s in gan] == [{"steps": 60, "lr_g": 1e-3}, {"steps": 60, "lr_g": 2e-3},
                                   {"n_critic": 5, "steps": 15, "lr_g": 1e-3}, {"n_critic": 5, "steps": 15, "lr_g": 2e-3}]
    assert gan[2][0] == "gan:budget=n_critic=5,steps=15 lr_g=0.001"
    assert [s for _, s in grid_settings(grid, "ebgan")] == [{"lr_g": 1e-3}, {"lr_g": 2e-3}]  # the points are gan's
    # an unscoped axis of points applies to the methods having every option it sets
    pts = {"pts": [{"margin": 1.0, "steps": 3}, {"margin": 2.0, "steps": 4}]}
    assert [s for _, s in grid_settings(pts, "ebgan")] == pts["pts"]
    assert [s for _, s in grid_settings(pts, "gan")] == [{}]


def test_bench_grid_runs_the_product_and_writes_a_per_setting_table(tmp_path, capsys):
    gfile, out = tmp_path / "grid.toml", tmp_path / "b"
    gfile.write_text(GRID)
    assert main(["bench", "toy", "--methods", "gan,ebgan", "--data", "ring8", "--seeds", "1", "--steps", "3",
                 "--out", str(out), "--grid", str(gfile), "eval_samples=100", "eval_density=false",
                 "loggers="]) == 0
    res = json.loads((out / "results.json").read_text())
    runs = res["runs"]
    assert sum(r["method"] == "gan" for r in runs) == 2 and sum(r["method"] == "ebgan" for r in runs) == 4
    cfg = json.loads((out / "runs" / "ebgan-ring8-g3-s0" / "config.json").read_text())
    assert cfg["method_config"]["lr_g"] == cfg["method_config"]["lr_d"] == 2e-3
    assert cfg["method_config"]["margin"] == 1.5 and cfg["method_config"]["tau_search"] is False
    assert cfg["run"]["steps"] == 3 and cfg["run"]["seed"] == 0
    assert {r["setting"] for r in res["setting_rows"] if r["method"] == "gan"} == {"lr_g,lr_d=0.001", "lr_g,lr_d=0.002"}
    assert len(res["setting_rows"]) == 6 and all(r["runs"] == 1 for r in res["setting_rows"])
    md = (out / "results.md").read_text()
    assert "## Per setting" in md and "| ring8 | ebgan | lr_g,lr_d=0.002 margin=1.5 tau_search=False | 1 | 0 |" in md
    # the main table's row of a method run at several settings is a mean over settings, and says so
    assert "| ring8 | gan (2 settings pooled: see per setting) | 2 | 0 |" in md
    assert "| ring8 | ebgan (4 settings pooled: see per setting) | 4 | 0 |" in md


@pytest.mark.parametrize("grid, msg", [
    ("marginn = [1.0]", "marginn: an option of none of the methods gan, ebgan"),
    ("margin = 1.0", "'margin' must map to a non-empty list of values"),
    ("lr_g = [1e-3, 1e-4]", "lr_g: also given as key=value"),
    ('"gan:margin" = [1.0]', "gan:margin: an option of none of the methods gan, ebgan"),
    ('"vgan:lr_e" = [1.0]', "vgan:lr_e: an option of none of the methods gan, ebgan"),
    ('"gan:pts" = [{n_criticc = 5}]', "gan:n_criticc: an option of none of the methods gan, ebgan"),
    ('pts = [{steps = 5}, 3]', "'pts' mixes tables of options with plain values"),
    ('"a,b" = [{steps = 5}]', "'a,b' mixes tables of options with plain values (or names several options"),
    ('pts = [{}]', "or has an empty table"),
])
def test_bad_grid_files_are_rejected(tmp_path, capsys, grid, msg):
    gfile = tmp_path / "grid.toml"
    gfile.write_text(grid)
    assert main(["bench", "toy", "--methods", "gan,ebgan", "--data", "ring8", "--seeds", "1", "--steps", "1",
                 "--out", str(tmp_path / "b"), "--grid", str(gfile), "lr_g=1e-3"]) == 2
    assert msg in capsys.readouterr().err


SHARD_GRID = '''
lr_g = [1e-3, 2e-3]
'''


def _table_lines(path):
    """The results tables without the lines naming the command, wall time and jobs, and without the ``seconds``,
    ``train s`` and ``train cpu s`` columns (each run's own times, the one thing two runs of a grid do not share)."""
    out, drop = [], set()
    for line in path.read_text().splitlines():
        if line.startswith(("Command:", "Machine:")):
            continue
        if line.startswith("| data"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            drop = {i for i, c in enumerate(cells) if c in ("seconds", "train s", "train cpu s")}
        if line.startswith("|"):
            cells = line.strip("|").split("|")
            line = "|".join(c for i, c in enumerate(cells) if i not in drop)
        out.append(line)
    return out


def _no_seconds(rows):
    return [{k: v for k, v in r.items() if k not in ("seconds", "train_s", "cpu_s")} for r in rows]


def test_shards_and_collect_give_the_unsharded_table(tmp_path, capsys):
    gfile = tmp_path / "grid.toml"
    gfile.write_text(SHARD_GRID)
    common = ["--methods", "gan", "--data", "ring8", "--seeds", "2", "--steps", "3", "--grid", str(gfile),
              "eval_samples=100", "eval_density=false", "loggers="]
    assert main(["bench", "toy", "--out", str(tmp_path / "whole"), *common]) == 0
    sharded = tmp_path / "sharded"
    for i in (2, 0):  # parts in any order; part 1 not yet run
        assert main(["bench", "toy", "--out", str(sharded), "--shard", f"{i}/3", *common]) == 0
    assert not (sharded / "results.md").exists()  # a part writes its part file only
    capsys.readouterr()
    assert main(["bench", "collect", str(sharded)]) == 0
    assert "part 1 of 3" in capsys.readouterr().out
    assert json.loads((sharded / "results.json").read_text())["missing"] == ["part 1 of 3"]
    assert main(["bench", "toy", "--out", str(sharded), "--shard", "1/3", *common]) == 0
    assert main(["bench", "collect", str(sharded)]) == 0
    whole, merged = (json.loads((d / "results.json").read_text()) for d in (tmp_path / "whole", sharded))
    assert _no_seconds(merged["rows"]) == _no_seconds(whole["rows"])
    assert _no_seconds(merged["setting_rows"]) == _no_seconds(whole["setting_rows"])
    assert len(merged["setting_rows"]) == 2 and merged["rows"][0]["runs"] == 4
    assert [r["metrics"] for r in merged["runs"]] == [r["metrics"] for r in whole["runs"]]
    assert _table_lines(sharded / "results.md") == _table_lines(tmp_path / "whole" / "results.md")
    # a re-run part reuses its finished runs (their checkpoints are not rewritten)
    ckpts = sorted((sharded / "runs").glob("*/checkpoint.pt"))
    stamps = [c.stat().st_mtime_ns for c in ckpts]
    assert main(["bench", "toy", "--out", str(sharded), "--shard", "1/3", *common]) == 0
    assert [c.stat().st_mtime_ns for c in ckpts] == stamps


def test_collect_refuses_parts_of_another_grid_and_bad_shards(tmp_path, capsys):
    out = tmp_path / "b"
    base = ["--data", "ring8", "--seeds", "1", "--steps", "2", "eval_samples=100", "eval_density=false",
            "loggers="]
    assert main(["bench", "toy", "--methods", "gan", "--out", str(out), "--shard", "0/2", *base]) == 0
    assert main(["bench", "toy", "--methods", "gan", "--out", str(out), "--shard", "1/3", *base]) == 0
    capsys.readouterr()
    assert main(["bench", "collect", str(out)]) == 2
    assert "another grid" in capsys.readouterr().err
    for bad in ("2/2", "1", "a/b", "-1/2"):
        assert main(["bench", "toy", "--methods", "gan", "--out", str(tmp_path / "x"), f"--shard={bad}", *base]) == 2
        assert "--shard" in capsys.readouterr().err
    assert main(["bench", "collect", str(tmp_path / "nothing")]) == 2
    assert "no part files" in capsys.readouterr().err


def _record(tmp_path, sessions):
    (tmp_path / "run.json").write_text(json.dumps({"format": "ebmlab-run-record-1", "sessions": sessions}))
    return tmp_path


def test_recorded_seconds_only_when_the_whole_run_was_recorded(tmp_path):
    from ebmlab.bench.run import _recorded_seconds
    from ebmlab.bench.tables import _fmt

    s = lambda a, b, t0, t1: {"start_step": a, "end_step": b, "started": f"2026-01-01T00:00:{t0:02d}+0000",
                              "ended": f"2026-01-01T00:00:{t1:02d}+0000"}
    assert _recorded_seconds(_record(tmp_path, [s(0, 5, 0, 10), s(5, 9, 20, 27)])) == 17.0  # resumed: both sessions
    # a run trained before run records existed, only re-opened since: its training time is unknown, not 3 s
    assert _recorded_seconds(_record(tmp_path, [s(9, 9, 0, 3)])) is None
    killed = s(0, 5, 0, 10)
    del killed["ended"]
    assert _recorded_seconds(_record(tmp_path, [killed, s(3, 9, 20, 27)])) is None
    assert _fmt({"mean": 2.0, "std": 0.0, "n": 1}, "seconds") == "2"  # one run: no "± 0"
    assert _fmt({"mean": 2.0, "std": 0.5, "n": 2}, "seconds") == "2 ± 0.5"


def test_a_mean_over_fewer_runs_than_finished_says_over_how_many():
    """An exact NLL is printed only when the quadrature certifies it, so a row's nll may average fewer runs than
    it has; the cell says so instead of passing for a mean over all of them."""
    from ebmlab.bench.tables import _fmt, aggregate

    runs = [{"method": "bib", "data": "ring8", "status": "ok", "seconds": 1.0,
             "metrics": {"modes": 8, **({"nll": float(i)} if i < 4 else {"nll_box": 9.0})}} for i in range(5)]
    (row,) = aggregate(runs)
    assert row["ok"] == 5 and row["nll"]["n"] == 4 and row["modes"]["n"] == 5
    assert _fmt(row["nll"], "nll", row["ok"]) == "1.5 ± 1.3 (4 of 5)"
    assert _fmt(row["modes"], "modes", row["ok"]) == "8 ± 0"
    assert _fmt(row["nll_box"], "nll_box", row["ok"]) == "9 (1 of 5)"


def test_a_killed_worker_gives_one_clear_error_not_a_traceback(tmp_path, capsys, monkeypatch):
    """A worker killed by the system (the OOM killer, here faked) broke the pool; the bench printed a
    BrokenProcessPool traceback. Now: exit 2, what happened, what to change, and that finished runs are kept."""
    import ebmlab.bench.run as bench
    from concurrent.futures.process import BrokenProcessPool

    class KilledPool:
        def __init__(self, *a, **k):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def map(self, fn, tasks):
            raise BrokenProcessPool("A process in the process pool was terminated abruptly")

    monkeypatch.setattr(bench, "ProcessPoolExecutor", KilledPool)
    code = main(["bench", "toy", "--methods", "gan", "--data", "ring8", "--seeds", "2", "--steps", "3", "--jobs",
                 "2", "--out", str(tmp_path / "b"), "eval_samples=100", "loggers="])
    err = capsys.readouterr().err
    assert code == 2
    assert "worker process of the bench was killed" in err and "--jobs" in err and "resumes" in err
    assert "Traceback" not in err and not (tmp_path / "b" / "results.md").exists()


def test_a_report_says_when_runs_were_scored_by_different_classifiers(tmp_path):
    """Feature metrics from two domain classifiers live in two feature spaces: the report lists which runs used
    which, and a kept real-data reference is used as given (not recomputed with today's classifier)."""
    from ebmlab.bench import classifiers_used, write_report

    run = lambda m, seed, sha: {"method": m, "data": "ring8", "seed": seed, "status": "ok", "seconds": 1.0,
                                "metrics": {"modes": 8, "clf_fd": 10.0 + seed, "clf_sha256": sha}}
    results = [run("gan", 0, "aaaa"), run("gan", 1, "aaaa"), run("kale", 0, "bbbb"),
               {"method": "kale", "data": "ring8", "seed": 1, "status": "diverged", "seconds": None}]
    assert classifiers_used(results) == {"aaaa": ["gan seeds 0, 1"], "bbbb": ["kale seed 0"]}
    two = [{**run("gan", 0, "aaaa"), "setting": "gan:steps=5"}, {**run("gan", 0, "aaaa"), "setting": "gan:steps=9"}]
    assert classifiers_used(two) == {"aaaa": ["gan (gan:steps=5) seed 0", "gan (gan:steps=9) seed 0"]}
    kept = {"ring8": {"modes": 8, "clf_fd": 1.5}}
    rep = write_report(results, tmp_path, command="c", meta={"machine": "m", "torch": "t", "wall_s": 1.0, "jobs": 1},
                       suite="toys", datasets=["ring8"], eval_samples=10, grid=None, reference=kept)
    assert rep["reference_real_data"] == kept and rep["classifiers"]["bbbb"] == ["kale seed 0"]
    md = (tmp_path / "results.md").read_text()
    assert "different domain classifiers" in md and "aaaa: gan seeds 0, 1; bbbb: kale seed 0" in md
    one = write_report(results[:2], tmp_path, command="c", meta={"machine": "m", "torch": "t", "wall_s": 1.0, "jobs": 1},
                       suite="toys", datasets=["ring8"], eval_samples=10, grid=None, reference=kept)
    assert "classifiers" not in one and "different domain classifiers" not in (tmp_path / "results.md").read_text()


def test_the_bench_references_are_computed_at_the_count_its_runs_are_evaluated_at():
    """eval=quick caps a run's final evaluation at QUICK_SAMPLES; the bench's reference rows (real data, noise)
    are computed at that count too, not at eval_samples (a 500-sample run beside a 2500-sample noise floor reads
    as if noise covered a third of the modes it covers)."""
    from ebmlab.bench.run import evaluated_count
    from ebmlab.config import RunConfig
    from ebmlab.evaluation import QUICK_SAMPLES

    assert evaluated_count({}) == RunConfig().eval_samples
    assert evaluated_count({"eval_samples": 300}) == 300
    assert evaluated_count({"eval": "quick"}) == QUICK_SAMPLES < RunConfig().eval_samples
    assert evaluated_count({"eval": "quick", "eval_samples": 200}) == 200
    assert evaluated_count({"eval": "full", "eval_samples": 900}) == 900
