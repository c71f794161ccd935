"""Kill a run (SIGKILL, as a power cut or the OOM killer would) in every phase — while config.json, run.json, a
checkpoint or summary.json is being written, between checkpoints, after the final evaluation, during the plots — then
run the same command again: the run must end exactly as an uninterrupted one (same checkpoint, same metrics log,
same summary, all plots) with no temporary files left. The kill points are ``ebmlab.atomic.fault_point``.

Two chains of kills, each command resuming what the previous one left and being killed at the next phase, then one
command that finishes: every phase is killed once, from a fresh start (the first of each chain) or from a state that
was itself resumed, with half the process starts of one kill-and-resume pair per phase. Each command runs in a process of its own, forked
from a server with the imports done (``conftest.run_cli``); a SIGKILL ends that process as it would any other."""

import json
import subprocess
from pathlib import Path

import pytest
import torch

ARGS = ["train", "gan", "--data", "ring8", "--steps", "6", "--no-progress", "ckpt_every=2", "log_every=1",
        "eval_samples=200", "eval_density=false", "loggers=", "plots=true"]

PHASES = ["write:config.json", "write:run.json", "step:1", "write:checkpoint.pt", "step:3", "step:6",
          "final_eval", "plots", "summary", "write:summary.json"]


def run(cli, out: Path, kill_at: str | None = None) -> subprocess.CompletedProcess:
    return cli([*ARGS, "--out", str(out)], env={"EBMLAB_KILL_AT": kill_at or ""})


def metrics(out: Path) -> list[dict]:
    recs = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "steps_per_s"} for r in recs]


def checkpoint(out: Path) -> dict:
    return torch.load(out / "checkpoint.pt", weights_only=True)


def same_tensors(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_tensors(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_tensors(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return a == b


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cli):
    out = tmp_path_factory.mktemp("ref") / "run"
    res = run(cli, out)
    assert res.returncode == 0, res.stderr
    return out


@pytest.mark.parametrize("chain", [PHASES[0::2], PHASES[1::2]], ids=["even", "odd"])
def test_kill_in_every_phase_then_resume(chain, reference, tmp_path, cli):
    out = tmp_path / "run"
    for phase in chain:
        killed = run(cli, out, phase)
        assert killed.returncode == -9, f"the kill point {phase} was not reached: {killed.returncode} {killed.stderr}"
    resumed = run(cli, out)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "summary.json").read_text()) == json.loads((reference / "summary.json").read_text())
    assert metrics(out) == metrics(reference)
    assert same_tensors(checkpoint(out), checkpoint(reference))
    assert sorted(p.name for p in (out / "plots").iterdir()) == sorted(p.name for p in (reference / "plots").iterdir())
    assert not list(out.rglob("*.tmp")), "a temporary file was left behind"
    sessions = json.loads((out / "run.json").read_text())["sessions"]
    assert sessions[-1]["status"] == "ended" and sessions[-1]["end_step"] == 6


def test_identical_runs_save_identical_global_rng(reference, tmp_path, cli):
    """The global torch generator is seeded from the run seed, so two identical runs save the same state."""
    out = tmp_path / "run"
    assert run(cli, out).returncode == 0
    assert torch.equal(checkpoint(out)["torch_rng"], checkpoint(reference)["torch_rng"])
