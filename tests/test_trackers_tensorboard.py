"""TensorBoard as one tracker among the others (ebmlab.trackers.TensorBoardTracker, behind the run option loggers):
scalars of every metric line, the final options and metrics as hparams, the plots as images; nothing under RUN/tb
without it; the old run option tensorboard=false kept as an alias of loggers without tensorboard, said once as
deprecated, and read from a run saved with it."""

from __future__ import annotations

import json

import pytest

import ebmlab
from ebmlab.config import config_from_dict, resolve_config

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

QUICK = {"steps": 6, "log_every": 2, "eval_every": 0, "eval_samples": 100, "eval_density": False}


def _tags(tb_dir):
    scalars, images = set(), set()
    for f in tb_dir.rglob("events.out.tfevents.*"):
        acc = event_accumulator.EventAccumulator(str(f), size_guidance={"images": 0, "scalars": 0})
        acc.Reload()
        scalars |= set(acc.Tags()["scalars"])
        images |= set(acc.Tags()["images"])
    return scalars, images


def test_tensorboard_is_a_tracker_of_loggers(tmp_path):
    on = tmp_path / "on"
    ebmlab.train("gan", "ring8", out=on, progress=False, overrides={**QUICK, "plots": True})
    scalars, images = _tags(on / "tb")
    assert {"train/loss_d", "eval/modes"} <= scalars and any(i.startswith("plots/") for i in images)
    assert (on / "tb" / "hparams").is_dir()  # the final options and metrics
    off = tmp_path / "off"
    ebmlab.train("gan", "ring8", out=off, progress=False, overrides={**QUICK, "plots": False, "loggers": ""})
    assert not (off / "tb").exists() and (off / "metrics.jsonl").is_file()


def test_tensorboard_false_is_loggers_without_tensorboard_said_once(tmp_path, capsys, cli):
    cfg = resolve_config("gan", "ring8", overrides={"tensorboard": False, "loggers": "tensorboard,mlflow"})
    assert cfg.run.loggers == ("mlflow",) and cfg.run.tensorboard is True
    assert capsys.readouterr().err.count("tensorboard=false (command line) is deprecated: it is loggers=mlflow") == 1
    assert resolve_config("gan", "ring8").run.loggers == ("tensorboard",) and not capsys.readouterr().err
    out = tmp_path / "r"
    r = cli(["train", "gan", "--data", "ring8", "--out", str(out), "--no-progress", "--steps", "2", "plots=false",
             "eval_samples=100", "eval_density=false", "tensorboard=false"])
    assert r.returncode == 0 and "tensorboard=false (command line) is deprecated: it is loggers= " in r.stderr
    assert not (out / "tb").exists()
    assert json.loads((out / "config.json").read_text())["run"]["loggers"] == []
    # a run saved with tensorboard=false (before the alias) reads as loggers without tensorboard, silently, and its
    # resume with either spelling is not refused
    saved = json.loads((out / "config.json").read_text())
    saved["run"].update(tensorboard=False, loggers=["tensorboard"])
    (out / "config.json").write_text(json.dumps(saved))
    assert config_from_dict(saved).run.loggers == () and not capsys.readouterr().err
    r = cli(["train", "gan", "--data", "ring8", "--out", str(out), "--no-progress", "--steps", "4", "plots=false",
             "eval_samples=100", "eval_density=false", "loggers="])
    assert r.returncode == 0, r.stderr
    assert not (out / "tb").exists()
