"""The HTML report of a bench directory, opened in a real headless browser (Chromium from the Debian packages,
installed by .ci/run): the page loads without script errors, every image is decoded, and the screenshot is not
blank. Skipped, with the reason, where no Chromium is installed."""

import re
import shutil
import subprocess

import pytest

from ebmlab.cli import main

BROWSERS = ["chromium-headless-shell", "chromium", "chromium-browser", "google-chrome"]
BROWSER = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "b"
    assert main(["bench", "toy", "--methods", "gan,vgan", "--data", "ring8", "--seeds", "1", "--steps", "3",
                 "--out", str(out), "eval_samples=100", "eval_density=false", "loggers="]) == 0
    return out


def test_bench_writes_a_self_contained_report(bench_dir):
    page = (bench_dir / "report.html").read_text()
    assert "<table" in page and page.count("data:image/png;base64,") >= 4  # 2 runs × (samples, curves) at least
    # nothing is fetched from the network: no external src/href
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    for method in ("gan", "vgan"):
        assert f">{method}<" in page
    # 2D data: the noise floor beside the real data, in the comparison and in each run's table
    assert "uniform noise (floor)" in page and page.count("<th class=\"\">uniform noise</th>") == 2  # a table per run


def test_report_of_runs_refuses_bad_paths(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "r.html")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r.txt")]) == 2
    assert not (tmp_path / "r.txt").exists()


@pytest.mark.skipif(BROWSER is None, reason="no headless Chromium installed (apt-get install chromium-headless-shell)")
def test_report_renders_in_a_headless_browser(bench_dir, tmp_path):
    url = (bench_dir / "report.html").resolve().as_uri()
    flags = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run(flags + ["--virtual-time-budget=5000", "--dump-dom", url], capture_output=True, text=True,
                         timeout=120).stdout
    body = re.search(r"<body[^>]*>", dom)
    assert body, dom[:500]
    assert "data-errors" not in body[0], body[0]
    n_ok, n_all = map(int, re.search(r'data-images="(\d+)/(\d+)"', body[0]).groups())
    assert n_all >= 4 and n_ok == n_all, body[0]
    shot = tmp_path / "shot.png"
    subprocess.run(flags + ["--window-size=1200,1600", f"--screenshot={shot}", url], capture_output=True,
                   timeout=120)
    from matplotlib.image import imread

    img = imread(shot)[..., :3]
    assert img.shape[0] > 500 and img.std() > 0.05  # not blank
    assert (img.mean(axis=2) < 0.5).mean() > 0.005  # dark pixels: text, tables and plots drawn


def test_report_of_several_data_sets_and_a_super_resolution_run(bench_dir, tmp_path):
    """One comparison table per data set (not one table of every metric of every set), samples before curves in
    each run's section, and a super-resolution run shown with its own metrics rather than 'step None'."""
    import json

    runs = sorted((bench_dir / "runs").iterdir())
    assert main(["train", "gan", "--data", "digits", "--steps", "2", "--out", str(tmp_path / "img"), "--no-progress",
                 "eval_samples=60", "loggers=", "log_every=1"]) == 0
    sr = tmp_path / "sr"
    sr.mkdir()
    (sr / "config.json").write_text(json.dumps({"format": "ebmlab-sr-run-1", "model": "mse", "data": "fashion",
                                                "scale": 4, "steps": 10}))
    (sr / "summary.json").write_text(json.dumps({"test": {"psnr": 20.5, "ssim": 0.75}}))
    out = tmp_path / "r.html"
    assert main(["report", *map(str, runs), str(tmp_path / "img"), str(sr), "--out", str(out)]) == 0
    page = out.read_text()
    assert "<h3>ring8</h3>" in page and "<h3>digits</h3>" in page
    ring8_table = page.split("<h3>ring8</h3>")[1].split("<h3>digits</h3>")[0]
    assert "clf_fd" not in ring8_table  # the image metrics stay in the digits table
    assert "super-resolution model mse" in page and "20.5" in page and "step None" not in page
    section = page.split("<h2>img</h2>")[1]
    assert section.index("Samples and densities") < section.index("Training curves")


