"""`ebmlab bench render DIR`: a finished bench's table written again from its recorded runs, in this version's
presentation (aggregation, columns, the 2D noise floor), without training or evaluating anything."""

import json

from ebmlab.cli import main

META = {"machine": "m", "torch": "t", "wall_s": 12.0, "jobs": 1}


def _old_report(tmp_path, command="ebmlab bench toy --methods gan --data ring8 --seeds 3 eval_samples=400"):
    """A report as benches wrote them before the suite, data sets, sample count and noise floor were kept, with
    recalled rows in their first form ([name, modes, hq])."""
    modes, hq = [8, 6, 7], [0.5, 0.25, 0.6]
    runs = [{"method": "gan", "data": "ring8", "seed": s, "status": "ok", "seconds": 10.0 + s,
             "metrics": {"modes": modes[s], "hq": hq[s], **({"mode_kl": 0.3} if s == 0 else {})}}
            for s in range(3)]
    runs.append({"method": "gan", "data": "ring8", "seed": 3, "status": "diverged", "seconds": None})
    rep = {"command": command, "meta": META, "rows": [{"stale": True}],
           "reference_real_data": {"ring8": {"modes": 8, "hq": 0.9888}},
           "recalled": {"ring8": [["PacGAN2 (PacGAN table, recalled)", 7.9, 0.956]]}, "runs": runs}
    out = tmp_path / "old"
    out.mkdir()
    (out / "results.json").write_text(json.dumps(rep))
    (out / "results.md").write_text("old table\n")
    return out


def test_render_writes_the_table_again_from_the_recorded_runs_with_the_floor(tmp_path, capsys):
    from ebmlab.metrics import noise_floor

    out = _old_report(tmp_path)
    recorded = json.loads((out / "results.json").read_text())["runs"]
    assert main(["bench", "render", str(out)]) == 0
    md = (out / "results.md").read_text()
    rep = json.loads((out / "results.json").read_text())
    # the seed mean of the recorded metrics, hand-computed: modes (8+6+7)/3 = 7, sd 1; hq 45 ± 18.03 %
    (row,) = rep["rows"]
    assert row["runs"] == 4 and row["diverged"] == 1 and row["ok"] == 3
    assert row["modes"] == {"mean": 7.0, "std": 1.0, "n": 3}
    assert abs(row["hq"]["mean"] - 0.45) < 1e-12 and abs(row["hq"]["std"] - 0.180277563773) < 1e-9
    assert "| ring8 | gan | 4 | 1 | 7 ± 1 | 45 ± 18 | 0.3 (1 of 3) |" in md  # one run had mode_kl: said so
    # the floor at the sample count the command gave (eval_samples=400), not the default 2500
    assert rep["eval_samples"] == 400 and rep["suite"] == "toy" and rep["datasets"] == ["ring8"]
    assert rep["reference_noise"]["ring8"] == noise_floor("ring8", 400)["noise_floor"]
    assert "| ring8 | *uniform noise (floor)* |" in md and "Sample metrics on 400 samples" in md
    # the recorded reference and recalled rows are kept; the runs are unchanged; the table says it was rewritten
    assert rep["reference_real_data"] == {"ring8": {"modes": 8, "hq": 0.9888}}
    assert "| ring8 | *PacGAN2 (PacGAN table, recalled)* | – | – | 7.9 | 95.6 |" in md
    assert rep["recalled"]["ring8"] == [["PacGAN2 (PacGAN table, recalled)", {"modes": 7.9, "hq": 0.956}]]
    assert rep["runs"] == recorded
    assert "Table written again on " in md and f"ebmlab bench render {out}" in md
    assert rep["rendered"]["by"] == f"ebmlab bench render {out}"
    assert "Command: `ebmlab bench toy --methods gan --data ring8 --seeds 3 eval_samples=400`" in md
    assert "wall time 12 s" in md
    # rendering again gives the same table (the floor is deterministic)
    first = md
    assert main(["bench", "render", str(out)]) == 0
    assert (out / "results.md").read_text() == first


