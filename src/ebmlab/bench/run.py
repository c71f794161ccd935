"""``ebmlab bench toy|images``: a grid of (method, data set, seed) runs and its report.

Each run trains into ``OUT/runs/<method>-<data>-s<seed>`` (so an interrupted benchmark resumes where it stopped);
with ``--grid FILE`` (:mod:`ebmlab.bench.grid`) the product of the axes a method has is run for each method into
``OUT/runs/<method>-<data>-g<setting>-s<seed>``, and the report adds a per-setting table. The table
(:mod:`ebmlab.bench.tables`) puts every method beside the real-data row (exact samples: the ceiling for sample
metrics, the true entropy as the NLL floor) and the reference rows recalled from papers, labelled as recalled.
Ctrl-C stops a bench: each running run finishes its step and saves a checkpoint there, and no queued run starts;
the same command resumes. So does SIGINT or SIGTERM sent to the bench's process alone (``kill PID`` from another
shell, a scheduler's SIGTERM): the bench sends it on to its worker processes (:class:`_Forward`). The runs go seed by
seed, so that a bench stopped part of the way has each method at its first seeds rather than some methods at every
seed and others at none. This is the one module of the bench that trains (it imports the trainer).
"""

from __future__ import annotations

import json
import os
import platform
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from ..errors import DivergenceError, EbmlabError, require_int
from ..sessions import StopAtStepEnd
from .grid import Task, check_axes, tasks as grid_tasks
from .tables import aggregate, classifiers_used, load_recalled, markdown, markdown_settings


_INTERRUPTED = False  # a worker process whose run was interrupted (Ctrl-C) starts no further run
_BUSY = False  # a worker process running one of the bench's runs (not waiting for the next)


def _worker_init() -> None:
    """A worker's Ctrl-C (or SIGTERM) while it waits for a run (its last one finished): noted, so that it starts no
    further run, and nothing else — the default KeyboardInterrupt there printed a traceback of multiprocessing's queue
    per idle worker. While a run trains, the trainer's own handler (``ebmlab.sessions.StopAtStepEnd``) stands in for
    this one; between the trainer's phases a Ctrl-C interrupts the run as before. The worker leaves the terminal's
    process group: a Ctrl-C reaches the bench alone, which sends it on (:class:`_Forward`) — once per press, as a
    signal to the bench alone is."""
    os.setpgrp()
    for sig in StopAtStepEnd.SIGNALS:
        signal.signal(sig, _sigint_in_worker)


class _Forward:
    """While the bench's worker processes run: SIGINT or SIGTERM to the bench is sent on to each worker. The first
    stops each running run at the end of its step with a checkpoint and starts no queued run; a second stops at
    once. Without it, a signal to the bench alone (``kill -INT PID``) left the workers training every queued run to
    its end, the bench waiting for them. Installed in the main thread only (signal handlers live there)."""

    def __init__(self) -> None:
        self.ex: ProcessPoolExecutor | None = None  # set once the pool exists; the handlers outlive its shutdown
        self.old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        for pid in list(getattr(self.ex, "_processes", None) or {}):  # the pool's worker processes by pid
            try:
                os.kill(pid, signum)
            except ProcessLookupError:  # a worker that has just ended
                pass

    def __enter__(self) -> _Forward:
        if threading.current_thread() is threading.main_thread():
            for sig in StopAtStepEnd.SIGNALS:  # the signals the trainer stops at a step's end on
                self.old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self.old.items():
            signal.signal(sig, old)


def _sigint_in_worker(signum: int, frame: Any) -> None:
    global _INTERRUPTED
    _INTERRUPTED = True
    if _BUSY:
        raise KeyboardInterrupt


def _one(args: tuple[str, str, int, dict[str, Any], str]) -> dict[str, Any]:
    global _INTERRUPTED, _BUSY
    method, data, seed, overrides, out = args
    if _INTERRUPTED:  # a run already queued to this worker when the signal came: not started
        raise KeyboardInterrupt("an earlier run of this worker was interrupted")
    _BUSY = True
    try:
        return _train_one(method, data, seed, overrides, out)
    except KeyboardInterrupt:
        _INTERRUPTED = True
        raise
    finally:
        _BUSY = False


