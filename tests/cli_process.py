"""Run in a child of the test session's fork server (``conftest.run_cli``): one ``ebmlab`` command, as
``python -m ebmlab ARGS`` would run it, with its own environment, its output in files and its exit status.

The fork server imported torch, ebmlab and the libraries a run loads (and nothing else: no tensor was made, no
thread started) before it forked this process, so a command starts in well under a second instead of the 5–8 s
those imports take; everything else is a new process's: a SIGKILL kills this process alone, and what it leaves on
disk is what the command wrote. ``ARGV``, ``ENV``, ``STDOUT``, ``STDERR`` and ``CWD`` come from ``runpy.run_path``'s
``init_globals``; ``PROBE`` true instead runs the parallel kernels a command would (matrix products, an inverse, a
convolution), which hang in a forked process if an import in the server started their thread pool (run once, first).
"""

import atexit
import os
import sys


def _command() -> None:
    out = os.open(STDOUT, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)  # noqa: F821 (from init_globals)
    err = os.open(STDERR, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)  # noqa: F821
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.environ.clear()
    os.environ.update(ENV)  # noqa: F821
    sys.argv = ["ebmlab", *ARGV]  # noqa: F821
    os.chdir(CWD)  # noqa: F821

    if PROBE:  # noqa: F821
        import torch

        a = torch.randn(256, 256, dtype=torch.float64)
        torch.linalg.inv(a @ a.T + torch.eye(256, dtype=torch.float64))
        torch.nn.functional.conv2d(torch.randn(64, 8, 32, 32), torch.randn(16, 8, 3, 3)).sum()
        raise SystemExit(0)

    from ebmlab.cli import main

    code = main(list(ARGV))  # noqa: F821
    atexit._run_exitfuncs()  # a fork server's child leaves through os._exit, which would skip them
    sys.stdout.flush()
    sys.stderr.flush()
    raise SystemExit(code)


# A command that starts workers by multiprocessing's spawn (`claims run --jobs 2`) has each re-run its main module,
# this file, under the name __mp_main__ and without the init_globals it reads: there it does nothing, as `python -m ebmlab`'s
# main module does under that name.
if __name__ == "__main__":
    _command()
