"""Does the speed probe (``ebmlab.machine.probe``) move with the training step's cost when the CPU's kernels change?

Rule 4 of the claims verdicts compares two runs' probe medians to decide whether their CPU seconds were the same
compute. That is sound only if the probe slows down by about as much as the arms' training steps do when the CPU
offers other vector instructions (the sessions of 2026-11-28 differed 2-3.5x in the cost of a step). This script
emulates a CPU with fewer instructions on the one at hand, in fresh processes: PyTorch's ATen kernels capped by
``ATEN_CPU_CAPABILITY`` and oneDNN's convolutions by ``ONEDNN_MAX_CPU_ISA``, and measures under each cap

- the probe: the median of ``--probes`` timings;
- each arm's CPU seconds a training step: two runs of its recorded configuration (the ``config.json`` of a claims
  run; one thread, evaluations off) to ``--short`` and ``--long`` steps, the difference of their ``train_cpu_seconds``
  over the difference of steps (start-up, data loading and the first steps' warm-up cancel).

It prints, per cap, the probe median and each arm's cost, and each ratio to the first cap's. The probe tracks the
steps when its ratio is within the arms' ratios' spread.

    python benchmarks/machine/isa.py CONFIG.json [CONFIG.json ...] [--caps native,avx2:SSE41,default:SSE41]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _env(cap: str) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if cap != "native":
        aten, _, onednn = cap.partition(":")
        env["ATEN_CPU_CAPABILITY"] = aten
        if onednn:
            env["ONEDNN_MAX_CPU_ISA"] = onednn
    return env


def _probe(cap: str, n: int) -> tuple[float, str]:
    code = ("import json, torch; from ebmlab.machine import probe; "
            f"print(json.dumps([[probe() for _ in range({n})], torch.backends.cpu.get_cpu_capability()]))")
    out = subprocess.run([sys.executable, "-c", code], env=_env(cap), capture_output=True, text=True, check=True)
    times, capability = json.loads(out.stdout.strip().splitlines()[-1])
    return statistics.median(times), capability


def _toml(value: object) -> str:
    return json.dumps(value)  # numbers, strings, booleans and lists read the same in TOML


def _train_cpu(config: dict, steps: int, cap: str, tmp: Path, name: str) -> float:
    run = dict(config["run"], steps=steps, eval="none", max_cpu_seconds=0.0, max_seconds=0.0, threads=1,
               plots=False, ckpt_every=100000, speed_probe=False)
    for key in ("seed", "tensorboard"):
        run.pop(key, None)
    lines = ["[run]"] + [f"{k} = {_toml(v)}" for k, v in run.items() if k not in ("steps",)]
    lines += ["[method]"] + [f"{k} = {_toml(v)}" for k, v in config["method_config"].items() if v is not None]
    cfg = tmp / f"cfg-{name}-{steps}.toml"
    cfg.write_text("\n".join(lines) + "\n")
    out = tmp / f"run-{name}-{cap.replace(':', '-')}-{steps}"
    cmd = [sys.executable, "-m", "ebmlab", "train", config["method"], "--data", config["data"], "--steps", str(steps),
           "--seed", "0", "--out", str(out), "--config", str(cfg), "--no-progress", "--device", "cpu"]
    done = subprocess.run(cmd, env=_env(cap), capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr.strip()}")
    sessions = json.loads((out / "run.json").read_text())["sessions"]
    return float(sessions[-1]["train_cpu_seconds"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("configs", nargs="+", type=Path, help="config.json files of claims runs")
    ap.add_argument("--caps", default="native,default:SSE41")
    ap.add_argument("--short", type=int, default=5)
    ap.add_argument("--long", type=int, default=25)
    ap.add_argument("--probes", type=int, default=7)
    a = ap.parse_args()
    caps = a.caps.split(",")
    rows: dict[str, dict[str, float]] = {}
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for cap in caps:
            med, capability = _probe(cap, a.probes)
            row = {"probe": med}
            for path in a.configs:
                config = json.loads(path.read_text())
                name = path.parent.parent.name
                short, long_ = (_train_cpu(config, s, cap, tmp, name) for s in (a.short, a.long))
                row[name] = (long_ - short) / (a.long - a.short)
                print(f"  {cap} {name}: {row[name]:.4f} CPU-s a step", flush=True)
            rows[cap] = row
            print(f"{cap} (torch capability {capability}): " +
                  ", ".join(f"{k} {v:.4f}" for k, v in row.items()), flush=True)
    first = rows[caps[0]]
    for cap in caps[1:]:
        print(f"{cap} / {caps[0]}: " + ", ".join(f"{k} x{rows[cap][k] / first[k]:.2f}" for k in first))
    print(f"wall {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
