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
    assert main(["claims", "run", "c", "--specs", str(specs), "--out", str(runs)]) == 0
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


def _classifier(d: Path, name: str, blob: bytes) -> str:
    import hashlib

    sha = hashlib.sha256(blob).hexdigest()
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{name}.{sha[:12]}.pt").write_bytes(blob)
    (d / f"{name}.json").write_text(json.dumps({"data": name, "sha256": sha, "file": f"{name}.{sha[:12]}.pt"}))
    return sha


def test_the_classifiers_that_scored_kept_runs_are_kept_and_restored_checked(tmp_path, monkeypatch):
    """save keeps the classifier a kept run names (not another of the machine's); restore puts it where ebmlab looks
    on a fresh machine, leaves a different one of the same name there and says so, and refuses a changed file."""
    import pytest

    keep = _tool()
    mine = tmp_path / "machine"
    monkeypatch.setenv("EBMLAB_CLASSIFIERS", str(mine))
    used = _classifier(mine, "fashion", b"weights of the campaign")
    _classifier(mine, "digits", b"a classifier no kept run names")
    run = tmp_path / "kept" / "medium" / "arms" / "k" / "s0"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"metrics": {"modes": 3.0, "clf_sha256": used[:16]}}))
    store = tmp_path / "store"
    assert keep.save_classifiers(tmp_path / "kept", store) == 1
    assert {p.name for p in store.iterdir()} == {"fashion.json", f"fashion.{used[:12]}.pt"}
    assert keep.save_classifiers(tmp_path / "kept", store) == 0  # already kept

    fresh = tmp_path / "fresh"
    monkeypatch.setenv("EBMLAB_CLASSIFIERS", str(fresh))
    assert keep.restore_classifiers(store) == (1, [])
    from ebmlab.metrics.classifier import classifier_dir
    assert (classifier_dir() / f"fashion.{used[:12]}.pt").read_bytes() == b"weights of the campaign"
    assert keep.restore_classifiers(store) == (0, [])

    other = tmp_path / "other"  # a machine that trained its own
    monkeypatch.setenv("EBMLAB_CLASSIFIERS", str(other))
    own = _classifier(other, "fashion", b"this machine's own weights")
    n, differ = keep.restore_classifiers(store)
    assert n == 0 and len(differ) == 1 and own[:16] in differ[0] and used[:16] in differ[0]
    assert json.loads((other / "fashion.json").read_text())["sha256"] == own  # left as it was

    (store / f"fashion.{used[:12]}.pt").write_bytes(b"changed by hand")
    monkeypatch.setenv("EBMLAB_CLASSIFIERS", str(tmp_path / "third"))
    with pytest.raises(SystemExit, match="differs from its record"):
        keep.restore_classifiers(store)
    assert not (tmp_path / "third").exists()


def test_campaign_status_lists_a_claim_whose_runs_its_own_command_makes(tmp_path, monkeypatch, capsys):
    """``campaign.py --status`` over the whole list reaches the claims after a grid or a table (whose runs have no
    dry-run listing) instead of ending in a traceback at the first of them."""
    spec = importlib.util.spec_from_file_location("campaign", TOOL.parent / "campaign.py")
    camp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(camp)
    monkeypatch.chdir(TOOL.parents[3])
    camp.status(["ebgan-stabler-than-gan-ring8", "lbt-ring8-vs-gan"], "small", str(tmp_path / "runs"))
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ebgan-stabler-than-gan-ring8: ") and "runner grid" in out[0]
    assert out[1].startswith("lbt-ring8-vs-gan: ")
