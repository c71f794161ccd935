"""Learning curves of a claim's arms, and verdicts read from them at equal steps and at equal compute.

A run with ``eval_every=N`` evaluates every N steps; each of those lines in its ``metrics.jsonl`` carries the step,
the training-loop seconds trained up to it (``train_seconds``, ``train_cpu_seconds``; evaluations are left out of
them) and the metrics. With the run's final evaluation (its summary, at the CPU seconds of ``run.json``), they make
one curve per run: ``[(step, cpu_s, value), ...]``, in step order. Evaluating changes no number of the run
(``tests/test_train.py::test_evaluation_points_leave_the_run_unchanged_and_record_what_was_trained``), so one run
gives both readings:

- **equal steps**: the largest step at which *every* seed of *every* arm has a point — a verdict never uses a point
  some arm did not reach (a slow arm's missing steps are not filled in);
- **equal compute**: the largest CPU time every run reached (the smallest of the runs' last points); each run is
  read at its last point at or before it — the model it had when that much CPU time was spent, to the resolution
  of its evaluation points (and of one step: runs stopped by the same budget end a fraction of a step apart).

Runs on a GPU are read on the wall clock instead (``clock="wall"``: ``train_seconds`` and the run's trained
seconds): their budget is wall time, and CPU time counts nothing of the device's work.

Each reading is a result in the form the verdict rules take (``a``/``b`` per-seed values, ``seeds``, the step and
CPU time it was read at); :func:`ebmlab.claims.verdict.judge` applies the same rules to it as to the final values.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

Point = tuple[int, float, float]  # (step, seconds trained on the curve's clock — CPU, or wall —, metric value)
CLOCKS = {"cpu": ("train_cpu_seconds", "cpu_s", "CPU-s"), "wall": ("train_seconds", "wall_s", "wall-s")}


def finite_number(v: Any) -> float | None:
    """A recorded metric value as a float, or None when it is missing, not a number or not finite."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def run_curve(run_dir: Path, metric: str, clock: str = "cpu") -> list[Point]:
    """One run's curve of ``metric``: its periodic evaluations (those that recorded their seconds on ``clock``), then
    its final evaluation at the run's trained seconds; points without a finite value are left out."""
    from ..atomic import read_json
    from ..runs import RunDir

    rd = RunDir(run_dir)
    points: dict[int, Point] = {}
    for rec in rd.read_metrics():
        if rec.get("kind") != "eval" or not isinstance(rec.get("step"), int):
            continue
        v, cpu = finite_number(rec.get(metric)), finite_number(rec.get(CLOCKS[clock][0]))
        if v is not None and cpu is not None:
            points[rec["step"]] = (rec["step"], cpu, v)
    if rd.summary_path.is_file():
        s = read_json(rd.summary_path)
        trained = rd.trained_cpu_seconds() if clock == "cpu" else rd.trained_seconds()
        v, cpu, step = finite_number((s.get("metrics") or {}).get(metric)), trained, s.get("step")
        if v is not None and cpu is not None and isinstance(step, int):
            points[step] = (step, float(cpu), v)
    return [points[k] for k in sorted(points)]


def shared_steps(curves: dict[str, list[list[Point]]]) -> list[int]:
    """The steps at which every run of every arm has a point, in order (none where an arm has no runs)."""
    sets = [{p[0] for p in c} for runs in curves.values() for c in runs]
    if not sets or not all(runs for runs in curves.values()):
        return []
    return sorted(set.intersection(*sets))


def common_step(curves: dict[str, list[list[Point]]]) -> int | None:
    """The largest step at which every run of every arm has a point, or None (no such step, or an arm without
    runs)."""
    shared = shared_steps(curves)
    return shared[-1] if shared else None


def common_cpu(curves: dict[str, list[list[Point]]]) -> float | None:
    """The CPU time every run reached: the smallest of the runs' last points' CPU seconds, or None."""
    ends = [c[-1][1] for runs in curves.values() for c in runs if c]
    if not ends or any(not c for runs in curves.values() for c in runs):
        return None
    return min(ends)


def _at_cpu(curve: list[Point], cpu: float) -> Point | None:
    """The run's last point reached by ``cpu`` seconds, to the resolution of one step: a point ``(step, s, v)``
    counts when ``s`` less one of the run's steps (its mean step time there, ``s / step``) is at or before ``cpu``.
    A budget stops a run after the step that crossed it, so runs given the same budget end a fraction of a step
    apart (1800.3 to 1800.8 CPU-s): each is read at its final point, not at an evaluation hundreds of steps
    earlier."""
    before = [p for p in curve if p[1] - (p[1] / p[0] if p[0] > 0 else 0.0) <= cpu + 1e-9]
    return before[-1] if before else None


