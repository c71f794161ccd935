"""The training record's metric: log10 of the largest |energy| logged (a run-away energy), from metrics.jsonl."""

import json
import math

from ebmlab.metrics.trajectory import from_record


def test_the_largest_logged_energy_of_real_or_generated_samples(tmp_path):
    lines = [{"step": 50, "kind": "train", "energy_real": -3.0, "energy_fake": 2.0},
             {"step": 60, "kind": "eval", "energy_real": 1e9},  # not a training line
             {"step": 100, "kind": "train", "energy_real": 0.5, "energy_fake": -1234.5}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n{cut by a kill")
    assert from_record(tmp_path) == {"log10_max_abs_energy": math.log10(1234.5)}
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "kind": "train", "loss": 1.0}) + "\n")
    assert from_record(tmp_path) == {}  # a method that logs no energy
    assert from_record(tmp_path / "missing") == {}
