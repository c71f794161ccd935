"""``ebmlab claims run ID --scale S``: a claim's arms trained and evaluated, the per-seed values of its metric
recorded beside the spec (``results/<id>.json``) with everything that says what ran, and the verdict printed. A
known-answer claim runs its test.

What a run records (:func:`run_claim`): per arm the per-seed values (None where a seed diverged, listed in
``diverged``), the steps and CPU-seconds each run got, the noise floor and real-data (and collapsed) references of
the arm's metric at its sample count, and the resolved configuration; the commit (and whether the tree had
uncommitted changes), the command, the machine, the load and the wall time. An equal-compute claim also records
``equal_steps``: per seed, the arm that trained more steps in the budget trained again to exactly the steps the
other arm reached in that seed (the other's budget run is reused), so each claim is judged both ways from one
command.

Runs are shared: ``OUT/<scale>/arms/<arm key>/s<seed>`` (:attr:`arms.Arm.key`) holds an arm's run of that seed,
which any claim with the same arm reuses (finished runs are read, stopped ones resumed); ``--shard i/n`` runs every
n-th run only (a job array), then the equal-steps reruns of its seeds (seed mod n = i) whose budget runs have both
finished, and records nothing: the same command without it records the result. A new result never silently
replaces a recorded one with more seeds: that needs ``--replace`` (a part, which records nothing, may take fewer
seeds: ``--seeds 2 --shard 0/1`` makes the first two seeds' runs and reruns of a three-seed claim).

``--scale paper`` first says what it costs (:func:`paper_cost`) and which data files it needs, refusing missing ones.
"""

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
from . import arms as arms_mod
from .spec import Claim, result_key


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
            "output_tail": r.stdout[-600:], **_provenance()}


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


PROBE_WARMUP, PROBE_STEPS = 3, 8  # the paper-scale probe: untimed warm-up steps, then timed steady-state steps


def probe_rate(method: str, over: dict[str, Any], shape: list[int], device: str | None,
               steps: int = PROBE_STEPS) -> dict[str, float]:
    """What one run of ``method`` with the paper's options costs on random uint8 images of ``shape`` (the step
    costs the same whatever the pixels), on the device at hand: the steady-state step rate (``steps`` steps after
    :data:`PROBE_WARMUP` untimed ones, from the training log's clock, so the first steps' compiling, capture and
    allocation are left out), the seconds of one checkpoint and of one evaluation at the run's sample count."""
    import json

    import numpy as np

    from ..trainer import train

    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "probe.npy"
        n = max(64, 2 * int(over.get("batch_size", 64)))
        np.save(f, np.random.default_rng(0).integers(0, 256, (n, *shape), dtype=np.uint8))
        base = {k: v for k, v in over.items() if k not in ("steps",) + arms_mod.BUDGETS}
        base.update({"eval": "none", "plots": False, "loggers": "", "log_every": 1, "ckpt_every": 10 ** 9,
                     **({"device": device} if device else {})})
        run = Path(d) / "warm"
        train(method, str(f), out=run, overrides={**base, "steps": PROBE_WARMUP + steps}, progress=False)
        logs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
        clock = [(r["step"], r["step"] / r["steps_per_s"]) for r in logs if r.get("kind") == "train"
                 and r.get("steps_per_s")]
        timed = [(s, t) for s, t in clock if s >= PROBE_WARMUP]
        rate = (timed[-1][0] - timed[0][0]) / max(timed[-1][1] - timed[0][1], 1e-9) if len(timed) > 1 else 0.0
        from ..api import evaluate_run, load_run

        import torch

        _, method_, _ = load_run(run, device or "cpu")
        t0 = time.perf_counter()
        torch.save(method_.state_dict(), Path(d) / "checkpoint.pt")  # what a checkpoint writes, most of it
        ckpt_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        evaluate_run(run, device=device, keep=False)
        eval_s = time.perf_counter() - t0
    return {"steps_per_s": rate, "ckpt_s": ckpt_s, "eval_s": eval_s}


