"""MLflow as a tracker beside the run directory (run option loggers, ebmlab.trackers), read back from its SQLite store
(no opt-out variable):
the options as parameters, training and evaluation metrics by step, the plots as artifacts, and a resumed run
logging into the same MLflow run."""

from __future__ import annotations

import json
import os
import warnings

import pytest

import ebmlab
from ebmlab.errors import EbmlabError

mlflow = pytest.importorskip("mlflow")


def _client(uri):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=uri)


def test_an_mlflow_file_store_holds_the_runs_options_metrics_and_plots(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    over = {"steps": 8, "log_every": 2, "eval_every": 4, "eval_samples": 100, "eval_density": False, "plots": True,
            "loggers": "tensorboard,mlflow", "lr_g": 2e-3}
    out = tmp_path / "r"
    ebmlab.train("gan", "ring8", out=out, progress=False, overrides=over)
    rec = json.loads((out / "mlflow.json").read_text())
    assert rec["tracking_uri"] == f"sqlite:///{(out / 'mlflow.db').resolve()}" and (out / "tb").is_dir()
    c = _client(rec["tracking_uri"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = c.get_run(rec["run_id"])
        assert run.data.params["method_config.lr_g"] == "0.002" and run.data.params["run.steps"] == "8"
        loss = c.get_metric_history(rec["run_id"], "train/loss_d")
        assert [m.step for m in loss] == [2, 4, 6, 8]
        assert [m.step for m in c.get_metric_history(rec["run_id"], "eval/modes")] == [4, 8]
        assert any(a.path.endswith(".png") for a in c.list_artifacts(rec["run_id"], "plots"))
    # resumed (extended): the same MLflow run goes on
    ebmlab.train("gan", "ring8", out=out, progress=False, overrides={**over, "steps": 12})
    assert json.loads((out / "mlflow.json").read_text())["run_id"] == rec["run_id"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert [m.step for m in c.get_metric_history(rec["run_id"], "train/loss_d")][-2:] == [10, 12]


def test_an_unknown_logger_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(EbmlabError, match="loggers"):
        ebmlab.train("gan", "ring8", out=tmp_path / "r", progress=False, overrides={"loggers": "tensorboard,comet"})
    assert not (tmp_path / "r").exists()


def test_a_moved_run_a_damaged_record_and_a_deleted_store_each_start_a_new_mlflow_run_and_say_why(tmp_path,
                                                                                                   monkeypatch, capsys):
    """A run directory copied elsewhere and resumed: its store's path changed, so a new MLflow run starts in the
    copy's store, tagged with the previous run, and one line says so; a record cut short and a store deleted are
    named by their cause the same way; each resumed run finishes (no traceback, run.json not left "running")."""
    import shutil

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    over = {"steps": 4, "log_every": 2, "eval_every": 0, "eval_samples": 100, "eval_density": False, "plots": False,
            "loggers": "mlflow"}
    out = tmp_path / "r"
    ebmlab.train("gan", "ring8", out=out, progress=False, overrides=over)
    first = json.loads((out / "mlflow.json").read_text())
    copy = tmp_path / "elsewhere" / "r"
    shutil.copytree(out, copy)
    capsys.readouterr()
    ebmlab.train("gan", "ring8", out=copy, progress=False, overrides={**over, "steps": 6})
    assert "this run directory was moved or copied" in capsys.readouterr().err
    rec = json.loads((copy / "mlflow.json").read_text())
    assert rec["run_id"] != first["run_id"] and rec["tracking_uri"] == f"sqlite:///{(copy / 'mlflow.db').resolve()}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _client(rec["tracking_uri"]).get_run(rec["run_id"]).data.tags["ebmlab.previous_run_id"] == \
            first["run_id"]
    (copy / "mlflow.json").write_text('{"tracking_uri": ')  # cut short
    ebmlab.train("gan", "ring8", out=copy, progress=False, overrides={**over, "steps": 8})
    err = capsys.readouterr().err
    assert "mlflow.json is not readable" in err and "Traceback" not in err
    (copy / "mlflow.db").unlink()  # a new process, as a user's next command is (this one holds the old database open)
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_ALLOW_FILE_STORE")}
    args = [f"{k}={v}" for k, v in over.items() if k != "steps"]
    r = subprocess.run([sys.executable, "-m", "ebmlab", "train", "gan", "--data", "ring8", "--out", str(copy),
                        "--steps", "10", "--no-progress", *args], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and "is not readable in" in r.stderr and "Traceback" not in r.stderr, r.stderr
    # the store is read back by a fresh process with MLflow's own client and no opt-out variable
    rec = json.loads((copy / "mlflow.json").read_text())
    code = ("import json,sys; from mlflow.tracking import MlflowClient; "
            f"c = MlflowClient(tracking_uri={rec['tracking_uri']!r}); "
            f"print([m.step for m in c.get_metric_history({rec['run_id']!r}, 'train/loss_d')])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("10]"), r.stderr[-2000:]
    sessions = json.loads((copy / "run.json").read_text())["sessions"]
    assert all(s["status"] != "running" for s in sessions)
