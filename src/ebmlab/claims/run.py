"""``ebmlab claims run ID --scale S``: a claim's arms trained and evaluated through the bench machinery (resumable,
shardable across a job array, reusing finished runs), the per-seed values of its metric recorded beside the spec
(``results/<id>.json``), and the verdict printed. A known-answer claim runs its test. ``--scale paper`` first says
what it costs — steps, the step rate of a short probe on the device at hand (random images of the paper data's
shape, so no data is needed), the estimated hours — and which data files it needs, refusing missing ones."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import EbmlabError
from .spec import SCALES, Claim



def _arm_runs(claim: Claim, sc: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Arm → (method, options of its runs) at scale ``sc``; arms with the same method and options share their runs
    (:func:`_run_key`)."""
    out = {}
    for which in ("a", "b"):
        arm = (claim.comparison or {}).get(which)
        if not isinstance(arm, dict):
            continue
        over = {**sc.get("overrides", {}), **arm.get("overrides", {}), **sc.get(which, {})}
        out[which] = (arm["method"], over)
    return out


def _run_key(method: str, over: dict[str, Any]) -> str:
    import hashlib
    import json

    h = hashlib.sha256(json.dumps(over, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{method}-{h}"


def _suite(data: str) -> str:
    from ..data import get_dataset

    return "toy" if get_dataset(data).kind == "toy2d" else "images"


def _references(bench_dir: Path, metric: str) -> dict[str, float]:
    """The real-data, noise and collapsed values of ``metric`` from the first run's summary (images)."""
    from ..runs import read_json

    for summ in sorted(bench_dir.glob("runs/*/summary.json")):
        s = read_json(summ)
        out = {name: float(v) for name, key in (("real", "real_vs_real"), ("noise", "noise_floor"),
                                                 ("collapsed", "collapse_floor"))
               if isinstance(v := (s.get(key) or {}).get(metric), (int, float))}
        return out if "collapsed" in out else {}
    return {}


def run_known_answer(claim: Claim) -> dict[str, Any]:
    """Run the claim's pytest node from the checkout; passed or failed."""
    node = claim.test or ""
    if not Path(node.split("::")[0]).is_file():
        raise EbmlabError(f"{claim.id}: its test {node} is not here; run from a checkout of ebmlab (with its tests/)")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-n", "0", node],
                       capture_output=True, text=True)
    status = "passed" if r.returncode == 0 else "failed"
    return {"test": status, "command": f"python -m pytest -q {node}", "wall_s": round(time.perf_counter() - t0, 1),
            "output_tail": r.stdout[-600:]}


def _check_data(sc: dict[str, Any], data_dir: str | None) -> None:
    """Each data file the scale needs, read (checked by checksum) from --data-dir or EBMLAB_DATA."""
    from ..data import get_dataset

    missing = []
    for name in sc.get("data_files", []):
        try:
            len(get_dataset(name, data_dir=data_dir).train)  # the files are read (and checked) on first use
        except EbmlabError as exc:
            missing.append(f"{name}: {exc}")
    if missing:
        raise EbmlabError("the paper's scale needs data this machine does not have — " + "; ".join(missing))


PROBE_STEPS = 6  # timed steps of the paper-scale probe, after one untimed


def probe_rate(method: str, over: dict[str, Any], shape: list[int], device: str | None,
               steps: int = PROBE_STEPS) -> float:
    """Training steps per second of ``method`` with the paper's options on random uint8 images of ``shape`` (the
    step costs the same whatever the pixels), on the device at hand: the mean over ``steps`` steps after one."""
    import numpy as np

    from ..trainer import train

    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "probe.npy"
        n = max(64, 2 * int(over.get("batch_size", 64)))
        np.save(f, np.random.default_rng(0).integers(0, 256, (n, *shape), dtype=np.uint8))
        base = {k: v for k, v in over.items() if k not in ("steps", "budget_seconds", "budget_cpu_seconds")}
        base.update({"eval": "none", "plots": False, "tensorboard": False, **({"device": device} if device else {})})
        train(method, str(f), out=Path(d) / "warm", overrides={**base, "steps": 1}, progress=False)
        res = train(method, str(f), out=Path(d) / "warm", overrides={**base, "steps": 1 + steps}, progress=False)
    spent = res.train_seconds or 0.0
    return steps / max(spent, 1e-9)


def paper_cost(claim: Claim, sc: dict[str, Any], device: str | None, seeds: int) -> dict[str, Any]:
    """What the paper's scale costs here: per distinct arm, its steps, the probed step rate and hours; in all."""
    shape = sc.get("probe_shape")
    if not (isinstance(shape, list) and all(isinstance(s, int) and s > 0 for s in shape)):
        raise EbmlabError(f"{claim.id}: scale.paper needs probe_shape, the shape of one sample (e.g. [3, 32, 32])")
    steps = int(sc.get("steps", sc.get("overrides", {}).get("steps", 0)))
    arms = []
    for which, (method, over) in _arm_runs(claim, sc).items():
        if any(a["key"] == _run_key(method, over) for a in arms):
            continue
        rate = probe_rate(method, over, shape, device)
        arms.append({"arm": which, "key": _run_key(method, over), "method": method, "steps": steps,
                     "steps_per_s": round(rate, 3), "hours_per_seed": round(steps / rate / 3600, 2)})
    total = sum(a["hours_per_seed"] for a in arms) * seeds
    return {"arms": arms, "seeds": seeds, "hours": round(total, 1), "data_files": sc.get("data_files", []),
            "device": device or "auto", "probe": f"{shape} random uint8 images, the mean of {PROBE_STEPS} steps after one"}


def _check_runnable(claim: Claim, sc: dict[str, Any], scale: str) -> None:
    """Every arm a registered method (and, below the paper's scale, the data a known set): else the claim is measured
    by its own script (a semi-supervised table, super-resolution, a probe), named in its evidence."""
    from ..data import get_dataset
    from ..methods import METHODS

    arms = _arm_runs(claim, sc)
    unknown = sorted({m for m, _ in arms.values() if m not in METHODS})
    try:
        if scale != "paper":
            get_dataset(sc["data"])
    except EbmlabError:
        unknown.append(f"data {sc['data']}")
    if unknown:
        raise EbmlabError(f"{claim.id} is not a bench of ebmlab's methods ({', '.join(unknown)}): it is measured by "
                          f"its own script; see {', '.join(claim.evidence) or 'its spec'} for the command")


def run_claim(claim: Claim, scale: str, *, seeds: int | None = None, out: str | Path | None = None, jobs: int = 1,
              device: str | None = None, data_dir: str | None = None, shard: tuple[int, int] | None = None,
              command: str = "", say=print) -> dict[str, Any]:
    """Run ``claim`` at ``scale`` and record its result (module docstring); returns the result."""
    if claim.status == "untested":
        raise EbmlabError(f"{claim.id} is untested: {claim.reason}")
    if claim.status == "known_answer":
        return _record(claim, "known_answer", run_known_answer(claim))
    if scale not in claim.scales:
        raise EbmlabError(f"{claim.id} has no {scale} scale; it has {', '.join(s for s in SCALES if s in claim.scales)}")
    sc = dict(claim.scales[scale])
    _check_runnable(claim, sc, scale)
    n_seeds = seeds or int(sc.get("seeds", 3))
    if scale == "paper":
        cost = paper_cost(claim, sc, device, n_seeds)
        say(f"{claim.id} at the paper's scale: " + "; ".join(
            f"{a['method']} ({a['arm']}) {a['steps']} steps at {a['steps_per_s']} steps/s = {a['hours_per_seed']} h a "
            f"seed" for a in cost["arms"]) + f"; {cost['seeds']} seeds: about {cost['hours']} h on {cost['device']} "
            f"(probe: {cost['probe']}); data: {', '.join(cost['data_files']) or 'none'}"
            + (f"; steps from: {sc['steps_source']}" if sc.get("steps_source") else ""))
        _check_data(sc, data_dir)
    out = Path(out) if out is not None else Path("claims-runs") / f"{claim.id}-{scale}"
    t0 = time.perf_counter()
    values: dict[str, list[Any]] = {}
    refs: dict[str, float] = {}
    reports: dict[str, dict[str, Any]] = {}  # arms with the same method and options share one bench
    for which, (method, over) in _arm_runs(claim, sc).items():
        over = {**over, **({"device": device} if device else {}), **({"data_dir": data_dir} if data_dir else {})}
        key = _run_key(method, over)
        if key not in reports:
            from ..bench.run import run_toy_bench

            reports[key] = run_toy_bench([method], [sc["data"]], n_seeds, out=out / key, overrides=over, jobs=jobs,
                                         suite=_suite(sc["data"]) if scale != "paper" else "images", shard=shard,
                                         command=command or f"ebmlab claims run {claim.id} --scale {scale}")
        if shard is not None:
            continue
        metric = claim.arm(which).get("metric", (claim.comparison or {})["metric"])
        runs = sorted(reports[key]["runs"], key=lambda r: r["seed"])
        values[which] = [r["metrics"].get(metric) if r.get("status") == "ok" else None for r in runs]
        refs = refs or _references(out / key, metric)
    if shard is not None:
        return {"shard": list(shard), "out": str(out)}
    keep = [i for i in range(n_seeds) if all(values[w][i] is not None for w in values)]
    meta = next(iter(reports.values()))["meta"]  # the machine and torch as the bench states them
    result = {**{w: [values[w][i] for i in keep] for w in values}, "seeds": keep, "data": sc["data"],
              "command": command or f"ebmlab claims run {claim.id} --scale {scale}",
              "wall_s": round(time.perf_counter() - t0, 1), "machine": meta["machine"], "torch": meta["torch"],
              "load_1min": round(os.getloadavg()[0], 2), "date": datetime.date.today().isoformat(),
              **({"references": refs} if refs else {})}
    if len(keep) < n_seeds:
        result["note"] = "a run diverged or lacks the metric: its seed is left out of the pairing"
    return _record(claim, scale, result)


def _record(claim: Claim, scale: str, result: dict[str, Any]) -> dict[str, Any]:
    from ..runs import read_json, write_json

    f = claim.path.parent / "results" / f"{claim.id}.json"
    f.parent.mkdir(parents=True, exist_ok=True)
    allr = read_json(f) if f.is_file() else {}
    allr[scale] = result
    write_json(f, allr)
    return result
