"""The CUDA path on a GPU machine: every method trains on `--device cuda` (fp32; bf16 and channels-last on images),
evaluates and samples from the CUDA run, one-process torchrun on NCCL, and the step rate against the same
machine's CPU. Each run is the CLI a user types.

usage: PYTHONPATH=src python benchmarks/gpu/check_cuda.py OUT_DIR [--steps 300]
Writes OUT_DIR/cuda_check.json and OUT_DIR/cuda_check.md (copied by hand into benchmarks/gpu/).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

METHODS_2D = ["gan", "vgan", "bib", "bib_mi_diff", "vae", "kale", "ebgan", "lbt"]
METHODS_IMG = ["gan", "vae", "kale", "bib"]


def run(args: list[str], torchrun: bool = False) -> tuple[int, float, str]:
    cmd = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1"] if torchrun
           else [sys.executable]) + ["-m", "ebmlab", *args]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return p.returncode, time.perf_counter() - t0, (p.stdout + p.stderr)[-1500:]


def train(method: str, data: str, device: str, steps: int, d: str, extra: list[str], torchrun: bool = False,
          evaluate: bool = False) -> dict:
    out = f"{d}/{method}-{data}-{device}-{'-'.join(extra) or 'fp32'}{'-trun' if torchrun else ''}"
    common = ["--no-progress", f"log_every={steps}", f"ckpt_every={steps}", "loggers="]
    if not evaluate:
        common += ["plots=false", "eval_samples=200"] + (["eval_density=false"] if data == "ring8" else [])
    rc, wall, tail = run(["train", method, "--data", data, "--steps", str(steps), "--device", device,
                          "--out", out, *common, *extra], torchrun)
    rec: dict = {"method": method, "data": data, "device": device, "extra": " ".join(extra),
                 "torchrun": torchrun, "rc": rc, "wall_s": round(wall, 1)}
    if rc == 0:
        meta = json.loads((Path(out) / "run.json").read_text())
        rec["steps_per_s"] = meta["sessions"][-1]["steps_per_s"]
        summ = Path(out) / "summary.json"
        if summ.exists():
            s = json.loads(summ.read_text())
            flat = s.get("metrics", s)
            rec["metrics"] = {k: v for k, v in flat.items() if isinstance(v, (int, float))
                              and k in ("modes", "hq_frac", "nll", "w1", "fd", "modes_covered", "iwae")}
    else:
        rec["tail"] = tail
    rec["out"] = out
    return rec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--methods-2d", default=",".join(METHODS_2D))
    ap.add_argument("--methods-img", default=",".join(METHODS_IMG))
    a = ap.parse_args()
    assert torch.cuda.is_available(), "this check needs a CUDA device"
    res: dict = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0), "cpus": os.cpu_count(),
                 "steps": a.steps, "runs": [], "extra_checks": []}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        for m in filter(None, a.methods_2d.split(",")):
            for dev in ("cpu", "cuda"):
                res["runs"].append(train(m, "ring8", dev, a.steps, d, []))
                print(json.dumps(res["runs"][-1])[:300], flush=True)
                Path(a.out).mkdir(parents=True, exist_ok=True)
                (Path(a.out) / "partial.json").write_text(json.dumps(res, indent=1))
        for m in filter(None, a.methods_img.split(",")):
            for dev, extra in (("cpu", []), ("cuda", []), ("cuda", ["precision=bf16"]),
                               ("cuda", ["precision=bf16", "channels_last=true"])):
                res["runs"].append(train(m, "digits", dev, a.steps, d, extra))
                print(json.dumps(res["runs"][-1])[:300], flush=True)
                Path(a.out).mkdir(parents=True, exist_ok=True)
                (Path(a.out) / "partial.json").write_text(json.dumps(res, indent=1))
        # full evaluation, sampling (latent MCMC) and AIS from CUDA runs
        r = train("kale", "ring8", "cuda", a.steps, d, [], evaluate=True)
        res["runs"].append(r)
        rc, wall, tail = run(["sample", r["out"], "-n", "500", "--out", f"{d}/s.npy", "--sampler", "kinetic",
                              "--mcmc-steps", "100"])
        res["extra_checks"].append({"what": "sample kinetic 100 steps from a CUDA KALE run", "rc": rc,
                                    "wall_s": round(wall, 1), "tail": tail[-400:]})
        rc, wall, tail = run(["eval", r["out"], "--json", "--ais", "50"])
        res["extra_checks"].append({"what": "eval --ais 50 of a CUDA KALE run", "rc": rc, "wall_s": round(wall, 1),
                                    "tail": tail[-600:]})
        r = train("vae", "digits", "cuda", a.steps, d, [], evaluate=True)
        res["runs"].append(r)
        res["runs"].append(train("gan", "ring8", "cuda", a.steps, d, [], torchrun=True))
        res["runs"].append(train("bib", "digits", "cuda", a.steps, d, [], torchrun=True))
        for rr in res["runs"][-3:]:
            print(json.dumps(rr)[:400], flush=True)
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    res["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "cuda_check.json").write_text(json.dumps(res, indent=1))
    rows = ["| method | data | device | options | torchrun | exit | steps/s | wall s | metrics |", "|" + "---|" * 9]
    for r in res["runs"]:
        rows.append(f"| {r['method']} | {r['data']} | {r['device']} | {r['extra'] or 'fp32'} | {r['torchrun']} | "
                    f"{r['rc']} | {r.get('steps_per_s', '—')} | {r['wall_s']} | {r.get('metrics', r.get('tail', ''))} |")
    (Path(a.out) / "cuda_check.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))
    for c in res["extra_checks"]:
        print(c)


if __name__ == "__main__":
    main()
