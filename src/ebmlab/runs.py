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
import os
import sys
from pathlib import Path
from typing import Any, Iterator

import torch

from .atomic import atomic_write_bytes, read_json, write_json
from .errors import EbmlabError

CHECKPOINT_FORMAT = "ebmlab-checkpoint-1"


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
        draw, and remove the first one's temporary files). An advisory lock on ``RUN/.lock`` (``atomic.advisory_lock``):
        the system releases it when the process ends, a kill included, so no stale lock outlives a run. Where
        ``fcntl`` is missing (Windows) nothing is locked."""
        from .atomic import advisory_lock

        self.path.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(advisory_lock(self.path / ".lock", wait=False))
            except BlockingIOError:
                raise EbmlabError(f"another process is training or finishing the run in {self.path}; wait for it to "
                                  f"end (or stop it), then run the command again: it resumes where that one "
                                  f"stopped") from None
            yield

    def held(self) -> bool:
        """Whether a process holds the run now (:meth:`lock`). Read from the kernel's table of locks
        (``/proc/locks``) where there is one, so that asking never takes the lock — a run starting at that moment
        is not refused; elsewhere the lock is tried without waiting and released at once."""
        lock = self.path / ".lock"
        try:
            st = lock.stat()
        except OSError:
            return False
        try:
            table = Path("/proc/locks").read_text()
        except OSError:
            return _try_lock(lock)
        me = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        return any(len(f := line.split()) > 5 and f[1] == "FLOCK" and f[5] == me for line in table.splitlines())
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
        import time

        from . import __version__

        sessions = self._sessions()
        where = placement if placement is not None else {"device": "cpu", "threads": torch.get_num_threads()}
        if where.get("device") == "cpu":
            from .machine import cpu_info

            where = {**where, "cpu": cpu_info()}
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
                                **{k: rec[k] for k in ("graphs", "compile", "speed_probe") if k in rec})
            write_json(self.record_path, {"format": "ebmlab-run-record-1", "sessions": sessions})

    def trained_seconds(self, from_rates: bool = False, resumed_at: int | None = None) -> float:
        """Training-loop wall seconds of the sessions whose training the run kept, summed: their ``train_seconds``,
        or for a session killed before it could record them (a SIGKILL, a power cut) its seconds up to its last
        checkpoint (``checkpointed``: the run resumes from there, so what it trained after it is not counted); a
        session whose successor started where it had started (it left no checkpoint: its steps were trained again)
        counts none, one whose successor resumed from its last checkpoint before its end counts up to that
        checkpoint. ``resumed_at``: the step a session about to start resumes from (the last session's successor);
        ``from_rates``: sessions written before either was recorded counted from their steps and rate instead of as
        none."""
        total = 0.0
        for s, after in _with_successors(self.sessions(), resumed_at):
            done = _kept_seconds(s, "train_seconds", after)
            if done is not None:
                total += done
            elif from_rates and "ended" in s and "start_step" in s and s.get("steps_per_s"):
                total += (s["end_step"] - s["start_step"]) / s["steps_per_s"]
        return total

    def trained_cpu_seconds(self, resumed_at: int | None = None) -> float | None:
        """Training-loop CPU seconds of the sessions, summed as :meth:`trained_seconds` sums wall seconds; None when
        one that trained and was kept recorded neither (a session of an older version, or one killed after a
        checkpoint before sessions noted theirs: the next session resumed past its start)."""
        total, sessions = 0.0, self.sessions()
        for i, (s, after) in enumerate(_with_successors(sessions, resumed_at)):
            cpu = _kept_seconds(s, "train_cpu_seconds", after)
            if cpu is not None:
                total += cpu
            elif s.get("end_step") is not None and s.get("end_step") != s.get("start_step"):
                return None  # it trained without recording its CPU time
            elif s.get("end_step") is None and i + 1 < len(sessions) and _resumed_past(s, sessions[i + 1]):
                return None  # killed after a checkpoint that a later session resumed from, its seconds unknown
        return total

    def speed(self) -> float | None:
        """The machine's speed over this run's training (``ebmlab.machine.run_speed``: CPU seconds of the probe's
        workload, lower is faster), or None where it was not probed."""
        from .machine import run_speed

        return run_speed(self.sessions())

    def note_checkpoint(self, rec: dict[str, Any], step: int, train_seconds: float, cpu_seconds: float) -> None:
        """Into this session's record, the checkpoint just written at ``step`` and this session's training-loop
        seconds up to it (``checkpointed``): what a killed session counts for (:meth:`trained_seconds`). Written
        after the checkpoint, so a kill between the two counts one checkpoint interval too few, never too many."""
        sessions = self._sessions()
        if sessions and sessions[-1].get("started") == rec["started"]:
            sessions[-1]["checkpointed"] = {"step": step, "train_seconds": round(train_seconds, 3),
                                            "train_cpu_seconds": round(cpu_seconds, 3)}
            write_json(self.record_path, {"format": "ebmlab-run-record-1", "sessions": sessions})

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
    kept_dir = property(lambda self: self.path / "checkpoints")

    def kept_checkpoint_path(self, step: int) -> Path:
        """The checkpoint kept at evaluation step ``step`` (run option ``keep_checkpoints``)."""
        return self.kept_dir / f"step-{step}.pt"

    def kept_checkpoint_steps(self) -> list[int]:
        """The steps of the checkpoints kept at evaluations (run option ``keep_checkpoints``), ascending."""
        if not self.kept_dir.is_dir():
            return []
        steps = (p.name[len("step-"):-len(".pt")] for p in self.kept_dir.glob("step-*.pt"))
        return sorted(int(s) for s in steps if s.isdigit())

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


def _try_lock(lock: Path) -> bool:
    """Whether :meth:`RunDir.lock`'s file is held by another process, by trying it without waiting (a missing or
    unreadable file: not held; the file is never created here)."""
    from .atomic import advisory_lock

    if not lock.is_file():
        return False
    try:
        with advisory_lock(lock, wait=False):
            return False
    except BlockingIOError:
        return True
    except OSError:
        return False


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


def _session_seconds(s: dict[str, Any], key: str) -> float | None:
    """A session record's training seconds of kind ``key`` (``train_seconds``, ``train_cpu_seconds``): what it
    recorded when it closed; for one that never closed (killed), its seconds up to its last checkpoint
    (``checkpointed``); None when it recorded neither."""
    v = s.get(key)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    held = s.get("checkpointed")
    if s.get("end_step") is None and isinstance(held, dict):
        v = held.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return None


def _with_successors(sessions: list[dict[str, Any]], resumed_at: int | None) -> list[tuple[dict[str, Any], Any]]:
    """Each session with the step its successor started from (``resumed_at`` for the last; None if unknown)."""
    nexts = [t.get("start_step") for t in sessions[1:]] + [resumed_at]
    return list(zip(sessions, nexts, strict=True))


def _kept_seconds(s: dict[str, Any], key: str, after: Any) -> float | None:
    """What :func:`_session_seconds` gives, of the training the run kept: none when the next session started where
    this one had started or before (this one's steps were trained again, as after a failure before its first
    checkpoint), its seconds up to its last checkpoint when the next session resumed from that checkpoint and this
    one had trained past it."""
    start, end = s.get("start_step"), s.get("end_step")
    if isinstance(after, int) and not isinstance(after, bool) and isinstance(start, int):
        if after <= start:
            return 0.0
        held = s.get("checkpointed")
        if isinstance(end, int) and after < end and isinstance(held, dict) and held.get("step") == after:
            v = held.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return float(v)
    return _session_seconds(s, key)


def _resumed_past(killed: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether the session ``after`` started past where the session ``killed`` had started (it resumed from a
    checkpoint that ``killed`` wrote)."""
    a, b = killed.get("start_step"), after.get("start_step")
    return isinstance(a, int) and isinstance(b, int) and b > a
