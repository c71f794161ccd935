"""How fast this machine computes now: a fixed one-thread workload timed in CPU seconds (:func:`probe`).

A budget in CPU seconds (``max_cpu_seconds``) is equal compute only on equally fast CPUs. It is not so between two
sessions of the same 2-core machine: one GAN configuration took 0.199 CPU-s a step in one session and 0.099 in
another, the same code on the same data (``benchmarks/claims/medium.md``). Two arms trained in different sessions
therefore got different amounts of computation for the same number of CPU seconds, and nothing in their records
said so. Run option ``speed_probe`` (the claims runs set it on the CPU) times this workload when a training
session's loop starts and again every :data:`PROBE_EVERY` CPU seconds of training, and writes the timings into the
session's record in run.json (``speed_probe``: ``{"workload": WORKLOAD, "cpu_s": [...]}``); :func:`run_speed`
reads a run's as the median of its timings (one timing beside busy neighbours varied from 0.15 to 0.34 CPU-s on
this 2-core machine with two training runs beside it; a 30-minute run takes about thirty), and the claims verdicts
leave out of an equal-compute reading the seeds whose two arms ran at speeds further apart than
``ebmlab.claims.verdict.SPEED_TOLERANCE``.

Checked against the arms (``benchmarks/machine/results.md``): with the CPU's kernels capped from AVX2 to SSE4.1 the
probe slowed 2.0-2.3x and the image arms' training steps (KALE, GAN, SNGAN, BiB) 2.6-3.0x: it moves with them, by
somewhat less, which the verdict's tolerance allows for.

The workload stands for what the image arms compute: a small convolutional network's forward and backward passes
on a batch of 64 single-channel 32×32 inputs, float32, one thread, its tensors drawn from a private generator (no
global random state is read or changed: a run's numbers are the same with and without the probe — tested). It is
timed :data:`REPEATS` times and the least CPU time kept (the CPU time a repeat takes only grows with interference;
the least is the machine's speed at that moment). A probe takes about a second of wall time with its warm-up; it is
not training and counts in no budget.

Each session's record also says what the CPU is (:func:`cpu_info`: torch's vector capability, the model). On this
2-core machine a session whose CPU offered AVX2 alone (AMD family 25 model 1) made BiB's GAN steps 3.5× as costly in
CPU seconds as an earlier session's (whose CPU was not recorded), and the same SNGAN seed evaluated at step 2000 to
FD 2195 there against 2225 in that earlier session: different kernels, different last bits, diverging runs.

``WORKLOAD`` names the workload; a changed workload gets a new name, and probes of different names are never
compared.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

WORKLOAD = "ebmlab-probe-1"
REPEATS = 3
ITERATIONS = 8  # forward-and-backward passes per repeat
PROBE_EVERY = 60.0  # CPU seconds of training between two probes of a run with ``speed_probe``


def _workload(tensors: dict[str, Any]) -> None:
    import torch.nn.functional as F

    x = tensors["x"]
    for _ in range(ITERATIONS):
        w1, w2, w3 = (tensors[k].detach().requires_grad_() for k in ("w1", "w2", "w3"))
        h = F.leaky_relu(F.conv2d(x, w1, stride=2, padding=1), 0.2)  # 64×32×16×16
        h = F.leaky_relu(F.conv2d(h, w2, stride=2, padding=1), 0.2)  # 64×64×8×8
        out = h.flatten(1) @ w3  # 64×1
        out.square().mean().backward()


def probe(repeats: int = REPEATS) -> float:
    """CPU seconds of the fixed workload on one thread, the least of ``repeats`` timings (module docstring)."""
    import torch

    g = torch.Generator().manual_seed(0)
    tensors = {"x": torch.randn(64, 1, 32, 32, generator=g), "w1": torch.randn(32, 1, 4, 4, generator=g) * 0.1,
               "w2": torch.randn(64, 32, 4, 4, generator=g) * 0.05, "w3": torch.randn(64 * 8 * 8, 1, generator=g) * 0.01}
    threads = torch.get_num_threads()
    best = float("inf")
    try:
        torch.set_num_threads(1)
        with torch.enable_grad():
            _workload(tensors)  # warm-up: allocations and kernel selection, untimed
            for _ in range(max(1, repeats)):
                c0 = time.process_time()
                _workload(tensors)
                best = min(best, time.process_time() - c0)
    finally:
        torch.set_num_threads(threads)
    return round(best, 4)


def speed_value(v: Any) -> float | None:
    """A recorded speed (CPU seconds of the workload) as a float, or None when it is not a positive number (absent,
    hand-edited)."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else None


def session_probes(session: dict[str, Any]) -> list[float]:
    """The probes of one session record (run.json) of this :data:`WORKLOAD`, in the order taken; [] without."""
    p = session.get("speed_probe")
    if not isinstance(p, dict) or p.get("workload") != WORKLOAD or not isinstance(p.get("cpu_s"), list):
        return []
    return [x for v in p["cpu_s"] if (x := speed_value(v)) is not None]


def run_speed(sessions: list[dict[str, Any]]) -> float | None:
    """A run's machine speed: the median of the probes of its sessions that trained (CPU seconds of the workload;
    lower is faster), or None when a session that trained recorded none (a run made before the probe, or
    without ``speed_probe``)."""
    probes: list[float] = []
    for s in sessions:
        trained = s.get("end_step") is not None and s.get("end_step") != s.get("start_step")
        got = session_probes(s)
        if trained and not got:
            return None
        probes += got
    return round(statistics.median(probes), 4) if probes else None


def cpu_info() -> dict[str, str]:
    """What this CPU is, for a run's record: torch's vector capability (``AVX2``, ``AVX512``: which kernels run —
    a machine of the same name may come with either, and they differ in speed and in the last bits of a result) and,
    where ``/proc/cpuinfo`` says, the model name, family and model number."""
    import torch

    out = {"capability": str(torch.backends.cpu.get_cpu_capability())}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            lines = f.read(20_000).split("\n\n")[0].splitlines()
    except OSError:
        return out
    for line in lines:
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "cpu family", "model"):
            out[key.replace(" ", "_")] = value.strip()
    return out


def training_spans(sessions: list[dict[str, Any]]) -> list[list[Any]]:
    """[host, start, end] (POSIX seconds) of each session of a run that trained and recorded its end: when and where
    it computed. Two runs whose spans overlap on one host trained side by side on one machine at one time — equal
    compute for equal CPU seconds even without probes (runs made before them)."""
    from datetime import datetime

    out = []
    for s in sessions:
        if s.get("end_step") is None or s.get("end_step") == s.get("start_step"):
            continue
        try:
            t0, t1 = (datetime.strptime(s[k], "%Y-%m-%dT%H:%M:%S%z").timestamp() for k in ("started", "ended"))
        except (KeyError, TypeError, ValueError):
            continue
        out.append([str(s.get("host", "")), t0, t1])
    return out


def side_by_side(a: Any, b: Any) -> bool:
    """Whether two runs' :func:`training_spans` overlap on one host (malformed spans: no)."""
    try:
        return any(ha == hb and max(a0, b0) < min(a1, b1) for ha, a0, a1 in a for hb, b0, b1 in b)
    except (TypeError, ValueError):
        return False


__all__ = ["ITERATIONS", "cpu_info", "PROBE_EVERY", "REPEATS", "WORKLOAD", "probe", "run_speed", "session_probes", "side_by_side",
           "speed_value", "training_spans"]
