"""The trainer's own cost per step: ``ebmlab.train`` with a GAN whose ``train_step`` does nothing (returns one
zero metric on the batch's device), so what is timed is everything around the step — drawing the batch (on the
device when the data set is moved there), the recipe's and the method's per-step hooks, the budget, the log,
checkpoint and progress checks. A step replayed from a CUDA graph pays this plus the replay, so this is the
distance between the trainer's rate and a method's graph ceiling.

    PYTHONPATH=src python benchmarks/gpu/loop_cost.py [--device cpu|cuda] [--steps 20000] [--data ring8,digits]
        [--data-on-device auto|on|off]

Prints one JSON line: per data set, the trainer's loop seconds and microseconds per step (run.json's own
``train_seconds``, which covers the training loop only), with the progress bar on and off.
"""

import argparse
import json
import platform
import tempfile

import torch

from ebmlab.methods.gan import GAN
from ebmlab.trainer import train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--data", default="ring8,digits")
    ap.add_argument("--data-on-device", default="auto", choices=["auto", "on", "off"],
                    help="the run option (on: the device path of the batches, also on a CPU)")
    a = ap.parse_args()
    GAN.train_step = lambda self, batch, step: {"loss": torch.zeros((), device=batch.device)}  # the empty step
    rows = []
    for data in a.data.split(","):
        for progress in (False, True):
            with tempfile.TemporaryDirectory() as d:
                train("gan", data, out=f"{d}/run", progress=progress,
                      overrides={"steps": a.steps, "device": a.device, "log_every": 100, "eval_every": 0,
                                 "ckpt_every": a.steps, "loggers": "", "plots": False, "eval_samples": 100,
                                 "graphs": "off", "threads": 1,
                                 "data_on_device": a.data_on_device})
                with open(f"{d}/run/run.json") as f:
                    rec = json.load(f)
            s = rec["sessions"][-1]
            rows.append({"data": data, "progress_bar": progress, "steps": a.steps,
                         "data_on_device": s.get("data_on_device"), "train_seconds": s["train_seconds"],
                         "us_per_step": round(1e6 * s["train_seconds"] / a.steps, 1)})
    print(json.dumps({"device": a.device, "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
                      "rows": rows}))


if __name__ == "__main__":
    main()
