"""Threads that fit the machine (ebmlab.threads): the CPUs this process may use, one on 2D data, waiting threads
asleep, and --threads on every command that computes."""

import os
import subprocess
import sys

import pytest
import torch

from ebmlab import threads
from ebmlab.cli import main


def test_the_default_is_the_cpus_this_process_may_use_and_one_on_2d_data(monkeypatch):
    import joblib.externals.loky as loky

    monkeypatch.setattr(loky, "cpu_count", lambda *a, **k: 3)  # e.g. a CPU quota of 3 on a larger machine
    assert threads.usable_cpus() == 3 and threads.default_threads("image") == 3
    assert threads.default_threads("toy2d") == 1 and threads.default_threads(None) == 3
    before = torch.get_num_threads()
    try:
        assert threads.apply(None, "vectors") == 3 and torch.get_num_threads() == 3
        assert blas_threads() == {3}  # NumPy's and SciPy's OpenBLAS get torch's count
        assert threads.apply(2, "toy2d") == 2 and torch.get_num_threads() == 2 and blas_threads() == {2}
        assert threads.apply(None, "toy2d") == 1 and blas_threads() == {1}
    finally:
        torch.set_num_threads(before)
        threads.limit_blas(1)
    monkeypatch.undo()
    assert threads.usable_cpus() >= 1


def blas_threads() -> set[int]:
    """The thread counts of the BLAS libraries this process has loaded (NumPy's and SciPy's OpenBLAS both)."""
    from threadpoolctl import threadpool_info

    infos = [i for i in threadpool_info() if i["user_api"] == "blas"]
    assert {i["internal_api"] for i in infos} >= {"openblas"}, infos
    return {i["num_threads"] for i in infos}


def test_waiting_threads_sleep_unless_the_environment_says_otherwise():
    code = "import os, ebmlab; print(os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip()
    assert out == "PASSIVE"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"}, capture_output=True,
                         text=True).stdout.strip()
    assert out == "ACTIVE"


def test_every_command_that_computes_takes_threads(tmp_path, capsys):
    run = tmp_path / "r"
    assert main(["train", "gan", "--data", "ring8", "--out", str(run), "--no-progress", "steps=5", "eval_samples=50",
                 "plots=false", "loggers="]) == 0
    capsys.readouterr()
    before = torch.get_num_threads()
    try:
        assert main(["sample", str(run), "-n", "5", "--out", str(tmp_path / "x.npy"), "--threads", "2"]) == 0
        assert "2 threads (asked for" in capsys.readouterr().out and torch.get_num_threads() == 2
        assert main(["sample", str(run), "-n", "5", "--out", str(tmp_path / "x.npy")]) == 0
        assert "1 thread (2D data" in capsys.readouterr().out and torch.get_num_threads() == 1
        assert main(["score", str(tmp_path / "x.npy"), "--data", "ring8", "--threads", "1"]) == 0
        assert "1 thread (asked for" in capsys.readouterr().out
        assert main(["eval", str(run)]) == 0
        assert "computed with 1 thread" in capsys.readouterr().out
        for cmd in (["eval", str(run)], ["score", str(tmp_path / "x.npy"), "--data", "ring8"]):
            assert main([*cmd, "--threads", "0"]) == 2
            assert "--threads takes a count ≥ 1" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)
    for cmd in ("eval", "sample", "inpaint", "score", "semisup"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        assert "--threads" in capsys.readouterr().out, cmd