def test_a_bench_directory_without_its_runs_still_gets_its_tables(bench_dir, tmp_path, capsys):
    """A recorded bench (results.json and results.md only, its runs pruned or never shared) is shown as tables:
    the real-data row shaded, the floor in italics, the method rows as results.md has them."""
    import json
    import shutil as sh

    kept = tmp_path / "kept"
    kept.mkdir()
    for f in ("results.json", "results.md"):
        sh.copy(bench_dir / f, kept / f)
    assert main(["report", str(kept), "--out", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    rows = re.findall(r"<tr class=\"(\w*)\">(.*?)</tr>", page)
    cells = [(cls, re.findall(r"<td[^>]*>(.*?)</td>", tr)) for cls, tr in rows]
    md_rows = [ln.strip("|").split(" | ") for ln in (kept / "results.md").read_text().splitlines()
               if ln.startswith("| ring8")]
    assert [c[1:] for _, c in cells] == [[x.strip().strip("*") for x in r[1:]] for r in md_rows]
    assert [cls for cls, _ in cells] == ["real", "ref", "", ""]  # real data, noise floor, gan, vgan
    assert cells[1][1][1] == "uniform noise (floor)"
    rep = json.loads((kept / "results.json").read_text())
    assert "0 run(s) and 1 bench table(s)" in page and rep["command"] in page
    # an unreadable results.json: said on the page, not a traceback
    (kept / "results.json").write_text("{broken")
    assert main(["report", str(kept), "--out", str(tmp_path / "r2.html")]) == 0
    assert "results.json is missing or unreadable" in (tmp_path / "r2.html").read_text()
    assert main(["report", str(tmp_path / "empty_dir_that_is_not_there"), "--out", str(tmp_path / "r3.html")]) == 2


def test_a_damaged_summary_is_named_so_and_rewritten_by_the_same_command(tmp_path, capsys):
    run = tmp_path / "r"
    argv = ["train", "gan", "--data", "ring8", "--steps", "3", "--out", str(run), "--no-progress", "eval_samples=100",
            "eval_density=false", "loggers="]
    assert main(argv) == 0
    good = (run / "summary.json").read_text()
    (run / "summary.json").write_text('{"metrics": ')  # cut short
    assert main(["report", str(run), "--out", str(tmp_path / "a.html")]) == 0
    page = (tmp_path / "a.html").read_text()
    assert "summary.json is not readable" in page and "has not finished" not in page
    (run / "summary.json").unlink()
    assert main(["report", str(run), "--out", str(tmp_path / "b.html")]) == 0
    assert "has not finished" in (tmp_path / "b.html").read_text()
    (run / "summary.json").write_text("not json")
    capsys.readouterr()
    assert main(argv) == 0  # the final checkpoint evaluated again, with the same seeds: the same summary
    assert "not valid JSON (damaged or edited); evaluating the final checkpoint again" in capsys.readouterr().err
    assert (run / "summary.json").read_text() == good


def test_an_eval_of_an_eval_none_run_is_kept_and_read_by_report_and_the_train_command(tmp_path, capsys):
    """`ebmlab eval` of a run trained with eval=none keeps its result in the run (evaluation.json, with its sample
    count); the report and the same train command show those metrics, not the empty summary; a run directory that
    cannot be written still gets its metrics printed, with one line saying nothing was kept."""
    import errno
    import json
    import os

    import ebmlab.atomic

    run = tmp_path / "r"
    argv = ["train", "gan", "--data", "ring8", "--steps", "3", "--out", str(run), "--no-progress", "eval=none",
            "eval_samples=100", "eval_density=false", "loggers=", "plots=false"]
    assert main(argv) == 0
    assert json.loads((run / "summary.json").read_text())["metrics"] == {}
    assert main(["eval", str(run)]) == 0
    kept = json.loads((run / "evaluation.json").read_text())
    assert kept["step"] == 3 and kept["evaluation"].startswith("ebmlab eval: 100 samples") and kept["metrics"]["modes"] >= 0
    assert main(["report", str(run), "--out", str(tmp_path / "a.html")]) == 0
    page = (tmp_path / "a.html").read_text()
    assert ">modes<" in page and "ebmlab eval: 100 samples" in page
    capsys.readouterr()
    assert main(argv) == 0  # the finished run's summary, with the evaluation made since
    out = capsys.readouterr().out
    assert "already at step 3" in out and "modes" in out
    def full(path, obj):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    (run / "evaluation.json").unlink()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ebmlab.atomic, "write_json", full)
        assert main(["eval", str(run)]) == 0
    said = capsys.readouterr()
    assert "the evaluation was not kept" in said.err and "No space left on device" in said.err
    assert "modes" in said.out and not (run / "evaluation.json").exists()
