"""Weights & Biases as an offline tracker (run option loggers=wandb): the offline run W&B writes under RUN/wandb is
read back record by record — the options as its config, every metric line by step, the evaluation grids and plots
as images — and a resumed run goes on in the same W&B run."""

from __future__ import annotations

import json
import struct

import pytest

import ebmlab

wandb = pytest.importorskip("wandb")


def offline_records(run_file):
    """The records of an offline run's .wandb file: W&B's append-only log (a 7-byte header, then 32 KiB blocks of
    chunks, each a 4-byte CRC, a 2-byte length and a 1-byte type — full, first, middle, last — as LevelDB's log),
    each record a wandb_internal Record protobuf."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = run_file.read_bytes()
    assert data[:4] == b":W&B", "not a W&B datastore file"
    block, pos, pending, out = 32768, 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # the block's tail is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            break
        pending += chunk
        if kind in (1, 4):  # full, or the last chunk of a record
            r = pb.Record()
            r.ParseFromString(pending)
            out.append(r)
            pending = b""
    return out


def _history(records):
    rows = []
    for r in records:
        if r.WhichOneof("record_type") == "history":
            rows.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in r.history.item})
    return rows


def test_an_offline_wandb_run_holds_the_options_metrics_and_images(tmp_path, monkeypatch):
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_DIR"):
        monkeypatch.delenv(var, raising=False)
    over = {"steps": 8, "log_every": 2, "eval_every": 4, "eval_samples": 100, "eval_density": False, "plots": True,
            "loggers": "tensorboard,wandb", "lr_g": 2e-3, "ckpt_every": 4}
    out = tmp_path / "r"
    ebmlab.train("gan", "ring8", out=out, progress=False, overrides={**over, "steps": 4})
    ebmlab.train("gan", "ring8", out=out, progress=False, overrides=over)  # resumed: the same W&B run
    rec = json.loads((out / "wandb.json").read_text())
    files = sorted((out / "wandb").glob(f"offline-run-*-{rec['run_id']}*/run-{rec['run_id']}.wandb"))
    assert len(files) >= 2  # an offline run directory per session (and final evaluation), one W&B run id
    records = [r for f in files for r in offline_records(f)]
    kinds = [(r.WhichOneof("record_type"), r) for r in records]
    config = {i.key: json.loads(i.value_json) for k, r in kinds if k in ("run", "config")
              for i in (r.run.config.update if k == "run" else r.config.update)}
    assert config["method_config"]["lr_g"] == 0.002 and config["run"]["steps"] == 4
    rows = _history(records)
    steps = [row["_step"] for row in rows if "train/loss_d" in row]
    assert steps == [2, 4, 6, 8]
    assert any("eval/w1" in row for row in rows)
    images = {k.removesuffix("/_type") for row in rows for k, v in row.items() if v == "image-file"}
    assert {"plots/samples", "plots/curves"} <= images
    assert list((out / "wandb").glob("offline-run-*/files/media/images/plots/samples_*.png"))
