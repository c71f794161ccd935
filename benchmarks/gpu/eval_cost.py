"""The cost of one stacked-set evaluation's classifier metrics (26,000 samples, 78,000 single-channel passes) with
the samples on the CPU against the same samples on a GPU (classified there, ``Classifier.on``), in one process on
one machine; and whether the numbers agree.

    python benchmarks/gpu/eval_cost.py [--threads 1] [--n 26000]

The samples are real stacked Fashion-MNIST test triples with uniform noise added (a model's samples, not the
data's); each timing is the second of two calls (the first builds the classifier copy and warms cuDNN).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from ebmlab.data import get_dataset
from ebmlab.metrics.images import image_metrics


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (a claims run's: 1)")
    ap.add_argument("--n", type=int, default=26000)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ds = get_dataset("stacked_fashion")
    g = torch.Generator().manual_seed(0)
    x = ds.test[:a.n].float()
    x = (x + 0.1 * torch.rand(x.shape, generator=g)).clamp(*(ds.spec.value_range or (0, 1)))
    out: dict[str, object] = {"n": len(x), "threads": a.threads, "torch": torch.__version__,
                              "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}
    for where in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        xs = x.to(where)
        image_metrics(xs[:2000], ds, n_features=1000)
        if where == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        m = image_metrics(xs, ds, n_features=1000)
        out[f"{where}_s"] = round(time.perf_counter() - t, 2)
        out[where] = {k: m[k] for k in ("modes", "modes_confident", "modes_in_data", "clf_fd", "clf_precision")}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
