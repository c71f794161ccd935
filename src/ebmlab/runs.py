"""Run directories: resolved config, atomic checkpoints, the metrics log, exact resume.

Layout of RUN_DIR::

    config.json      the resolved configuration (method, data, run options, method options, presets applied; for a
                     user's file or folder also data_sha256, its content's hash, checked when the run is resumed,
                     evaluated or sampled)
    run.json         one record per session: command line, versions, git commit, device, threads, times, speed
    metrics.jsonl    one JSON object per logged step ({"step", "kind": "train"|"eval", ...})
    tb/              TensorBoard event files
    checkpoint.pt    latest checkpoint, replaced atomically (write to a temp file, fsync, rename)
    summary.json     final evaluation metrics with real-vs-real references (written last: it marks a finished run)
    evaluation.json  the latest ``ebmlab eval`` of the run (its metrics, references at its sample count, how it was
                     made); report, bench and a re-run train command show it in place of the summary's metrics
    plots/           PNG figures

A kill at any moment leaves either the previous or the new checkpoint, never a partial one, and resuming
restores model, optimizers, RNG states and step, so the resumed run ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

import torch

from .errors import EbmlabError

CHECKPOINT_FORMAT = "ebmlab-checkpoint-1"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_UMASK: int | None = None


def fault_point(phase: str) -> None:
    """Fault injection for the kill-and-resume tests: when the environment variable EBMLAB_KILL_AT names this
    phase, the process kills itself (SIGKILL, as a power cut or the OOM killer would) at this point."""
    if os.environ.get("EBMLAB_KILL_AT") == phase:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def _file_mode() -> int:
    """0o666 less the process umask: what ``open`` would give, so colleagues in the group can read run files."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0)
        os.umask(_UMASK)
    return 0o666 & ~_UMASK


def atomic_write_bytes(path: Path, write_fn) -> None:
    """Write via ``write_fn(fileobj)`` into a temp file beside ``path``, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            try:
                write_fn(fh)
            except RuntimeError as exc:
                # torch.save reports a failed write as a RuntimeError whose wording varies with the torch version
                # and the point of failure ("file write failed", "unexpected pos ..."): the cause is read from the
                # file system (its free space), not from the message; any other RuntimeError is raised as it was
                full = _write_error(path, exc)
                if full is None:
                    raise
                raise full from None
            fh.flush()
            os.fsync(fh.fileno())
        fault_point(f"write:{path.name}")
        os.chmod(tmp, _file_mode())  # mkstemp creates 0600
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _write_error(path: Path, exc: Exception) -> OSError | None:
    """The OSError a failed write was, read from its cause: ENOSPC when the file system is (nearly) full (under
    64 MiB free), else None (not a full disk: the original error stands)."""
    import errno

    try:
        st = os.statvfs(path.parent)
        full = st.f_bavail * st.f_frsize < 64 * 2**20
    except OSError:
        full = False
    return OSError(errno.ENOSPC, "No space left on device", str(path)) if full else None


def json_safe(obj: Any) -> Any:
    """Replace NaN/inf (not valid JSON) by None, recursively."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_json(path: Path, obj: Any) -> None:
    data = json.dumps(json_safe(obj), indent=2, sort_keys=False).encode()
    atomic_write_bytes(path, lambda fh: fh.write(data))


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise EbmlabError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EbmlabError(f"{path} is not valid JSON ({exc}); the run directory is damaged — restore the file, or "
                          f"start a new run with another --out") from None