def paper_cost(claim: Claim, scale: str, device: str | None, seeds: int) -> dict[str, Any]:
    """What the paper's scale costs here: per distinct arm, its steps, the probed steady-state rate, the periodic
    checkpoints and evaluations and the final evaluation, in hours; in all."""
    sc = claim.scales[scale]
    shape = sc.get("probe_shape")
    if not (isinstance(shape, list) and all(isinstance(s, int) and s > 0 for s in shape)):
        raise EbmlabError(f"{claim.id}: scale.paper needs probe_shape, the shape of one sample (e.g. [3, 32, 32])")
    steps = int(sc.get("steps", sc.get("overrides", {}).get("steps", 0)))
    out: list[dict[str, Any]] = []
    for which, arm in arms_mod.plan(claim, scale, _device_kind(device)).items():
        if any(a["key"] == arm.key for a in out):
            continue
        from ..config import RunConfig, eval_count

        p = probe_rate(arm.method, arm.options, shape, device)
        ckpt_every = int(arm.options.get("ckpt_every", RunConfig.ckpt_every))
        evals = eval_count(steps, int(arm.options.get("eval_every", 0)), str(arm.options.get("eval_spacing", "even")))
        periodic = steps // ckpt_every * p["ckpt_s"] + evals * p["eval_s"]
        seconds = steps / max(p["steps_per_s"], 1e-9) + periodic + p["eval_s"]
        out.append({"arm": which, "key": arm.key, "method": arm.method, "steps": steps,
                    "steps_per_s": round(p["steps_per_s"], 3), "periodic_s": round(periodic, 3),
                    "final_eval_s": round(p["eval_s"], 3), "hours_per_seed": round(seconds / 3600, 3)})
    total = sum(a["hours_per_seed"] for a in out) * seeds
    return {"arms": out, "seeds": seeds, "hours": round(total, 1), "data_files": sc.get("data_files", []),
            "device": device or "auto",
            "probe": f"{shape} random uint8 images: {PROBE_STEPS} steady-state steps after {PROBE_WARMUP}, one "
                     f"checkpoint, one evaluation of the probe's data kind at the run's sample count (the paper "
                     f"data's classifier metrics are not in it)"}


def _provenance() -> dict[str, Any]:
    """The commit the code ran on and whether the tree had uncommitted changes (None outside a checkout)."""
    root = Path(__file__).resolve().parents[3]

    def git(*a: str) -> str | None:
        try:
            r = subprocess.run(["git", *a], cwd=root, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "src")
    return {"commit": commit, "dirty": bool(dirty) if dirty is not None else None}


def _machine() -> dict[str, Any]:
    import platform

    import torch

    return {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
            "torch": torch.__version__}


