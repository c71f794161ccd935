"""A training session's record and clocks (:class:`Session`: its entry in run.json from start to end, the wall and
CPU seconds of its training loop) and the stop at the end of a step on SIGINT/SIGTERM (:class:`StopAtStepEnd`)."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Any, Iterator

from .runs import RunDir


class Session:
    """This session's record in a run's run.json, from its start to its end, and the clocks of its training loop
    (wall and CPU seconds). Training and super-resolution runs keep their records through it; a process that
    writes nothing (a rank other than 0) holds one without a run, which records nothing.

    ``start`` appends the record; ``clock``/``stop_clock`` time the training loop; ``evaluating`` marks the
    training loop over and the final evaluation under way (a kill during it keeps the loop's seconds); ``end`` and
    ``fail`` close it. ``extra`` holds keys added to the record as the session goes (``graphs``).

    ``probe_every`` (CPU seconds of training; 0: never): the machine's speed (``ebmlab.machine.probe``) is timed
    when the loop starts and again each time that much training CPU time has passed (:meth:`maybe_probe`, called
    after each step), set aside from the clocks like an evaluation; the probes go into the record
    (``speed_probe``)."""

    def __init__(self, run: RunDir | None, record: dict[str, Any] | None, start_step: int,
                 probe_every: float = 0.0) -> None:
        self.run, self.record, self.start_step = run, record, start_step
        self._t0: float | None = None
        self._c0 = 0.0
        self._frozen: tuple[float, float] | None = None
        self._aside = (0.0, 0.0)  # (wall, CPU) seconds inside the loop that were not training (set_aside)
        self.probe_every = probe_every if record is not None else 0.0
        self._next_probe = 0.0  # the training CPU seconds at which the next probe is due

    @classmethod
    def start(cls, run: RunDir | None, step: int, placement: dict[str, Any] | None = None,
              probe_every: float = 0.0) -> Session:
        return cls(run, run.start_record(step, placement) if run is not None else None, step, probe_every)

    def maybe_probe(self) -> None:
        """Time the machine's speed when a probe is due (class docstring); the probe is not training."""
        if not self.probe_every or self.record is None or self.times()[1] < self._next_probe:
            return
        from . import machine

        with self.set_aside():
            value = machine.probe()
        entry = self.record.setdefault("speed_probe", {"workload": machine.WORKLOAD, "cpu_s": []})
        entry["cpu_s"].append(value)
        self._next_probe = self.times()[1] + self.probe_every

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

    def checkpointed(self, step: int) -> None:
        """Record that a checkpoint was written at ``step``, with this session's training seconds up to it
        (``RunDir.note_checkpoint``): a session killed later counts for them."""
        if self.run is not None and self.record is not None:
            self.run.note_checkpoint(self.record, step, *self.times())

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


__all__ = ["Session", "StopAtStepEnd"]