def with_latest_evaluation(summary: Any, run_dir: str | Path) -> Any:
    """A run's summary with its latest ``ebmlab eval`` (evaluation.json) in place of the final evaluation's metrics,
    references and protocol, when that evaluation is of the summary's step (an ``eval=none`` or ``eval=quick`` run
    evaluated in full afterwards); the summary unchanged otherwise, or when evaluation.json is missing or unreadable
    (it is only ever a copy of what ``ebmlab eval`` printed, so losing it loses nothing the command cannot redo)."""
    path = Path(run_dir) / "evaluation.json"
    if not isinstance(summary, dict) or not path.is_file():
        return summary
    try:
        ev = json.loads(path.read_text())
    except (OSError, ValueError):
        return summary
    if not isinstance(ev, dict) or ev.get("step") != summary.get("step") or not isinstance(ev.get("metrics"), dict):
        return summary
    kept = {k: v for k, v in summary.items() if k in ("method", "data", "step", "seed", "budget")}
    return {**kept, **{k: v for k, v in ev.items() if k not in kept}}


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    config_path = property(lambda self: self.path / "config.json")
    checkpoint_path = property(lambda self: self.path / "checkpoint.pt")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    summary_path = property(lambda self: self.path / "summary.json")
    evaluation_path = property(lambda self: self.path / "evaluation.json")
    plots = property(lambda self: self.path / "plots")
    tb = property(lambda self: self.path / "tb")

    record_path = property(lambda self: self.path / "run.json")

    def exists(self) -> bool:
        return self.config_path.is_file()

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run directory for this process while it trains and finishes the run: a second process given the
        same ``--out`` meanwhile is refused (it would interleave checkpoints, records and the final evaluation's
        draw, and remove the first one's temporary files). An advisory lock on ``RUN/.lock`` (``fcntl.flock``):
        the system releases it when the process ends, a kill included, so no stale lock outlives a run. Where
        ``fcntl`` is missing (Windows) nothing is locked."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on POSIX
            yield
            return
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise EbmlabError(f"another process is training or finishing the run in {self.path}; wait for it to "
                                  f"end (or stop it), then run the command again: it resumes where that one "
                                  f"stopped") from None
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def check_new(self) -> None:
        """Refuse to start a run in an existing directory that holds no run (no config.json) but other files: the
        run would write its files among them. Its own lock or a temporary file of a refused or killed start (see
        :meth:`lock`, :meth:`clean_temporary`) does not count."""
        if not self.path.is_dir():
            return
        stray = sorted(p.name for p in self.path.iterdir()
                       if p.name != ".lock" and not (p.name.startswith(".") and p.name.endswith(".tmp")))
        if stray:
            shown = ", ".join(stray[:4]) + (f" and {len(stray) - 4} more" if len(stray) > 4 else "")
            raise EbmlabError(f"--out {self.path} is a directory that holds no ebmlab run (no config.json) but other "
                              f"files ({shown}); a new run would write its files among them — name a new or empty "
                              f"directory (or, if it is a run whose config.json was lost, restore that file)")

    def clean_temporary(self) -> None:
        """Remove the temporary files of writes that a kill interrupted (``.NAME.*.tmp``, see atomic_write_bytes)."""
        for d in (self.path, self.plots):
            if d.is_dir():
                for tmp in d.glob(".*.tmp"):
                    tmp.unlink(missing_ok=True)

    # --- run record ---------------------------------------------------------------------------------------
    def start_record(self, step: int, placement: dict[str, Any] | None = None) -> dict[str, Any]:
        """Append this session to run.json (command line, versions, where it runs — ``placement``, by default this
        process's thread count on the CPU —, start time); :class:`Session` calls it."""
        import platform
        import shlex
        import sys
        import time

        from . import __version__

        sessions = self._sessions()
        where = placement if placement is not None else {"device": "cpu", "threads": torch.get_num_threads()}
        rec = {"command": shlex.join(sys.argv) if sys.argv and sys.argv[0] else "(python api)",
               "cwd": os.getcwd(), "ebmlab_version": __version__, "git_commit": git_commit(),
               "torch_version": torch.__version__, "python": platform.python_version(), "host": platform.node(),
               **where, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "start_step": step, "status": "running"}
        sessions.append(rec)
        write_json(self.record_path, {"format": "ebmlab-run-record-1", "sessions": sessions})
        return rec

    def end_record(self, rec: dict[str, Any], step: int, steps_per_s: float, status: str = "ended",
                   train_seconds: float | None = None, cpu_seconds: float | None = None) -> None:
        """Close this session's record: ``ended``, ``evaluating`` (training over, the final evaluation under way),
        or ``interrupted`` (Ctrl-C) / ``failed`` (an error); ``train_seconds``: this session's training-loop wall
        time (a resumed run sums them, ``ebmlab.budget``); ``cpu_seconds``: the process's CPU time in that loop
        (``train_cpu_seconds``). Keys added to ``rec`` since the start (``graphs``: how the steps ran,
        ``ebmlab.graphs``) are written too."""
        import time

        sessions = self._sessions()
        if sessions and sessions[-1].get("started") == rec["started"]:
            sessions[-1].update(ended=time.strftime("%Y-%m-%dT%H:%M:%S%z"), end_step=step,
                                steps_per_s=round(steps_per_s, 4), status=status,
                                **({"train_seconds": round(train_seconds, 3)} if train_seconds is not None else {}),
                                **({"train_cpu_seconds": round(cpu_seconds, 3)} if cpu_seconds is not None else {}),
                                **{k: rec[k] for k in ("graphs", "compile") if k in rec})
            write_json(self.record_path, {"format": "ebmlab-run-record-1", "sessions": sessions})

    def trained_seconds(self, from_rates: bool = False) -> float:
        """Training-loop wall seconds of the sessions, summed: their ``train_seconds``; ``from_rates``: sessions that
        did not record them (written before they were) counted from their steps and rate instead of as none."""
        total = 0.0
        for s in self.sessions():
            if s.get("train_seconds") is not None:
                total += float(s["train_seconds"])
            elif from_rates and "ended" in s and "start_step" in s and s.get("steps_per_s"):
                total += (s["end_step"] - s["start_step"]) / s["steps_per_s"]
        return total

    def trained_cpu_seconds(self) -> float | None:
        """Training-loop CPU seconds of the earlier sessions, summed; None when one that trained did not record
        them."""
        trained = [s for s in self.sessions()
                   if s.get("end_step") is not None and s.get("end_step") != s.get("start_step")]
        if any("train_cpu_seconds" not in s for s in trained):
            return None
        return sum(float(s["train_cpu_seconds"]) for s in trained)

    def check_resume(self, saved: dict[str, Any], now: dict[str, Any], placement: tuple[str, ...] = ()) -> None:
        """Refuse to resume a run with options other than the ones it was created with (``saved``, from its
        config.json, against ``now``; nested tables compared key by key), except ``placement``: the options of
        where and how long a run runs, which a resumed run may change (dotted keys: ``run.steps``)."""
        diffs = [f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in _differences(saved, now).items()
                 if k not in placement]
        if diffs:
            raise EbmlabError(f"{self.path} was created with different options ({'; '.join(diffs)}); resume with the "
                              f"same options or choose another --out")

    def sessions(self) -> list[dict[str, Any]]:
        """The session records of run.json (empty when absent or damaged)."""
        return self._sessions()

    def _sessions(self) -> list[dict[str, Any]]:
        try:
            rec = json.loads(self.record_path.read_text())
            return list(rec["sessions"])
        except (OSError, ValueError, KeyError, TypeError):
            return []  # absent, or damaged: the record is informative only, a fresh one is started

    def require(self) -> dict[str, Any]:
        if not self.path.is_dir():
            raise EbmlabError(f"run directory {self.path} does not exist; create one with `ebmlab train METHOD --out {self.path}`")
        if not self.exists():
            raise EbmlabError(f"{self.path} is not an ebmlab run directory (no config.json)")
        return read_json(self.config_path)

    # --- checkpoints -----------------------------------------------------------------------------------
    best_path = property(lambda self: self.path / "best.pt")
    best_record_path = property(lambda self: self.path / "best.json")

    def save_checkpoint(self, state: dict[str, Any], path: Path | None = None) -> None:
        atomic_write_bytes(path or self.checkpoint_path, lambda fh: torch.save(state, fh))

    def load_checkpoint(self, method_name: str | None = None, path: Path | None = None) -> dict[str, Any] | None:
        p = path or self.checkpoint_path
        if not p.is_file():
            return None
        if p.stat().st_size == 0:
            raise EbmlabError(f"checkpoint {p} is empty (0 bytes); restore it from a backup or delete it to restart "
                              f"the run from step 0")
        try:
            state = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated zip, bad pickle opcodes, ...
            raise EbmlabError(
                f"checkpoint {p} is truncated or corrupt ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:120]}); "
                f"it cannot be loaded — restore it from a backup or delete it to restart the run from step 0"
            ) from None
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise EbmlabError(f"{p} is not an ebmlab checkpoint (expected format {CHECKPOINT_FORMAT!r})")
        if method_name is not None and state.get("method") != method_name:
            raise EbmlabError(
                f"checkpoint {p} was written by method {state.get('method')!r}, not {method_name!r}; "
                f"use a different --out for a new run"
            )
        return state

    # --- metrics log -------------------------------------------------------------------------------------
    def truncate_metrics(self, last_step: int) -> None:
        """Drop log lines after ``last_step`` (they belong to steps that will be re-run after a resume)."""
        p = self.metrics_path
        if not p.is_file():
            return
        keep = []
        for line in p.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= last_step:
                    keep.append(line)
            except json.JSONDecodeError:
                break  # a line cut by a kill: everything after it is dropped too
        data = ("\n".join(keep) + "\n" if keep else "").encode()
        atomic_write_bytes(p, lambda fh: fh.write(data))

    def read_metrics(self) -> list[dict[str, Any]]:
        p = self.metrics_path
        if not p.is_file():
            return []
        out = []
        for line in p.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break
        return out


@contextlib.contextmanager
def sole_writer(directory: Path, name: str, outputs: str | None = None) -> Iterator[None]:
    """Hold the writing of the output ``name`` in ``directory`` (a sample file or folder, a data set's classifier)
    for this process, and on entry remove the temporaries a killed writer of it left behind. Its outputs are the
    files or folders whose names match the regular expression ``outputs`` (default: ``name`` itself); their
    temporaries are ``.OUTPUT.<8 random characters>.tmp`` (``atomic_write_bytes`` files, ``tempfile.mkdtemp``
    folders). An advisory lock on ``directory`` itself (released by the system when the process ends, a kill
    included; no lock file is left beside the outputs) makes a second writer into that directory wait for the
    moment it writes, so no temporary of a live writer is removed. Without ``fcntl`` (Windows) nothing is locked or
    removed."""
    import re
    import shutil

    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield
        return
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        stale = re.compile(rf"^\.(?:{outputs or re.escape(name)})\.[a-z0-9_]{{8}}\.tmp$")
        for p in directory.iterdir():
            if stale.match(p.name):
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
        yield
    finally:
        os.close(fd)


def _differences(saved: dict[str, Any], now: dict[str, Any], prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """{dotted key: (saved, now)} of the keys of ``now`` whose values differ from ``saved``'s."""
    out: dict[str, tuple[Any, Any]] = {}
    for k, v in now.items():
        old = saved.get(k) if isinstance(saved, dict) else None
        if isinstance(v, dict) and isinstance(old, dict):
            out.update(_differences(old, v, f"{prefix}{k}."))
        elif old != v:
            out[f"{prefix}{k}"] = (old, v)
    return out


class Session:
    """This session's record in a run's run.json, from its start to its end, and the clocks of its training loop
    (wall and CPU seconds). Training and super-resolution runs keep their records through it; a process that
    writes nothing (a rank other than 0) holds one without a run, which records nothing.

    ``start`` appends the record; ``clock``/``stop_clock`` time the training loop; ``evaluating`` marks the
    training loop over and the final evaluation under way (a kill during it keeps the loop's seconds); ``end`` and
    ``fail`` close it. ``extra`` holds keys added to the record as the session goes (``graphs``)."""

    def __init__(self, run: RunDir | None, record: dict[str, Any] | None, start_step: int) -> None:
        self.run, self.record, self.start_step = run, record, start_step
        self._t0: float | None = None
        self._c0 = 0.0
        self._frozen: tuple[float, float] | None = None
        self._aside = (0.0, 0.0)  # (wall, CPU) seconds inside the loop that were not training (set_aside)

    @classmethod
    def start(cls, run: RunDir | None, step: int, placement: dict[str, Any] | None = None) -> Session:
        return cls(run, run.start_record(step, placement) if run is not None else None, step)

    def clock(self) -> None:
        """Start the training loop's clocks."""
        import time

        self._t0, self._c0, self._frozen = time.perf_counter(), time.process_time(), None
        self._aside = (0.0, 0.0)

    @contextlib.contextmanager
    def set_aside(self) -> Iterator[None]:
        """Time inside the training loop that is not training (the evaluations of ``eval_every``): left out of
        :meth:`times`, so that budgets in seconds, rates and the recorded seconds count training only, whatever
        evaluates between the steps."""
        import time

        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            w, c = self._aside
            self._aside = (w + time.perf_counter() - t0, c + time.process_time() - c0)

    def stop_clock(self) -> None:
        """Stop them: the final evaluation is not training."""
        self._frozen = self.times()

    def times(self) -> tuple[float, float]:
        """(wall, CPU) seconds of this session's training loop so far."""
        import time

        if self._frozen is not None:
            return self._frozen
        if self._t0 is None:
            return 0.0, 0.0
        return (time.perf_counter() - self._t0 - self._aside[0], time.process_time() - self._c0 - self._aside[1])

    def rate(self, step: int) -> float:
        """Steps per second of this session's training loop up to ``step``."""
        wall = self.times()[0]
        return (step - self.start_step) / wall if wall > 0 else 0.0

    def note(self, **values: Any) -> None:
        """Keys written into this session's record when it is closed."""
        if self.record is not None:
            self.record.update(values)

    def _close(self, step: int, status: str, timed: bool = True) -> None:
        if self.run is None or self.record is None:
            return
        wall, cpu = self.times()
        self.run.end_record(self.record, step, self.rate(step) if timed else 0.0, status=status,
                            **({"train_seconds": wall, "cpu_seconds": cpu} if timed else {}))

    def evaluating(self, step: int) -> None:
        self._close(step, "evaluating")

    def end(self, step: int, timed: bool = True) -> None:
        """Close the record as ended; ``timed=False``: nothing was trained in this session (no rate, no seconds)."""
        self._close(step, "ended", timed)

    def fail(self, step: int, exc: BaseException) -> None:
        """Close the record as ``interrupted`` (Ctrl-C, a signal) or ``failed``, keeping the original error: a
        record that cannot be written (a full disk) is informative only."""
        try:
            self._close(step, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
        except OSError:
            pass


class StopAtStepEnd:
    """SIGINT/SIGTERM while training: the step under way finishes, a checkpoint is saved at it, then the run stops
    as interrupted (KeyboardInterrupt), so that running the same command again loses no step. A second signal stops
    at once (the last checkpoint is kept). Installed only in a process's main thread and for one-process runs: the
    ranks of a distributed run would each stop at a different step unless they agreed, which costs a collective per
    step; there, a signal ends the run at the last checkpoint as before."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, active: bool) -> None:
        self.active = active and threading.current_thread() is threading.main_thread()
        self.requested: str | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested is not None:  # the second signal: at once
            self.restore()
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name
        print(f"\nebmlab: {self.requested}: stopping after this step with a checkpoint (again to stop at once)",
              file=sys.stderr, flush=True)

    def install(self) -> None:
        if self.active:
            for sig in self.SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        """The handlers as they were (idempotent)."""
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


def git_commit() -> str | None:
    """The git commit of the ebmlab source when it runs from a checkout (``-dirty`` when modified), else None."""
    import subprocess

    src = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(src), "describe", "--always", "--dirty", "--abbrev=40"],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


class MetricsLogger:
    """Appends JSON lines and mirrors scalars to TensorBoard and to the run's other trackers (``ebmlab.trackers``:
    objects with ``log``, ``image`` and ``close``)."""

    def __init__(self, run: RunDir, start_step: int, tensorboard: bool = True, trackers: list[Any] | None = None):
        self.trackers = list(trackers or [])
        self.fh = open(run.metrics_path, "a", buffering=1)
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run.tb), purge_step=start_step + 1 if start_step > 0 else None)

    def log(self, step: int, kind: str, values: dict[str, Any]) -> None:
        rec = {"step": step, "kind": kind, **values}
        self.fh.write(json.dumps(json_safe(rec)) + "\n")
        if self.tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    self.tb.add_scalar(f"{kind}/{k}", v, step)
        for t in self.trackers:
            t.log(step, kind, values)

    def image(self, step: int, tag: str, grid) -> None:
        """A [H, W, 3] image in [0, 1] (e.g. ``plots.image_grid``) into TensorBoard."""
        if self.tb is not None:
            self.tb.add_image(tag, grid, step, dataformats="HWC")
        for t in self.trackers:
            t.image(step, tag, grid)

    def close(self) -> None:
        self.fh.close()
        if self.tb is not None:
            self.tb.close()
        for t in self.trackers:
            t.close()


def require_utf8(path: str | Path, flag: str = "--out") -> None:
    """Refuse a path whose bytes are not UTF-8: it could not be printed, logged or recorded in run.json."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        shown = str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise EbmlabError(f"{flag} {shown}: the path is not valid UTF-8 (its bytes cannot be shown, logged or "
                          f"recorded); choose a name in UTF-8") from None


def check_output_dir(out: Path) -> None:
    """Refuse an output directory that cannot be created or written, before any work is done."""
    require_utf8(out)
    for part in out.parts:
        if len(part.encode()) > 255:
            raise EbmlabError(f"--out {out}: the name {part[:40]}... is {len(part.encode())} bytes, longer than the "
                              f"file system allows (255); choose a shorter name")
    if out.exists() and not out.is_dir():
        raise EbmlabError(f"--out {out} is an existing file, not a directory; choose another --out")
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise EbmlabError(f"--out {out} goes through {probe}, which is a file; choose another --out")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise EbmlabError(f"--out {out}: {probe} is not writable (read-only file system or no permission); "
                          f"choose a directory you can write to")