def run_claim(claim: Claim, scale: str, *, seeds: int | None = None, out: str | Path | None = None, jobs: int = 1,
              device: str | None = None, data_dir: str | None = None, shard: tuple[int, int] | None = None,
              replace: bool = False, command: str = "", say: Any = print) -> dict[str, Any]:
    """Run ``claim`` at ``scale`` and record its result (module docstring); returns the result."""
    from ..errors import require_int

    if claim.status == "untested":
        raise EbmlabError(f"{claim.id} is untested: {claim.reason}")
    if claim.status == "known_answer":
        return _record(claim, "known_answer", run_known_answer(claim), replace=True)
    if seeds is not None:
        require_int("--seeds", seeds, 1)
    require_int("--jobs", jobs, 1, " (runs at a time)")
    kind = _device_kind(device)
    key = result_key(scale, kind)
    arms = arms_mod.plan(claim, scale, kind)
    sc = dict(claim.scales[scale])
    configs = arms_mod.check(claim, scale, arms)
    n_seeds = seeds or int(sc.get("seeds", 3))
    if shard is None:  # a part records nothing: it replaces no result
        _check_replace(claim, key, n_seeds, replace)
    if scale == "paper":
        cost = paper_cost(claim, scale, device, n_seeds)
        say(f"{claim.id} at the paper's scale: " + "; ".join(
            f"{a['method']} ({a['arm']}) {a['steps']} steps at {a['steps_per_s']} steps/s + {a['periodic_s']} s of "
            f"checkpoints and evaluations + {a['final_eval_s']} s final evaluation = {a['hours_per_seed']} h a seed"
            for a in cost["arms"]) + f"; {cost['seeds']} seeds: about {cost['hours']} h on {cost['device']} "
            f"(probe: {cost['probe']}); data: {', '.join(cost['data_files']) or 'none'}"
            + (f"; steps from: {sc['steps_source']}" if sc.get("steps_source") else ""))
        _check_data(sc, data_dir)
    root = (Path(out) if out is not None else Path("claims-runs")) / key
    place = {"device": kind, **({"data_dir": data_dir} if data_dir else {})}
    from .runners import RUNNERS

    t0 = time.perf_counter()
    measured = RUNNERS[claim.runner](claim, sc, arms, n_seeds, root=root, jobs=jobs, place=place, shard=shard)
    if shard is not None:
        return {"shard": list(shard), "out": str(root)}
    result = {**measured, "data": sc["data"], "arms": configs,
              "command": command or f"ebmlab claims run {claim.id} --scale {scale}",
              "wall_s": round(time.perf_counter() - t0, 1), **_machine(), **_provenance(),
              "load_1min": round(os.getloadavg()[0], 2), "date": datetime.date.today().isoformat(),
              **({"device": _gpu_name()} if kind == "cuda" else {})}
    from .render import earlier_commits

    if other := earlier_commits(result):
        say(f"{claim.id}: some runs were trained at another commit than this code's "
            f"({str(result.get('commit'))[:7]}): {other} — the result records them (trained_at); delete those runs "
            f"under {root / 'arms'} to train them again on this code")
    return _record(claim, key, result, replace=replace)


def _device_kind(device: str | None) -> str:
    """cpu or cuda: where ``--device`` (None: the run option's default, auto) puts the runs — CUDA when asked for
    (refused without it) or when auto finds it."""
    from ..config import RunConfig
    from ..placement import device_name

    name = device_name(str(device or RunConfig().device).split(":")[0])
    if name not in ("cpu", "cuda"):
        raise EbmlabError(f"claims run --device {device}: the claims' runs train on cpu or cuda")
    return name


def _gpu_name() -> str:
    import torch

    return str(torch.cuda.get_device_name())


def _filled(values: Any) -> int:
    return sum(v is not None for v in values) if isinstance(values, list) else 0


def _check_replace(claim: Claim, scale: str, n_seeds: int, replace: bool) -> None:
    """A recorded result with more seeds than this run will have is not replaced silently (refused before any run);
    ``scale`` is the result's key (``<scale>@cuda`` for a GPU's)."""
    old = claim.results.get(scale) or {}
    had = max(_filled(old.get("a")), int((old.get("a_summary") or {}).get("n", 0)), _filled(old.get("diff")))
    if had > n_seeds and not replace:
        raise EbmlabError(f"{claim.id} has a {scale} result over {had} seeds; this run would record {n_seeds} — run "
                          f"it with --seeds {had}, or give --replace to record fewer; nothing was run")


def _record(claim: Claim, scale: str, result: dict[str, Any], *, replace: bool) -> dict[str, Any]:
    from ..atomic import read_json, write_json

    f = claim.path.parent / "results" / f"{claim.id}.json"
    if scale != "known_answer" and not any(_filled(result.get(w)) for w in ("a", "b")) and not replace:
        raise EbmlabError(f"{claim.id}: no run of any arm finished with its metric "
                          f"({(claim.comparison or {}).get('metric')}), so "
                          f"nothing was recorded (the recorded result, if any, is kept); the runs are in the claims' "
                          f"run directory")
    f.parent.mkdir(parents=True, exist_ok=True)
    allr = read_json(f) if f.is_file() else {}
    allr[scale] = result
    write_json(f, allr)
    return result