def _train_one(method: str, data: str, seed: int, overrides: dict[str, Any], out: str) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    from ..trainer import train

    t0 = time.perf_counter()
    try:  # one thread a job unless the bench's options name a count: the jobs share the machine's CPUs
        res = train(method, data, out=out, overrides={"threads": 1, **overrides, "seed": seed}, progress=False)
        seconds = time.perf_counter() - t0
        if res.resumed_from > 0:  # reused or resumed: the wall time of all its sessions, from its run record
            seconds = _recorded_seconds(out)
        used = res.summary.get("budget") or {}
        return {"method": method, "data": data, "seed": seed, "status": "ok", "metrics": res.summary["metrics"],
                "seconds": seconds, "steps_run": used.get("steps"), "train_s": res.train_seconds,
                "cpu_s": res.train_cpu_seconds,
                "evals": used.get("net_evals_total")}
    except DivergenceError as exc:
        return {"method": method, "data": data, "seed": seed, "status": "diverged", "error": str(exc),
                "seconds": time.perf_counter() - t0}


def _recorded_seconds(out: str | Path) -> float | None:
    """Wall time of a run summed over the sessions of its run.json; None when that is unknown: a run written before
    run records existed (its first recorded session does not start at step 0) or one with a killed session."""
    from datetime import datetime

    try:
        sessions = json.loads((Path(out) / "run.json").read_text())["sessions"]
        if not sessions or sessions[0]["start_step"] != 0 or any("ended" not in s for s in sessions):
            return None
        total = sum((datetime.strptime(s["ended"], "%Y-%m-%dT%H:%M:%S%z")
                     - datetime.strptime(s["started"], "%Y-%m-%dT%H:%M:%S%z")).total_seconds()
                    for s in sessions)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return total

def run_bench(methods: list[str], datasets: list[str], seeds: int, *, out: str | Path, steps: int | None = None,
              overrides: dict[str, Any] | None = None, jobs: int = 1, command: str = "",
              grid: dict[str, list[Any]] | None = None, suite: str = "toy",
              shard: tuple[int, int] | None = None, recalled: str | Path | None = None) -> dict[str, Any]:
    """Run the grid of (method, data, seed[, setting]) and write results.md/json; ``suite`` picks the note;
    ``recalled``: a TOML file of rows recalled from papers (:func:`load_recalled`) to show beside the results.

    ``shard=(i, n)`` runs only the i-th of n disjoint parts of the grid (every n-th run, starting at run i, so each
    part mixes methods) and writes ``OUT/parts/part-<i>-of-<n>.json`` instead of the table; ``collect`` merges
    the parts into the same table as an unsharded run. Runs already finished in OUT are reused, unfinished ones
    resumed, so a part can be re-run after a kill."""
    out = Path(out)
    require_int("--jobs", jobs, 1, " (runs at a time)")
    over = _check_bench(methods, datasets, seeds, overrides, steps, grid, shard, recalled)
    todo, labels = grid_tasks(methods, datasets, seeds, over, out, grid)
    _check_settings(todo)
    n_grid = len(todo)
    if shard is not None:
        todo, labels = todo[shard[0]::shard[1]], labels[shard[0]::shard[1]]
    t0 = time.perf_counter()
    results = _run_all(todo, jobs, suite, out)
    for r, label in zip(results, labels):
        if label is not None:
            r["setting"] = label
    import torch

    meta = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
            "torch": torch.__version__, "wall_s": time.perf_counter() - t0, "jobs": jobs}
    cmd = command or f"ebmlab bench {suite} " + " ".join(sys.argv[3:])
    spec = {"suite": suite, "datasets": datasets, "eval_samples": evaluated_count(over),
            "grid": grid, "runs_in_grid": n_grid, "recalled": str(recalled) if recalled is not None else None}
    if shard is not None:
        return _write_part(out, shard, {"command": cmd, "meta": meta, "shard": list(shard), **spec, "runs": results})
    return write_report(results, out, command=cmd, meta=meta, **spec)


