"""Metrics of a run's training record (``metrics.jsonl``) rather than of its samples: what the run did on its way,
read after it ends (``ebmlab claims run`` adds them to a run's metrics when a claim asks for one).

- ``log10_max_abs_energy``: log10 of the largest |energy| of real or generated samples logged during training
  (``energy_real``, ``energy_fake``): an energy that runs away reaches 10³–10⁵, a bounded one stays within a few
  units (the BiB ablation of the data penalty, ``benchmarks/images/bib_ablation``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..metadata import Metric

METRICS = {
    "log10_max_abs_energy": Metric("method", "", "↓", "log10 of the largest |energy| of real or generated samples "
                                                      "logged in training (a run-away energy)"),
}
ENERGY_KEYS = ("energy_real", "energy_fake")  # the training log's energies of real and generated batches


def from_record(run_dir: str | Path) -> dict[str, Any]:
    """The trajectory metrics a run's ``metrics.jsonl`` supports ({} when it logged no energy)."""
    energies = []
    path = Path(run_dir) / "metrics.jsonl"
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a kill: the record before it still counts
            continue
        if rec.get("kind") == "train":
            energies += [abs(float(rec[k])) for k in ENERGY_KEYS if isinstance(rec.get(k), (int, float))]
    if not energies or not all(math.isfinite(e) for e in energies):
        return {}
    return {"log10_max_abs_energy": math.log10(max(max(energies), 1e-300))}
