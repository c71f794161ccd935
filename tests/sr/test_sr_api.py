"""The super-resolution run directory, resume, upscaling, sampling and errors, on image folders the tests write."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ebmlab.cli import main
from ebmlab.errors import EbmlabError
from ebmlab.sr import api, ops
from ebmlab.sr.stats import Stats

TINY = {"width": 8, "depth": 2, "batch_size": 8}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:40]
    for i in range(5):  # smooth stripes plus noise: something to learn, all different
        a = 0.5 + 0.4 * np.sin((xx * np.cos(i) + yy * np.sin(i)) / (2 + i)) + 0.05 * rng.standard_normal((40, 40))
        Image.fromarray((np.clip(a, 0, 1) * 255).astype(np.uint8)).save(d / f"im{i}.png")
    return d


def _train(folder, out, model, steps, **kw):
    opts = {**(TINY if model in ("mse", "stats") else {}), **kw.pop("options", {})}
    return api.train_sr(str(folder), model, out=out, scale=4, steps=steps, crop=16, options=opts, progress=False,
                        n_eval=8, ckpt_every=kw.pop("ckpt_every", 3), log_every=1, **kw)


def test_train_eval_every_model(folder, tmp_path):
    for model, steps in (("bicubic", None), ("tv", None), ("mse", 4), ("stats", 4)):
        res = _train(folder, tmp_path / model, model, steps)
        t = res["test"]
        assert 5 < t["psnr"] < 60 and 0 < t["ssim"] <= 1 and t["stats_dist"] >= 0
        assert (tmp_path / model / "grid.png").stat().st_size > 1000
        summ = json.loads((tmp_path / model / "summary.json").read_text())
        assert summ["model"] == model and summ["test"]["n_test"] == 8
    # tv chose λ on the validation images; stats outputs down-sample back to the input exactly
    assert json.loads((tmp_path / "tv" / "summary.json").read_text())["fit"]["lam_source"].startswith("validation")
    assert json.loads((tmp_path / "stats" / "summary.json").read_text())["test"]["constraint_max_abs"] < 1e-5


def test_resume_is_exact(folder, tmp_path, monkeypatch):
    opts = {"phi": "learned", "phi_start": 0.3}
    _train(folder, tmp_path / "a", "stats", 6, evaluate=False, options=opts)
    real = Stats.train_step

    def killed(self, x, step):
        if step == 4:
            raise KeyboardInterrupt  # a kill between checkpoints (they are written at steps 3 and 6)
        return real(self, x, step)

    monkeypatch.setattr(Stats, "train_step", killed)
    with pytest.raises(KeyboardInterrupt):
        _train(folder, tmp_path / "b", "stats", 6, evaluate=False, options=opts)
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["step"] == 3
    monkeypatch.setattr(Stats, "train_step", real)
    _train(folder, tmp_path / "b", "stats", 6, evaluate=False)  # the same command again resumes at step 3
    sa = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    sb = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert sa["step"] == sb["step"] == 6
    for k in sa["model"]:
        assert torch.equal(sa["model"][k], sb["model"][k]), k
    assert not torch.equal(sa["model"]["phi.wave"], sa["model"]["phi.init_wave"])  # Φ was fine-tuned
    la = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert la == lb
    assert any("phi_contrast" in r for r in la)  # the Φ steps' terms reach the log


def test_samples_satisfy_the_constraint():
    torch.manual_seed(0)
    net = Stats(4, Stats.Config(**TINY)).double()
    x = torch.rand(30, 1, 16, 16, dtype=torch.float64)
    net.phi.fit_normalisation(x)
    y = ops.down(x[:1], 4)
    s = net.sample(y, 5, generator=torch.Generator().manual_seed(1), steps=20, step_size=1e-3)
    assert s.shape == (5, 1, 16, 16)
    assert (ops.down(s, 4) - y).abs().max() < 1e-12
    assert s.min() >= 0 and s.max() <= 1
    assert float(s.std(0).mean()) > 1e-3  # the chains moved apart: several plausible images, not one


def test_upscale_grey_and_colour_any_size(folder, tmp_path):
    _train(folder, tmp_path / "m", "mse", 2, evaluate=False)
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (13, 21, 3), dtype=np.uint8)).save(tmp_path / "c.png")
    Image.fromarray(rng.integers(0, 255, (9, 10), dtype=np.uint8)).save(tmp_path / "g.png")
    r = api.upscale(tmp_path / "m", tmp_path / "c.png", tmp_path / "c4.png", tile=5, progress=False)
    assert r["out_size"] == [52, 84]
    with Image.open(tmp_path / "c4.png") as im:
        assert im.size == (84, 52) and im.mode == "RGB"
    api.upscale(tmp_path / "m", tmp_path / "g.png", tmp_path / "g4.png", tile=4, progress=False)
    with Image.open(tmp_path / "g4.png") as im:
        big = np.asarray(im, dtype=np.float64)
    assert big.shape == (36, 40)
    # tiles: the same result as the whole image at once (the model is convolutional, margins cover its reach)
    cfg, net = api.load_sr_run(tmp_path / "m")
    with Image.open(tmp_path / "g.png") as im:
        y = torch.as_tensor(np.asarray(im, dtype=np.float32) / 255)[None, None]
    whole = net.predict(y)
    tiled = api.upscale_array(net, y, 4, tile=4, margin=8)
    assert (whole - tiled).abs().max() < 1e-5


def test_cli_and_errors(folder, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["sr", "train", "--data", str(folder), "--model", "mse", "--out", str(out), "--steps", "2",
                 "--crop", "16", "--n-eval", "4", "--no-progress", "width=8", "depth=2"]) == 0
    assert "PSNR" in capsys.readouterr().out
    assert main(["sr", "eval", str(out), "-n", "4"]) == 0
    assert "psnr" in capsys.readouterr().out
    bad = [
        (["sr", "train", "--data", str(folder), "--model", "srgan", "--out", str(tmp_path / "x")], "unknown super"),
        (["sr", "train", "--data", str(folder), "--model", "mse", "--out", str(tmp_path / "y"), "wdth=3"],
         "unknown option"),
        (["sr", "train", "--data", str(folder), "--model", "mse", "--out", str(tmp_path / "z"), "--crop", "18"],
         "not a multiple"),
        (["sr", "train", "--data", "nowhere", "--model", "mse", "--out", str(tmp_path / "w")], "unknown super-res"),
        (["sr", "train", "--data", str(folder), "--model", "tv", "--out", str(out), "--crop", "16"], "another"),
        (["sr", "upscale", str(out), "--in", str(tmp_path / "none.png"), "--out", str(tmp_path / "o.png")],
         "does not exist"),
        (["sr", "upscale", str(out), "--in", str(tmp_path / "none.png"), "--out", str(tmp_path / "o.txt")],
         ".png or .jpg"),
        (["sr", "eval", str(tmp_path / "absent")], "does not exist"),
        (["sr", "train", "--data", str(folder), "--model", "tv", "--out", str(tmp_path / "v"), "--crop", "16",
          "--steps", "3"], "takes no training steps"),  # was NotImplementedError's traceback from its train_step
    ]
    (tmp_path / "corrupt.png").write_bytes(b"not a png")
    bad.append((["sr", "upscale", str(out), "--in", str(tmp_path / "corrupt.png"), "--out", str(tmp_path / "o.png")],
                "not a readable image"))
    for argv, msg in bad:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err, (argv, err)
    for p in ("x", "y", "z", "w", "v"):
        assert not (tmp_path / p).exists()  # refused before anything was written


def test_other_run_kinds_are_refused(folder, tmp_path, capsys):
    (tmp_path / "gan").mkdir()
    (tmp_path / "gan" / "config.json").write_text(json.dumps({"method": "gan", "data": "ring8"}))
    with pytest.raises(EbmlabError, match="not a super-resolution run"):
        api.load_sr_run(tmp_path / "gan")
    with pytest.raises(EbmlabError, match="another kind"):
        _train(folder, tmp_path / "gan", "mse", 1)


def test_an_evaluation_on_fewer_images_goes_beside_the_summary(folder, tmp_path):
    """`sr eval -n 1` after the run's own evaluation replaced its summary (the larger result was lost); now it is
    written to summary-n1.json and summary.json keeps the run's result."""
    out = tmp_path / "bicubic"
    _train(folder, out, "bicubic", None)
    kept = json.loads((out / "summary.json").read_text())
    n = kept["test"]["n_test"]
    assert n > 1
    res = api.evaluate_sr(out, n=1)
    assert res["summary"] == str(out / "summary-n1.json") and res["test"]["n_test"] == 1
    assert json.loads((out / "summary.json").read_text()) == kept
    assert json.loads((out / "summary-n1.json").read_text())["test"]["n_test"] == 1
    again = api.evaluate_sr(out, n=n)  # as many images as the summary's: the summary is the place
    assert again["summary"] == str(out / "summary.json")