def read_at(curves: dict[str, list[list[Point]]], *, step: int | None = None, cpu: float | None = None,
            clock: str = "cpu") -> dict[str, Any] | None:
    """The arms' per-seed values at ``step`` (each run's point there) or at ``cpu`` seconds on ``clock`` (each run's
    last point at or before it), as a result the verdict rules take, with the steps and seconds each value was read
    at; None when a run has no such point."""
    key = CLOCKS[clock][1]
    out: dict[str, Any] = {"steps": {}, key: {}}
    for arm, runs in curves.items():
        picked = []
        for c in runs:
            p = next((q for q in c if q[0] == step), None) if step is not None else \
                _at_cpu(c, cpu) if cpu is not None else None
            if p is None:
                return None
            picked.append(p)
        out[arm] = [p[2] for p in picked]
        out["steps"][arm] = [p[0] for p in picked]
        out[key][arm] = [round(p[1], 1) for p in picked]
    out["seeds"] = list(range(len(next(iter(curves.values()), []))))
    out["read_at"] = {"step": step} if step is not None else {key: round(cpu or 0.0, 1)}
    return out


def along(curves: dict[str, list[list[Point]]], clock: str = "cpu") -> dict[str, list[tuple[float, dict[str, Any]]]]:
    """Every reading along the curves, in order: ``steps``, at each step where every run of every arm has a point;
    ``compute``, at each point's seconds on ``clock`` up to :func:`common_cpu` where every run has a point at or
    before it. Each is ``(step or seconds, reading)``, the reading as :func:`read_at` gives it."""
    steps = [(float(st), r) for st in shared_steps(curves) if (r := read_at(curves, step=st, clock=clock))]
    end = common_cpu(curves)
    times = [] if end is None else sorted({p[1] for runs in curves.values() for c in runs for p in c if p[1] <= end})
    compute = [(t, r) for t in times if (r := read_at(curves, cpu=t, clock=clock))]
    return {"steps": steps, "compute": compute}


def readings(curves: dict[str, list[list[Point]]], clock: str = "cpu") -> dict[str, Any]:
    """Both readings of a claim's curves: ``equal_steps`` at :func:`common_step` and ``equal_compute`` at
    :func:`common_cpu` on ``clock`` (each None where the curves do not allow it)."""
    s, c = common_step(curves), common_cpu(curves)
    return {"equal_steps": read_at(curves, step=s, clock=clock) if s is not None else None,
            "equal_compute": read_at(curves, cpu=c, clock=clock) if c is not None else None}


def plot(curves: dict[str, list[list[Point]]], labels: dict[str, str], metric: str, path: Path,
         clock: str = "cpu") -> Path:
    """The arms' curves against steps and against seconds on ``clock`` (CPU, or wall), each arm's mean over seeds
    with the band of its seeds (min to max at the points every seed of the arm has), each run's own curve as a thin
    line (all its points: seeds that trained to different steps), and, as crosses, each run's last point where the
    seeds ended at different steps (a budget's end), written to ``path`` (PNG, atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..atomic import atomic_write_bytes

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for arm, runs in curves.items():
        steps = sorted(set.intersection(*[{p[0] for p in c} for c in runs])) if runs and all(runs) else []
        if not steps:
            continue
        rows = [[next(p for p in c if p[0] == s) for s in steps] for c in runs]
        vals = [[p[2] for p in r] for r in rows]
        mean = [sum(col) / len(col) for col in zip(*vals)]
        lo, hi = [min(col) for col in zip(*vals)], [max(col) for col in zip(*vals)]
        cpu = [sum(p[1] for p in col) / len(col) for col in zip(*rows)]
        seeds = f"{len(runs)} seed" + ("" if len(runs) == 1 else "s")
        for i, (ax, x) in enumerate(zip(axes, (steps, cpu))):
            line, = ax.plot(x, mean, marker="o", ms=3, label=f"{labels.get(arm, arm)} ({seeds})")
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2)
            for c in runs:  # each seed's whole curve, faint
                ax.plot([p[i] for p in c], [p[2] for p in c], lw=0.7, alpha=0.4, color=line.get_color())
            # each run's last point (its final evaluation), where the seeds stopped at different steps
            ends = [c[-1] for c in runs if c and c[-1][0] not in steps]
            ax.plot([p[i] for p in ends], [p[2] for p in ends], "x", ms=5, color=line.get_color())
    for ax, xl in zip(axes, ("training steps", f"{'CPU' if clock == 'cpu' else 'wall'} seconds trained (thick: the "
                                               f"mean over seeds)")):
        ax.set_xlabel(xl)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    # the legend under both panels: the arms' labels are long and would cover the curves inside either
    handles, names = axes[0].get_legend_handles_labels()
    if handles:
        width, height = fig.get_size_inches()
        extra = 0.18 * len(handles) + 0.08  # inches: one line a label
        fig.set_size_inches(width, height + extra)
        fig.legend(handles, names, loc="lower center", ncol=1, fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, extra / (height + extra), 1, 1))
    else:
        fig.tight_layout()
    atomic_write_bytes(path, lambda fh: fig.savefig(fh, format="png", dpi=110))
    plt.close(fig)
    return path
