"""MLflow as a tracker beside the run directory (run option loggers, ebmlab.trackers), read back from its file store:
the options as parameters, training and evaluation metrics by step, the plots as artifacts, and a resumed run
logging into the same MLflow run."""

from __future__ import annotations

import json
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
    assert rec["tracking_uri"] == (out / "mlruns").resolve().as_uri() and (out / "tb").is_dir()
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