def evaluated_count(over: dict[str, Any]) -> int:
    """The sample count the runs' final evaluations use under the bench's options (``eval=quick`` caps it): the
    count the reference rows beside them are computed at, so that runs and references are compared at one count."""
    from ..config import RunConfig
    from ..evaluation import QUICK_SAMPLES

    n = int(over.get("eval_samples", RunConfig().eval_samples))
    return min(n, QUICK_SAMPLES) if over.get("eval") == "quick" else n


def _check_bench(methods: list[str], datasets: list[str], seeds: int, overrides: dict[str, Any] | None,
                 steps: int | None, grid: dict[str, list[Any]] | None, shard: tuple[int, int] | None,
                 recalled: str | Path | None) -> dict[str, Any]:
    """Everything a bench could refuse, refused before any run; the options every run gets."""
    if shard is not None and not (isinstance(shard, tuple) and len(shard) == 2 and 0 <= shard[0] < shard[1]):
        raise EbmlabError(f"--shard must be i/n with 0 ≤ i < n; got {shard}")
    from ..data import get_dataset
    from ..methods import get_method

    for m in methods:
        get_method(m)
    for d in datasets:
        get_dataset(d)
    if seeds < 1:
        raise EbmlabError(f"--seeds must be ≥ 1, got {seeds}")
    load_recalled(recalled)  # a bad file is refused before any run
    over = dict(overrides or {})
    if steps is not None:
        over["steps"] = steps
    over.setdefault("plots", "true")  # the report (report.html) shows every run's plots side by side
    if grid is not None:
        check_axes(grid, methods, set(overrides or {}) | ({"steps"} if steps is not None else set()))
    return over


def _check_settings(todo: list[Task]) -> None:
    """Each distinct (method, data, options) of the grid built once on the CPU before any run trains, so that a
    setting the method refuses (an option that does not apply to it, a combination it forbids) stops the bench
    at once with its message, not after the runs before it (a grid of BiB and its one-sided pairing with a
    two-sided option ended after 34 minutes)."""
    import torch

    from ..config import resolve_config
    from ..placement import build_method

    seen = set()
    for method, data, _, over, _ in todo:
        key = (method, data, repr(sorted(over.items())))
        if key in seen:
            continue
        seen.add(key)
        local = {k: v for k, v in over.items() if k not in ("device", "budget_seconds", "budget_cpu_seconds")}
        try:
            build_method(resolve_config(method, data, overrides=local), torch.device("cpu"))
        except EbmlabError as exc:
            shown = ", ".join(f"{k}={v}" for k, v in sorted(local.items()) if k not in ("plots", "eval_samples"))
            raise EbmlabError(f"bench: {method} on {data} with {shown or 'its defaults'} is refused before any run: "
                              f"{exc}") from None