def test_evaluation_runs_with_the_runs_threads_and_shows_progress(folder, tmp_path, monkeypatch, capsys):
    """`sr eval` used torch's default threads whatever the run asked (slow beside other jobs) and printed nothing:
    now the run's `--threads` is kept in its config and used by eval (and upscale), a flag overrides it, the caller's
    setting is restored after, and progress says what it is doing."""
    out = tmp_path / "stats"
    _train(folder, out, "stats", 2, threads=1, options={"infer_iters": 5, "sample_steps": 10})  # the threads matter
    assert json.loads((out / "config.json").read_text())["threads"] == 1
    seen = []
    predict = Stats.predict

    def spy(self, y, *, progress=False):
        seen.append(torch.get_num_threads())
        return predict(self, y, progress=progress)

    monkeypatch.setattr(Stats, "predict", spy)
    torch.set_num_threads(2)
    capsys.readouterr()
    api.evaluate_sr(out, n=4, progress=True)
    api.evaluate_sr(out, n=4, threads=2)
    assert seen == [1, 2] and torch.get_num_threads() == 2
    err = capsys.readouterr().err
    assert "sr eval: stats, 4 test images" in err and "1 thread\n" in err and "inference" in err and "Langevin draws" in err
    with pytest.raises(EbmlabError, match="--threads"):
        api.evaluate_sr(out, n=4, threads=-1)


