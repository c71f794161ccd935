import multiprocessing
import os
import runpy
import subprocess
import tempfile
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)
    yield
    torch.set_flush_denormal(False)  # a run in this process set it (run option flush_denormal): the next test starts
    # with PyTorch's default


@pytest.fixture(autouse=True, scope="session")
def _references_kept_apart(tmp_path_factory):
    """The data sets' references kept on disk (``metrics.evaluators.stored_reference``) in this session's own
    directory, not the user's ``~/.cache/ebmlab/references``: a test never reads what an earlier session kept."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EBMLAB_REFERENCES", str(tmp_path_factory.mktemp("references")))
        yield


@pytest.fixture(autouse=True)
def _registries():
    """What a test registers (a method, data set or metric) or unregisters is forgotten after it."""
    from ebmlab.plugins import restored

    with restored():
        yield


# --- `ebmlab` commands in processes of their own, started from a fork server (tests/cli_process.py) ---------------

_PRELOAD = ["torch", "torch._dynamo", "numpy", "ot", "matplotlib.pyplot", "ebmlab.cli", "ebmlab.trainer",
            "ebmlab.evaluation", "ebmlab.plots", "ebmlab.methods", "ebmlab.metrics", "ebmlab.data"]
_CONTEXT = None
_PROBED = False  # the first forked process checked that parallel kernels run


def run_cli(args, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``subprocess.run([sys.executable, "-m", "ebmlab", *args], env={**os.environ, **env}, capture_output=True,
    text=True)``, in a process forked from a server that has the heavy imports done (torch and the libraries a run
    loads take 5–8 s to import, and the kill-and-resume tests start dozens of commands). The returncode is the
    command's exit status, or −N when signal N killed it. ``env`` is the command's environment from its start, but a
    variable that a preloaded module reads when it is imported takes the server's value (the session's, when the
    server started): pass those to a real subprocess."""
    global _CONTEXT, _PROBED
    if _CONTEXT is None:
        _CONTEXT = multiprocessing.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(_PRELOAD)
    if not _PROBED:
        try:
            _fork(["(probe)"], {}, 60, probe=True)
            _PROBED = True
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"a process forked after importing {_PRELOAD} hangs in its first parallel kernel: one "
                               "of those imports runs a parallel operation (e.g. torch.linalg at module level), "
                               "whose thread pool a forked process cannot use; compute it lazily") from None
    return _fork(args, env, timeout)


def _fork(args, env: dict | None, timeout: float, probe: bool = False) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as tmp:
        out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
        init = {"ARGV": [str(a) for a in args], "ENV": {**os.environ, **(env or {})}, "STDOUT": str(out),
                "STDERR": str(err), "PROBE": probe}
        proc = _CONTEXT.Process(target=runpy.run_path, args=(str(Path(__file__).with_name("cli_process.py")),),
                                kwargs={"init_globals": init, "run_name": "__main__"})
        proc.start()
        proc.join(timeout)
        if proc.exitcode is None:
            proc.kill()
            proc.join()
            raise subprocess.TimeoutExpired(["ebmlab", *args], timeout)
        return subprocess.CompletedProcess(["ebmlab", *args], proc.exitcode, out.read_text(), err.read_text())


@pytest.fixture(scope="session")
def cli():
    return run_cli
