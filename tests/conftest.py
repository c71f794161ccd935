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
    from ebmlab.threads import limit_blas

    torch.set_num_threads(1)
    limit_blas(1)  # NumPy's OpenBLAS too: its two spinning threads in each of two workers on 2 cores (ebmlab.threads)
    yield
    torch.set_flush_denormal(False)  # a run in this process set it (run option flush_denormal): the next test starts
    # with PyTorch's default


@pytest.fixture(autouse=True, scope="session")
def _stores_kept_apart(tmp_path_factory):
    """The data sets' references kept on disk (``metrics.evaluators.stored_reference``) and the trained classifiers
    (``metrics.classifier``) in this session's own directories, not the user's ``~/.cache/ebmlab/references`` and
    ``~/.cache/ebmlab/classifiers``: a test never reads what an earlier session or a campaign kept (a classifier
    restored by ``benchmarks/claims/tools/keep_runs.py`` was trained on another machine), nor writes there.
    The worker processes of one ``pytest -n`` run share them (in the run's base directory, above each worker's): a
    classifier or reference one worker computes, the others read (``metrics.classifier`` trains a classifier once
    for workers that need it at the same time; a reference file is written atomically, and two workers computing
    one write the same numbers). Tests that change a store's files do it in a store of their own."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # BASE/popen-gwN: BASE is this run's, shared by its workers
        stores = {k: base.parent / f"shared-{k}" for k in ("references", "classifiers")}
        for d in stores.values():
            d.mkdir(exist_ok=True)
    else:
        stores = {k: tmp_path_factory.mktemp(k) for k in ("references", "classifiers")}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EBMLAB_REFERENCES", str(stores["references"]))
        mp.setenv("EBMLAB_CLASSIFIERS", str(stores["classifiers"]))
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


def run_cli(args, env: dict | None = None, timeout: float = 300, cwd: str | None = None) -> subprocess.CompletedProcess:
    """``subprocess.run([sys.executable, "-m", "ebmlab", *args], env={**os.environ, **env}, capture_output=True,
    text=True)``, in a process forked from a server that has the heavy imports done (torch and the libraries a run
    loads take 5–8 s to import, and the kill-and-resume tests start dozens of commands). The returncode is the
    command's exit status, or −N when signal N killed it. ``env`` is the command's environment from its start, but a
    variable that a preloaded module reads when it is imported takes the server's value (the session's, when the
    server started): pass those to a real subprocess. ``cwd``: the command's working directory (default this
    process's)."""
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
    return _fork(args, env, timeout, cwd=cwd)


def _fork(args, env: dict | None, timeout: float, probe: bool = False,
          cwd: str | None = None) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as tmp:
        out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
        init = {"ARGV": [str(a) for a in args], "ENV": {**os.environ, **(env or {})}, "STDOUT": str(out),
                "STDERR": str(err), "PROBE": probe, "CWD": cwd or os.getcwd()}
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


@pytest.fixture(scope="session")
def ebmlab_on_path(tmp_path_factory):
    """A directory holding an ``ebmlab`` executable that runs each command through :func:`run_cli` (put it first on
    PATH): a shell script that types ``ebmlab train ...`` then starts in well under a second, not 5–8 s, with the
    command's arguments, working directory, environment, output and exit status its own. The executable is a short
    script of the standard library that hands its command over a Unix socket to a thread of this process and prints
    what comes back; ``tests/test_docs.py`` checks the installed console script itself once."""
    import json
    import socketserver
    import stat
    import sys
    import threading

    d = tmp_path_factory.mktemp("cli-on-path")
    sock = str(d / "cli.sock")

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            req = json.loads(self.rfile.readline())
            try:
                r = run_cli(req["argv"], req["env"], timeout=600, cwd=req["cwd"])
                reply = {"rc": r.returncode, "stdout": r.stdout, "stderr": r.stderr}
            except Exception as e:  # noqa: BLE001 - reported to the calling shell as a failed command
                reply = {"rc": 1, "stdout": "", "stderr": f"ebmlab test shim: {type(e).__name__}: {e}\n"}
            self.wfile.write(json.dumps(reply).encode())

    server = socketserver.ThreadingUnixStreamServer(sock, Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    exe = d / "ebmlab"
    exe.write_text(f"""#!{sys.executable} -IS
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect({sock!r})
s.sendall(json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}}).encode() + b"\\n")
s.shutdown(socket.SHUT_WR)
r = json.loads(b"".join(iter(lambda: s.recv(1 << 16), b"")))
sys.stdout.write(r["stdout"])
sys.stderr.write(r["stderr"])
sys.exit(r["rc"] if r["rc"] >= 0 else 128 - r["rc"])
""")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    yield d
    server.shutdown()
    server.server_close()