def test_stats_inference_is_the_same_with_a_progress_bar():
    """The bar counts the objective's evaluations; the block of 256 images solved together is unchanged."""
    torch.manual_seed(0)
    net = Stats(4, api.make_config(Stats, TINY))
    y = torch.rand(3, 1, 4, 4)
    assert torch.equal(net.predict(y), net.predict(y, progress=True))


def test_a_signal_stops_after_the_step_with_a_checkpoint_and_the_run_resumes_exactly(folder, tmp_path, monkeypatch):
    """SIGTERM (a scheduler's, or `claims run` stopped) while an SR model trains: the step under way finishes and is
    checkpointed with the metrics gathered since the last log line, the run stops as interrupted, and the same
    command resumes to the uninterrupted run's weights and log."""
    import os
    import signal

    kw = {"scale": 4, "steps": 6, "crop": 16, "options": {**TINY, "phi": "learned", "phi_start": 0.3},
          "progress": False, "evaluate": False, "ckpt_every": 6, "log_every": 3}
    before = signal.getsignal(signal.SIGTERM)
    api.train_sr(str(folder), "stats", out=tmp_path / "a", **kw)
    real = Stats.train_step

    def signalled(self, x, step):
        out = real(self, x, step)
        if step == 3:  # the fourth step: after the log line at step 3, before the only periodic checkpoint (6)
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(Stats, "train_step", signalled)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM at step 4: checkpoint saved"):
        api.train_sr(str(folder), "stats", out=tmp_path / "b", **kw)
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 4 and state["window"]  # step 4's metrics, for the log line at step 6
    assert json.loads((tmp_path / "b" / "run.json").read_text())["sessions"][-1]["status"] == "interrupted"
    monkeypatch.setattr(Stats, "train_step", real)
    api.train_sr(str(folder), "stats", out=tmp_path / "b", **kw)  # the same command resumes at step 4
    sa = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    sb = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert sa["step"] == sb["step"] == 6
    for k in sa["model"]:
        assert torch.equal(sa["model"][k], sb["model"][k]), k
    la = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert la == lb and [r["step"] for r in la] == [3, 6]
    assert signal.getsignal(signal.SIGTERM) == before  # the process's own handler again
