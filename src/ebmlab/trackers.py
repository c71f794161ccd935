"""The run's metrics log (``RUN/metrics.jsonl``, :class:`MetricsLogger`) and the experiment trackers beside it, one
switch for all (run option ``loggers``): TensorBoard (``RUN/tb``, the default), MLflow and Weights & Biases
(offline). Every tracker is an object with ``log(step, kind, values)``, ``image(step, tag, grid)``,
``artifacts(directory, path, step)``, ``summary(options, metrics, step)`` and ``close()``; :data:`TRACKERS` names
them. The run option ``tensorboard`` is an alias kept for old commands and runs: ``tensorboard=false`` is
``loggers`` without ``tensorboard`` (said once, as deprecated, where a user sets it).

TensorBoard (``loggers=tensorboard``): every metric line as scalars (``train/NAME``, ``eval/NAME``), evaluation
grids as images, at the end the plots as images and the run's options with its final metrics as hparams (the
HPARAMS tab). A resumed run purges the events after its checkpoint's step.

MLflow (``loggers=tensorboard,mlflow``; the optional extra ``pip install 'ebmlab[mlflow]'``): the run's options as
parameters, every training and evaluation metric line as metrics (``train/NAME``, ``eval/NAME``, by step), the
sample grids of evaluations and the plots of the finished run as artifacts. The tracking store is
``MLFLOW_TRACKING_URI`` when set, else an SQLite store in ``RUN/mlflow.db`` with the artifacts in ``RUN/mlartifacts``
(a store MLflow supports as it is; its file store is in maintenance mode and needs ``MLFLOW_ALLOW_FILE_STORE``). The MLflow run of an
ebmlab run is recorded in ``RUN/mlflow.json``: a resumed run goes on logging into it (steps logged after the last
checkpoint by a killed session are logged again, so MLflow's history may hold a step twice where metrics.jsonl,
truncated on resume, holds it once; its parameters stay those of the first session: MLflow does not change a
logged parameter, and config.json holds the current ones).

Weights & Biases (``loggers=wandb``; ``pip install 'ebmlab[wandb]'``) always in offline mode — nothing leaves the
machine during a run: an offline W&B run under ``RUN/wandb/`` with the options as its config, every metric line (by
step) and the evaluation grids and plots as images; ``wandb sync RUN/wandb/offline-run-*`` uploads it later, where
the user wants to. A resumed run goes on in the same W&B run (its id is kept in ``RUN/wandb.json``), with W&B's own
rule that a step below the last logged one is dropped.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import time
import warnings
from pathlib import Path
from typing import Any

from .atomic import json_safe, write_json
from .errors import EbmlabError
from .runs import RunDir


def open_trackers(run: RunDir, loggers: tuple[str, ...], options: dict[str, Any], start: int | None = None) -> list[Any]:
    """The trackers ``loggers`` names, opened for ``run`` in :data:`TRACKERS`' order (``options``: the run's resolved
    configuration, logged as parameters by a new tracker run; ``start``: the step a resumed run goes on from, whose
    later events a tracker that can drops)."""
    return [TRACKERS[name](run, options, start) for name in TRACKERS if name in loggers]


def metrics_logger(run: RunDir, start: int, rc: Any, options: dict[str, Any]) -> MetricsLogger:
    """The run's metrics logger from ``start``: metrics.jsonl and the trackers of the run option ``loggers``
    (``rc``: the run options; ``options``: the resolved configuration)."""
    return MetricsLogger(run, trackers=open_trackers(run, rc.loggers, options, start))


class MetricsLogger:
    """Appends JSON lines to the run's metrics.jsonl and gives each line (and each image) to the run's trackers."""

    def __init__(self, run: RunDir, trackers: list[Any] | None = None):
        self.trackers = list(trackers or [])
        self.fh = open(run.metrics_path, "a", buffering=1)

    def log(self, step: int, kind: str, values: dict[str, Any]) -> None:
        self.fh.write(json.dumps(json_safe({"step": step, "kind": kind, **values})) + "\n")
        for t in self.trackers:
            t.log(step, kind, values)

    def image(self, step: int, tag: str, grid: Any) -> None:
        """A [H, W, 3] image in [0, 1] (e.g. ``plots.image_grid``) to the trackers."""
        for t in self.trackers:
            t.image(step, tag, grid)

    def close(self) -> None:
        self.fh.close()
        for t in self.trackers:
            t.close()


class TensorBoardTracker:
    """TensorBoard events under ``RUN/tb`` (module docstring)."""

    def __init__(self, run: RunDir, options: dict[str, Any], start: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(run.tb), purge_step=start + 1 if start else None)

    def log(self, step: int, kind: str, values: dict[str, Any]) -> None:
        for name, v in tracked(kind, values).items():
            self.tb.add_scalar(name, v, step)

    def image(self, step: int, tag: str, grid: Any) -> None:
        self.tb.add_image(tag, grid, step, dataformats="HWC")

    def artifacts(self, directory: Path, path: str, step: int | None = None) -> None:
        """The PNG figures of ``directory`` as images ``path/NAME`` at ``step``."""
        from matplotlib.image import imread

        for png in sorted(directory.glob("*.png")) if directory.is_dir() else []:
            self.tb.add_image(f"{path}/{png.stem}", imread(png)[..., :3], step, dataformats="HWC")

    def summary(self, options: dict[str, Any], final: dict[str, float], step: int) -> None:
        """The run's options (method, data, run and method options) with its final metrics (``final``: name ->
        number, bookkeeping left out) as hparams."""
        hp = {"method": options["method"], "data": options["data"]}
        for section in (options["run"], options["method_config"]):
            for k, v in section.items():
                hp[k] = ",".join(map(str, v)) if isinstance(v, list) else v
        self.tb.add_hparams(hp, {f"final/{k}": v for k, v in final.items() if math.isfinite(v)}, run_name="hparams",
                            global_step=step)

    def close(self) -> None:
        self.tb.close()


def check_loggers(loggers: tuple[str, ...]) -> None:
    """Refuse a tracker whose package is missing, before a run writes anything."""
    if "mlflow" in loggers:
        try:
            import mlflow  # noqa: F401
        except ImportError:
            raise EbmlabError("loggers=mlflow needs MLflow: pip install 'ebmlab[mlflow]' (or mlflow-skinny), or drop "
                              "mlflow from loggers") from None
    if "wandb" in loggers:
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise EbmlabError("loggers=wandb needs Weights & Biases: pip install 'ebmlab[wandb]', or drop wandb from "
                              "loggers") from None


def tracked(kind: str, values: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a metric line, named ``kind/name``: what every tracker logs of it."""
    return {f"{kind}/{k}": float(v) for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
    return out


def _say(line: str) -> None:
    import sys

    print(line, file=sys.stderr, flush=True)


def _record(path: Path) -> dict[str, Any]:
    """A tracker's record in the run directory (mlflow.json, wandb.json); {} when there is none, and when it is
    unreadable (cut short, edited), with one line saying a new tracker run starts."""
    if not path.is_file():
        return {}
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        _say(f"{path.name} is not readable ({type(exc).__name__}: damaged or edited); a new tracker run is started "
             f"and the file written anew")
        return {}
    return known if isinstance(known, dict) else {}


class MLflowTracker:
    """One ebmlab run as one MLflow run (module docstring)."""

    def __init__(self, run: RunDir, options: dict[str, Any], start: int | None = None) -> None:
        import logging

        own = os.environ.get("MLFLOW_TRACKING_URI") is None
        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(run.path / 'mlflow.db').resolve()}"
        if uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        logging.getLogger("mlflow").setLevel(logging.WARNING)  # its database set-up lines are not the run's output
        logging.getLogger("alembic").setLevel(logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from mlflow.tracking import MlflowClient

            self.client = MlflowClient(tracking_uri=uri)
            self.record = run.path / "mlflow.json"
            known = _record(self.record)
            if self._resumed(known, uri):
                return
            exp = self.client.get_experiment_by_name("ebmlab")
            # the run's own store keeps its artifacts beside it (a database store's default is the current directory)
            where = (run.path / "mlartifacts").resolve().as_uri() if own else None
            exp_id = exp.experiment_id if exp is not None else self.client.create_experiment("ebmlab", where)
            tags = {"ebmlab.previous_run_id": known["run_id"], "ebmlab.previous_tracking_uri": known["tracking_uri"]} \
                if known.get("run_id") and known.get("tracking_uri") else None
            self.run_id = self.client.create_run(exp_id, run_name=run.path.name, tags=tags).info.run_id
            from mlflow.entities import Param

            params = [Param(k[:250], v[:6000]) for k, v in _flat(json_safe(options)).items()]
            for i in range(0, len(params), 100):  # MLflow takes at most 100 parameters a batch
                self.client.log_batch(self.run_id, params=params[i:i + 100])
        write_json(self.record, {"tracking_uri": uri, "run_id": self.run_id})

    def _resumed(self, known: dict[str, Any], uri: str) -> bool:
        """Whether the MLflow run of ``known`` (mlflow.json) goes on: it is in this store and the store holds it.
        Otherwise a new MLflow run starts, and one line says why (a run directory moved or copied — its store's
        path changed —, another ``MLFLOW_TRACKING_URI``, a store deleted or damaged); the new run is tagged with the
        previous one."""
        from mlflow.exceptions import MlflowException

        run_id, before = known.get("run_id"), known.get("tracking_uri")
        if not run_id:
            return False
        if before != uri:
            moved = str(before).endswith(("/mlruns", "/mlflow.db")) and uri.endswith(("/mlruns", "/mlflow.db")) and \
                Path(str(before)).name == Path(uri).name
            why = ("this run directory was moved or copied (its MLflow store was " + str(before) + ")" if moved else
                   f"its MLflow run {run_id} was logged to another tracking store ({before})")
            _say(f"mlflow: {why}; logging goes on in a new MLflow run in {uri}, tagged ebmlab.previous_run_id = "
                 f"{run_id}")
            return False
        if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
            _say(f"mlflow: the MLflow run {run_id} of this run is not readable in {uri} (the store was deleted); "
                 f"logging goes on in a new MLflow run in a new store there")
            return False
        if uri.startswith("file:"):
            from urllib.parse import unquote, urlparse

            root = Path(unquote(urlparse(uri).path))
            if not root.is_dir():
                _say(f"mlflow: the MLflow run {run_id} of this run is not readable in {uri} (the store was deleted); "
                     f"logging goes on in a new MLflow run in a new store there")
                (root / ".trash").mkdir(parents=True)  # a file store's layout (the process may hold its old client)
                return False
        try:
            self.client.update_run(run_id, status="RUNNING")
        except MlflowException as exc:
            _say(f"mlflow: the MLflow run {run_id} of this run is not readable in {uri} ({exc.error_code}: the store "
                 f"was deleted or damaged); logging goes on in a new MLflow run there")
            return False
        self.run_id = run_id
        return True

    def log(self, step: int, kind: str, values: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in tracked(kind, values).items()]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i in range(0, len(metrics), 1000):
                self.client.log_batch(self.run_id, metrics=metrics[i:i + 1000])

    def image(self, step: int, tag: str, grid: Any) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.client.log_image(self.run_id, grid, f"{tag}/step_{step:07d}.png")

    def summary(self, options: dict[str, Any], final: dict[str, float], step: int) -> None:
        """Nothing more: the final metrics were logged as the evaluation's metric line, the options at the start."""

    def artifacts(self, directory: Path, path: str, step: int | None = None) -> None:
        """Every file of ``directory`` (the run's plots) as artifacts under ``path``."""
        if Path(directory).is_dir():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.client.log_artifacts(self.run_id, str(directory), path)

    def close(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.client.set_terminated(self.run_id)


class WandbTracker:
    """One ebmlab run as one offline Weights & Biases run (module docstring)."""

    def __init__(self, run: RunDir, options: dict[str, Any], start: int | None = None) -> None:
        import wandb

        self.wandb = wandb
        record = run.path / "wandb.json"
        known = _record(record)
        run_id = known.get("run_id") or secrets.token_hex(4)  # a W&B run id: 8 lowercase hex digits
        os.environ.setdefault("WANDB_SILENT", "true")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.run = wandb.init(project="ebmlab", name=run.path.name, id=run_id, resume="allow", mode="offline",
                                  dir=str(run.path), config=json_safe(options) if not known else None)
        if not known:
            write_json(record, {"run_id": run_id, "mode": "offline", "dir": str(run.path / "wandb")})

    def log(self, step: int, kind: str, values: dict[str, Any]) -> None:
        metrics = tracked(kind, values)
        if metrics:
            self.run.log(metrics, step=step)

    def image(self, step: int, tag: str, grid: Any) -> None:
        self.run.log({tag: self.wandb.Image(grid)}, step=step)

    def summary(self, options: dict[str, Any], final: dict[str, float], step: int) -> None:
        """Nothing more: the final metrics were logged as the evaluation's metric line, the options at the start."""

    def artifacts(self, directory: Path, path: str, step: int | None = None) -> None:
        """Every PNG of ``directory`` (the run's plots) as an image under ``path/``."""
        pngs = sorted(Path(directory).glob("*.png")) if Path(directory).is_dir() else []
        if pngs:
            self.run.log({f"{path}/{p.stem}": self.wandb.Image(str(p)) for p in pngs})

    def close(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.run.finish()




# every tracker by its name in the run option loggers, in the order they are opened
TRACKERS: dict[str, Any] = {"tensorboard": TensorBoardTracker, "mlflow": MLflowTracker, "wandb": WandbTracker}
LOGGERS = tuple(TRACKERS)


__all__ = ["check_loggers", "LOGGERS", "metrics_logger", "MetricsLogger", "MLflowTracker", "open_trackers",
           "TensorBoardTracker", "tracked", "TRACKERS", "WandbTracker"]
