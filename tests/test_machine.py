"""The machine-speed probe (``ebmlab.machine``): it reads and changes no global state, a run's numbers are the same
with and without it, and a run's speed is the median of its sessions' probes (None where a session trained
without one)."""

import json
import os

import torch

import ebmlab
from ebmlab import machine
from ebmlab.runs import RunDir

FAST = {"eval_samples": 300, "plots": "false", "loggers": "", "log_every": 5, "ckpt_every": 10, "steps": 30,
        "eval_density": "false"}


def test_the_probe_times_its_workload_without_touching_global_state():
    torch.manual_seed(3)
    rng, threads = torch.get_rng_state(), torch.get_num_threads()
    value = machine.probe(repeats=2)
    assert 0 < value < 30  # CPU seconds of eight small forward-and-backward passes
    assert torch.equal(torch.get_rng_state(), rng) and torch.get_num_threads() == threads


def test_speed_probes_leave_the_run_unchanged_and_are_recorded(tmp_path, monkeypatch):
    """A probe after every step (the interval shrunk; each probe one pass) changes no parameter or metric of the
    run, and every probe is in run.json's session record; the run's speed is their median."""
    monkeypatch.setattr(machine, "PROBE_EVERY", 1e-9)
    monkeypatch.setattr(machine, "ITERATIONS", 1)
    monkeypatch.setattr(machine, "REPEATS", 1)
    plain = ebmlab.train("gan", "ring8", out=tmp_path / "plain", overrides=FAST, progress=False)
    probed = ebmlab.train("gan", "ring8", out=tmp_path / "probed", overrides={**FAST, "speed_probe": "true"},
                          progress=False)
    for a, b in zip(plain.method.parameters(), probed.method.parameters()):
        assert torch.equal(a, b)
    assert plain.summary["metrics"] == probed.summary["metrics"]
    session = json.loads((tmp_path / "probed" / "run.json").read_text())["sessions"][-1]
    probes = session["speed_probe"]["cpu_s"]
    assert session["speed_probe"]["workload"] == machine.WORKLOAD
    assert len(probes) == 31 and all(p > 0 for p in probes)  # as the loop starts, then after each of 30 steps
    assert RunDir(tmp_path / "probed").speed() == round(sorted(probes)[15], 4)
    # every CPU session says what the CPU is: torch's vector capability (which kernels ran) and, on Linux, its model
    assert session["cpu"]["capability"] == str(torch.backends.cpu.get_cpu_capability())
    assert ("model_name" in session["cpu"]) == os.path.isfile("/proc/cpuinfo")
    assert RunDir(tmp_path / "plain").speed() is None
    assert "speed_probe" not in json.loads((tmp_path / "plain" / "run.json").read_text())["sessions"][-1]


def test_a_runs_speed_is_the_median_of_its_probes_and_none_when_a_session_trained_without():
    def s(start, end, probes=None, workload=machine.WORKLOAD):
        rec = {"start_step": start, "end_step": end}
        if probes is not None:
            rec["speed_probe"] = {"workload": workload, "cpu_s": probes}
        return rec

    assert machine.run_speed([s(0, 10, [0.2, 0.4, 0.3]), s(10, 20, [0.25, 0.35])]) == 0.3
    assert machine.run_speed([s(0, 10, [0.2]), s(10, 20)]) is None  # the second session trained unprobed
    assert machine.run_speed([s(0, 10, [0.2]), s(20, 20)]) == 0.2  # one that trained nothing (a finished run's report)
    assert machine.run_speed([s(0, 10, [0.2], workload="another")]) is None  # another workload's timings: not this
    assert machine.run_speed([s(0, 10, [0.2, "x", -1, True])]) == 0.2  # a hand-edited record: its numbers only
    assert machine.run_speed([]) is None


def test_runs_trained_side_by_side_are_told_from_their_session_records():
    def s(start, end, started, ended, host="vm"):
        return {"start_step": start, "end_step": end, "started": started, "ended": ended, "host": host}

    a = machine.training_spans([s(0, 10, "2026-11-28T10:00:00+0000", "2026-11-28T10:30:00+0000"),
                                s(10, 10, "2026-11-28T11:00:00+0000", "2026-11-28T11:00:05+0000")])  # trained none
    assert len(a) == 1 and a[0][0] == "vm" and a[0][2] - a[0][1] == 1800
    beside = machine.training_spans([s(0, 9, "2026-11-28T10:29:00+0000", "2026-11-28T10:50:00+0000")])
    later = machine.training_spans([s(0, 9, "2026-11-28T10:30:00+0000", "2026-11-28T10:50:00+0000")])
    elsewhere = machine.training_spans([s(0, 9, "2026-11-28T10:29:00+0000", "2026-11-28T10:50:00+0000", "other")])
    assert machine.side_by_side(a, beside) and not machine.side_by_side(a, later)
    assert not machine.side_by_side(a, elsewhere)
    # a killed session (no end) or a hand-edited time: no span; malformed spans: not side by side
    assert machine.training_spans([{"start_step": 0, "end_step": None, "started": "x"},
                                   s(0, 5, "yesterday", "2026-11-28T10:50:00+0000")]) == []
    assert not machine.side_by_side([["vm", "x", None]], beside) and not machine.side_by_side(None, beside)
