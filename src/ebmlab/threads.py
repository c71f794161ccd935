"""How many CPU threads a process of ebmlab computes with, and how those threads wait.

- **How many** (:func:`default_threads`): the CPUs this process may use — its CPU affinity and its control group's
  CPU quota, by joblib's ``loky.cpu_count`` (the helper scikit-learn uses; ``os.cpu_count`` counts the machine's,
  which a container or a ``taskset`` may not give) — and one on 2D toy data, whose small networks run fastest on
  one (``benchmarks/threads``). Run option ``threads`` and ``--threads`` on every command that computes set it.
- **How they wait** (:func:`passive_waits`): torch's OpenMP threads spin while they wait for work by default. On a
  machine another job keeps busy, a spinning thread takes the core the other thread's work needs: a 10-step KALE
  run on stacked digits took 134 s with 2 threads beside a 2-job benchmark on a 2-core machine and 10 s with one
  (``benchmarks/threads/busy.md``). ``OMP_WAIT_POLICY=PASSIVE`` makes waiting threads sleep: the same run took
  14.5 s with 2 threads. ebmlab sets it when ``ebmlab`` is imported, before torch loads OpenMP, unless the
  environment already names a policy (a program that imported torch first keeps its own).
- **NumPy's and SciPy's BLAS** (:func:`limit_blas`): the metrics' matrix products (KID's kernels, the Fréchet
  distance's covariances) run in OpenBLAS, whose pool takes every CPU and spins while it waits, whatever torch was
  told. Beside another job on a 2-core machine a 250 × 64 product took 25× as long on OpenBLAS's two threads as on
  one; with this and KID's cube as two products (``metrics.features``), KID of 500 features took 0.5 s instead of
  3.0–3.9 s (``benchmarks/threads/blas.md``). :func:`apply` gives the BLAS pools the count it gives torch (by
  threadpoolctl, scikit-learn's helper and a dependency of ebmlab).
"""

from __future__ import annotations

import os

WAIT_POLICY = "PASSIVE"


def passive_waits() -> None:
    """``OMP_WAIT_POLICY=PASSIVE`` unless the environment names a policy (module docstring). Effective only before
    OpenMP starts, i.e. before torch is imported."""
    os.environ.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)


def usable_cpus() -> int:
    """The CPUs this process may use: its affinity and its control group's CPU quota (loky's ``cpu_count``)."""
    try:
        from joblib.externals.loky import cpu_count
    except ImportError:  # joblib comes with scikit-learn; without it, the affinity alone
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    return max(1, int(cpu_count()))


def default_threads(kind: str | None) -> int:
    """The threads of a process computing on data of ``kind`` (``toy2d``: 1) when none is asked for."""
    return 1 if kind == "toy2d" else usable_cpus()


def apply(threads: int | None, kind: str | None = None) -> int:
    """Set torch's CPU threads: ``threads`` when given (≥ 1), else :func:`default_threads`; returns the count."""
    import torch

    n = threads or default_threads(kind)
    torch.set_num_threads(n)
    limit_blas(n)
    return n


def limit_blas(n: int) -> None:
    """NumPy's and SciPy's BLAS pools (and any other loaded, e.g. torch's MKL) to ``n`` threads, from now on
    (module docstring). Both are imported first: threadpoolctl limits the libraries loaded when it is called, and
    SciPy brings its own OpenBLAS."""
    import numpy  # noqa: F401 - loads NumPy's BLAS
    import scipy.linalg  # noqa: F401 - loads SciPy's
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n, user_api="blas")


def why(threads: int | None, kind: str | None) -> str:
    """What a thread count comes from, for the line that prints it."""
    if threads:
        return "asked for"
    if kind == "toy2d":
        return "2D data: one is fastest"
    return "the CPUs this process may use"


__all__ = ["WAIT_POLICY", "apply", "default_threads", "limit_blas", "passive_waits", "usable_cpus", "why"]
