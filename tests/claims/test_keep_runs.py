"""The claims campaign's finished runs kept in the repository (``benchmarks/claims/tools/keep_runs.py``): restored
into a fresh run directory, ``claims run`` reads them as finished and records the same result without training."""

import importlib.util
import json
from pathlib import Path

from ebmlab.cli import main

from .test_specs import _spec

TOOL = Path(__file__).resolve().parents[2] / "benchmarks" / "claims" / "tools" / "keep_runs.py"


def _tool():
    spec = importlib.util.spec_from_file_location("keep_runs", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_kept_runs_restore_as_finished_runs_and_give_the_same_result(tmp_path):
    keep = _tool()
    specs = _spec(tmp_path / "specs", seeds=3, over="steps = 30, eval_samples = 200, eval_every = 10, metrics = ['modes']")
    runs, kept = tmp_path / "runs", tmp_path / "kept"
    assert main(["claims", "run", "c", "--specs", str(specs), "--out", str(runs), "--jobs", "2"]) == 0
    first = json.loads((specs / "results" / "c.json").read_text())["small"]
    unfinished = runs / "small" / "arms" / "gan-ring8-unfinished" / "s0"  # a run under way: no summary
    unfinished.mkdir(parents=True)
    (unfinished / "config.json").write_text("{}")
    assert keep.save(runs, kept) == 6
    assert not (kept / "small" / "arms" / "gan-ring8-unfinished").exists()
    assert not list(kept.rglob("*.pt")) and not list(kept.rglob("events.out*"))
    lines = [json.loads(x) for f in kept.rglob("metrics.jsonl") for x in f.read_text().splitlines()]
    assert lines and all(x["kind"] != "train" for x in lines) and any(x["kind"] == "eval" for x in lines)
    fresh = tmp_path / "fresh"  # a new checkout: the run directory is gone
    assert keep.restore(fresh, kept) == 6 and keep.restore(fresh, kept) == 0
    assert main(["claims", "run", "c", "--specs", str(specs), "--out", str(fresh)]) == 0
    again = json.loads((specs / "results" / "c.json").read_text())["small"]
    assert list(runs.rglob("*.pt")) and not list(fresh.rglob("*.pt"))  # nothing trained: every run read as finished
    for k in ("a", "b", "steps", "cpu_s", "references", "curves", "curve_readings"):
        assert again[k] == first[k], k