def _run_all(todo: list[Task], jobs: int, suite: str, out: Path, runs_dir: Path | None = None) -> list[dict[str, Any]]:
    """The runs' results in grid order: one at a time, or ``jobs`` at a time in spawned worker processes
    (``runs_dir``: where the runs are, for the message of a killed worker; default OUT/runs)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc=f"bench {suite} ({jobs} at a time)", unit="run", dynamic_ncols=True)
    results: list[dict[str, Any]] = []
    try:
        if jobs > 1:
            forward = _Forward()
            with forward, ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"),
                                              initializer=_worker_init) as ex:
                forward.ex = ex
                for r in ex.map(_one, todo):  # in grid order; the bar moves as each finishes in that order
                    results.append(r)
                    bar.set_postfix_str(f"{r['method']} on {r['data']}: {r['status']}", refresh=False)
                    bar.update(1)
        else:
            for t in todo:
                results.append(_one(t))
                bar.set_postfix_str(f"{t[0]} on {t[1]}: {results[-1]['status']}", refresh=False)
                bar.update(1)
    except BrokenProcessPool:
        raise EbmlabError(f"a worker process of the bench was killed while it ran (by the system; out of memory "
                          f"is the usual cause: `dmesg` says) — run fewer at a time (--jobs) or with smaller "
                          f"evaluation options; the finished runs are kept in {runs_dir or out / 'runs'} and the same "
                          f"command reuses them and resumes the others from their checkpoints") from None
    finally:
        bar.close()
    return results


def _write_part(out: Path, shard: tuple[int, int], part: dict[str, Any]) -> dict[str, Any]:
    """``OUT/parts/part-<i>-of-<n>.json``: the runs of one part of a sharded grid (``collect`` merges them)."""
    from ..atomic import json_safe

    (out / "parts").mkdir(parents=True, exist_ok=True)
    path = out / "parts" / f"part-{shard[0]}-of-{shard[1]}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(json_safe(part), indent=1))
    tmp.replace(path)
    return part


def write_report(results: list[dict[str, Any]], out: str | Path, *, command: str, meta: dict[str, Any], suite: str,
                 datasets: list[str], eval_samples: int, grid: dict[str, list[Any]] | None,
                 runs_in_grid: int | None = None, missing: list[str] | None = None,
                 recalled: str | None = None, reference: dict[str, Any] | None = None,
                 recalled_rows: dict[str, list[tuple[str, dict[str, float]]]] | None = None,
                 rendered: dict[str, Any] | None = None) -> dict[str, Any]:
    """results.md and results.json of a finished grid (or of the parts of one, see :func:`collect`).

    ``reference``: the real-data rows kept from an earlier report of the same runs (else computed now: with a
    retrained domain classifier they would be in another feature space than the runs'). Runs scored by different
    domain classifiers (``clf_sha256``) are listed under the table: their feature metrics are not comparable.
    ``recalled_rows``: rows recalled from papers as an earlier report kept them (instead of the ``recalled`` file);
    ``rendered``: set by :func:`render` (the table written again from recorded runs), said under the command."""
    from ..metrics import noise_floor, real_reference
    from ..atomic import json_safe

    out = Path(out)
    rows = aggregate(results)
    reference = reference if reference is not None else {d: real_reference(d, eval_samples) for d in datasets}
    # the noise floor of each 2D data set (cheap and deterministic: computed again, not kept from an earlier report)
    floors = {d: f["noise_floor"] for d in datasets if (f := noise_floor(d, eval_samples))} if suite == "toy" else {}
    if recalled_rows is None:
        recalled_rows = load_recalled(recalled)
    report = {"command": command, "meta": meta, "suite": suite, "datasets": datasets, "eval_samples": eval_samples,
              "rows": rows, "reference_real_data": reference,
              **({"reference_noise": floors} if floors else {}), "recalled": recalled_rows, "runs": results,
              **({"rendered": rendered} if rendered else {})}
    md = markdown(rows, reference, command, meta, suite, recalled_rows, floors, rendered, eval_samples)
    if grid is not None:
        report["grid"] = grid
        report["setting_rows"] = aggregate(results, by_setting=True)
        md += markdown_settings(report["setting_rows"])
    if missing:
        report["missing"] = missing
        md += "\nMissing parts of the grid (not in the table): " + ", ".join(missing) + ".\n"
    scorers = classifiers_used(results)
    if len(scorers) > 1:
        report["classifiers"] = scorers
        md += ("\n**Runs scored by different domain classifiers** (their clf_* features, precision/recall and mode "
               "labels come from different networks; compare within one): " + "; ".join(
                   f"{sha}: {', '.join(runs)}" for sha, runs in scorers.items()) + ".\n")
    from ..atomic import atomic_write_bytes

    text = json.dumps(json_safe(report), indent=1).encode()
    atomic_write_bytes(out / "results.json", lambda fh: fh.write(text))
    atomic_write_bytes(out / "results.md", lambda fh: fh.write(md.encode()))
    if (out / "runs").is_dir():
        from .. import report as html_report

        html_report.write([out], out / "report.html", title=f"Benchmark {out.name}")
    return report
