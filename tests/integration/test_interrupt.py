"""Ctrl-C (SIGINT) or a scheduler's SIGTERM while training: the step under way finishes, a checkpoint is written at
it, the run stops with status 130 and its record says "interrupted"; the same command resumes at that step, so that
no trained step is lost (the periodic checkpoints alone would lose everything since the last ``ckpt_every``)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ARGS = ["train", "gan", "--data", "ring8", "--steps", "1000000", "--no-progress", "ckpt_every=1000000",
        "log_every=1", "loggers=", "plots=false", "threads=1"]


def start(out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ebmlab.cli", *ARGS, "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "EBMLAB_KILL_AT": ""})


def logged_steps(out: Path) -> list[int]:
    f = out / "metrics.jsonl"
    if not f.is_file():
        return []
    return [json.loads(ln)["step"] for ln in f.read_text().splitlines() if ln.endswith("}")]


def interrupt_after(out: Path, more: int, sig: int) -> tuple[int, str]:
    """Start the run, wait until it has logged ``more`` steps past where it began, send ``sig``; (status, stderr)."""
    before = max(logged_steps(out), default=0)
    proc = start(out)
    deadline = time.monotonic() + 120
    while max(logged_steps(out), default=0) < before + more:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the run logged no steps in 120 s"
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def test_a_signal_stops_at_the_step_with_a_checkpoint_and_the_run_resumes_there(tmp_path):
    out = tmp_path / "run"
    rc, err = interrupt_after(out, 20, signal.SIGINT)
    assert rc == 130, err
    assert "stopping after this step with a checkpoint" in err and "Traceback" not in err
    first = torch.load(out / "checkpoint.pt", weights_only=True)["step"]
    assert first >= 20  # ckpt_every is 10⁶: only the interruption can have written this checkpoint
    assert max(logged_steps(out)) == first  # the step the signal interrupted was finished, logged and saved
    record = json.loads((out / "run.json").read_text())["sessions"]
    assert record[-1]["status"] == "interrupted" and record[-1]["end_step"] == first

    rc, err = interrupt_after(out, 20, signal.SIGTERM)  # the same command: resumes at `first`
    assert rc == 130, err
    second = torch.load(out / "checkpoint.pt", weights_only=True)["step"]
    record = json.loads((out / "run.json").read_text())["sessions"]
    assert [s["start_step"] for s in record] == [0, first]
    assert second >= first + 20 and record[-1]["end_step"] == second
    steps = logged_steps(out)
    assert steps == list(range(1, second + 1))  # one line per step: nothing lost, nothing logged twice


@pytest.mark.parametrize("sent", ["ctrl-c", "sigterm-to-the-bench"])
def test_ctrl_c_stops_a_bench_its_running_runs_checkpointed_and_no_queued_run_started(tmp_path, sent):
    """Ctrl-C in a terminal (SIGINT to the bench's process group), or SIGTERM to the bench's process alone (``kill
    PID``, a scheduler): each running run stops at the end of its step with a checkpoint, no queued run starts, and
    the bench ends with status 130 — before the bench sent signals on to its workers, the second kind left them
    training every queued run to its end."""
    out = tmp_path / "bench"
    proc = subprocess.Popen([sys.executable, "-m", "ebmlab.cli", "bench", "toy", "--methods", "gan,vgan", "--data",
                             "ring8", "--seeds", "2", "--jobs", "2", "--out", str(out), "steps=1000000",
                             "ckpt_every=1000000", "log_every=1", "loggers=", "plots=false"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    first = [out / "runs" / f"{m}-ring8-s0" for m in ("gan", "vgan")]  # seed 0 of both goes first
    deadline = time.monotonic() + 180
    while min(max(logged_steps(r), default=0) for r in first) < 5:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the bench's runs logged no steps in 180 s"
        time.sleep(0.1)
    if sent == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: to the foreground process group
    else:
        os.kill(proc.pid, signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)  # the third run, already queued to a worker, must not start and run on
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"the bench went on for 60 s after {sent}") from None
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    for run in first:
        record = (run / "run.json").read_text() if (run / "run.json").is_file() else "no run.json"
        assert (run / "checkpoint.pt").is_file(), f"{run.name}: no checkpoint; its record: {record}; stderr: {err}"
        step = torch.load(run / "checkpoint.pt", weights_only=True)["step"]
        assert step >= 5 and max(logged_steps(run)) == step, (step, max(logged_steps(run)), record)
    assert not any((out / "runs" / f"{m}-ring8-s1" / "checkpoint.pt").exists() for m in ("gan", "vgan"))


def test_a_bench_worker_waiting_for_a_run_takes_ctrl_c_quietly_and_starts_no_further_run(monkeypatch):
    """An idle worker (its last run finished) notes Ctrl-C and returns to waiting — no traceback of multiprocessing's
    queue, as the six-job claims run on a GPU printed for each idle worker — and a run queued to it afterwards is
    not started; in a worker running one of the bench's runs, Ctrl-C outside the trainer's own handler interrupts."""
    from ebmlab.bench import run as bench_run

    monkeypatch.setattr(bench_run, "_INTERRUPTED", False)
    old = signal.getsignal(signal.SIGINT)
    try:
        bench_run._worker_init()
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs between bytecodes of the main thread
        assert bench_run._INTERRUPTED
        with pytest.raises(KeyboardInterrupt, match="an earlier run of this worker was interrupted"):
            bench_run._one(("gan", "ring8", 0, {}, "unused"))
        monkeypatch.setattr(bench_run, "_BUSY", True)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    finally:
        signal.signal(signal.SIGINT, old)


def test_a_signal_landing_after_the_checkpoint_decision_stops_after_the_next_step_with_its_checkpoint(tmp_path,
                                                                                                        monkeypatch):
    """A signal that arrives after a step's checkpoint was decided (here: at the step's fault point, between the
    checkpoint and the stop) is acted on after the next step, which is checkpointed; read twice, the stop flag
    made the run stop at the first step without a checkpoint, losing it on resume."""
    import ebmlab.trainer as trainer

    real = trainer.fault_point

    def signal_at_step_5(where: str) -> None:
        if where == "step:5":
            os.kill(os.getpid(), signal.SIGINT)  # the trainer's handler takes it: the flag is set here
        real(where)

    monkeypatch.setattr(trainer, "fault_point", signal_at_step_5)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt, match="SIGINT at step 6: checkpoint saved"):
        trainer.train("gan", "ring8", out=out, progress=False,
                      overrides={"steps": 100, "ckpt_every": 1000, "log_every": 1, "loggers": "", "plots": False,
                                 "threads": 1})
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 6 == max(logged_steps(out))
