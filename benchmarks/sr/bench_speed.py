"""Speed of `ebmlab sr upscale`: a 256×256 grey image (scikit-image's camera, 2×2 box-averaged from 512×512)
upscaled ×4 to 1024×1024 by every model, through the same function the CLI calls (tiles of 32 low-resolution
pixels with 4-pixel margins), each model once after a warm-up on a 32×32 image.

usage: python benchmarks/sr/bench_speed.py RUNS_DIR OUT_DIR [MODELS (comma-separated; default all five)]
RUNS_DIR holds the run directories of bench_sr.py for one data set (bicubic, tv, mse, stats, stats-learned).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ebmlab.sr import api


def main() -> None:
    runs, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    import skimage.data

    cam = skimage.data.camera().astype(np.float64)
    small = cam.reshape(256, 2, 256, 2).mean((1, 3))
    Image.fromarray(small.round().astype(np.uint8)).save(out / "camera256.png")
    Image.fromarray(small[:32, :32].round().astype(np.uint8)).save(out / "warm.png")
    rows = []
    names = sys.argv[3].split(",") if len(sys.argv) > 3 else ["bicubic", "tv", "mse", "stats", "stats-learned"]
    for name in names:
        api.upscale(runs / name, out / "warm.png", out / "warm_x4.png", progress=False)
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        res = api.upscale(runs / name, out / "camera256.png", out / f"camera1024_{name}.png", progress=False)
        wall = time.perf_counter() - t0
        rows.append({"model": name, "wall_s": round(wall, 2), "upscale_s": res["seconds"],
                     "out_size": res["out_size"], "load_1min": round(load, 2), "threads": torch.get_num_threads()})
        print(json.dumps(rows[-1]), flush=True)
    (out / "speed.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