def test_render_keeps_what_a_newer_report_recorded(tmp_path):
    """A report that kept its suite, data sets and sample count is rendered with them, whatever its command says."""
    out = _old_report(tmp_path, command="python my_script.py")
    rep = json.loads((out / "results.json").read_text())
    rep.update(suite="toy", datasets=["ring8"], eval_samples=300)
    (out / "results.json").write_text(json.dumps(rep))
    assert main(["bench", "render", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["eval_samples"] == 300
    assert "Sample metrics on 300 samples" in (out / "results.md").read_text()


def test_an_image_report_is_rendered_without_a_floor(tmp_path):
    out = _old_report(tmp_path, command="ebmlab bench images --methods gan --data stacked_digits eval_samples=1000")
    rep = json.loads((out / "results.json").read_text())
    for r in rep["runs"]:
        r["data"] = "stacked_digits"
    rep["reference_real_data"] = {"stacked_digits": {"modes": 1000}}
    rep["recalled"] = {}
    (out / "results.json").write_text(json.dumps(rep))
    assert main(["bench", "render", str(out)]) == 0
    md = (out / "results.md").read_text()
    assert md.startswith("# Image benchmark") and "uniform noise" not in md
    assert "| stacked_digits | gan | 4 | 1 | 7 ± 1 |" in md


def test_bad_reports_are_refused_before_anything_is_written(tmp_path, capsys):
    good = _old_report(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    cases = [
        ("{not json", "not a readable bench report"),
        (json.dumps({"command": "c", "meta": META, "runs": []}), "reference_real_data"),
        (json.dumps({"command": "c", "meta": {"machine": "m"}, "runs": [{"method": "gan"}],
                     "reference_real_data": {}}), "meta (machine, torch, wall_s, jobs)"),
        (json.dumps({"command": "c", "meta": META, "reference_real_data": {},
                     "runs": [{"method": "gan", "data": "ring8", "seed": 0, "status": "ok"}]}), "a finished run's metrics"),
        (json.dumps({"command": "c", "meta": META, "reference_real_data": {},
                     "runs": [{"method": "gan", "data": "ring8", "seed": 0, "status": "ok", "metrics": {}}],
                     "recalled": {"ring8": [["x", "y"]]}}), "recalled rows"),
    ]
    before = (good / "results.md").read_text(), (good / "results.json").read_text()
    for text, msg in cases:
        (bad / "results.json").write_text(text)
        capsys.readouterr()
        assert main(["bench", "render", str(good), str(bad)]) == 2
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err
        assert ((good / "results.md").read_text(), (good / "results.json").read_text()) == before
    assert main(["bench", "render", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["bench", "render"]) == 2
    assert "usage: ebmlab bench render DIR" in capsys.readouterr().err


def test_runs_with_non_finite_samples_are_named_under_the_table_and_in_the_report(tmp_path):
    """A run whose samples were partly NaN has distances over its finite samples only: results.md and the HTML
    report say which run and what share, and a table of all-finite runs says nothing."""
    out = _old_report(tmp_path)
    rep = json.loads((out / "results.json").read_text())
    rep["runs"][1]["metrics"]["frac_finite"] = 0.875
    rep["runs"][0]["metrics"]["frac_finite"] = 1.0
    (out / "results.json").write_text(json.dumps(rep))
    assert main(["bench", "render", str(out)]) == 0
    md = (out / "results.md").read_text()
    assert "Note — gan on ring8: samples not all finite (seed 1: 12.5% of its samples NaN or ±inf)" in md
    assert "seed 0" not in md.split("Note —")[1]
    assert main(["report", str(out), "--out", str(tmp_path / "r.html")]) == 0
    assert "seed 1: 12.5% of its samples NaN or ±inf" in (tmp_path / "r.html").read_text()
    (tmp_path / "b").mkdir()
    clean = _old_report(tmp_path / "b")
    assert main(["bench", "render", str(clean)]) == 0
    assert "not all finite" not in (clean / "results.md").read_text()
