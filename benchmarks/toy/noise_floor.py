"""The noise floor of the 2D mode metrics: what uniform noise on each mixture's box scores under the VEEGAN/PacGAN
protocol (a mode is captured by one sample within 3σ of it), at the sample count of the benchmarks, beside the
closed form K(1 − (1 − p/K)^n) with p = K·π(3σ)²/area of the box.

    python benchmarks/toy/noise_floor.py [--n 2500] > benchmarks/toy/noise_floor.md

The same numbers are the `uniform noise (floor)` row of every toy bench table and the `noise` column of
`ebmlab eval` (``ebmlab.metrics.noise_floor``: mode metrics the mean of 5 draws, distances the first draw's).
"""

from __future__ import annotations

import argparse
import math

from ebmlab.data import get_dataset
from ebmlab.metrics import noise_floor


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2500)
    n = ap.parse_args().n
    print(f"# Noise floor of the 2D mode metrics ({n} samples)\n")
    print("`python benchmarks/toy/noise_floor.py --n %d`: uniform noise on each data set's box "
          "(`ebmlab.metrics.noise_floor`: mode metrics the mean of 5 draws, MMD² and W1 the first draw's), beside the "
          "expected values in closed form.\n" % n)
    print("| data | modes (K) | σ | box | noise: modes | expected | noise: HQ (%) | expected | mode KL | W1 | MMD² |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in ("ring8", "grid25", "ring8_wide", "grid100", "ring8_lbt"):
        ds = get_dataset(name)
        lo, hi = ds.box
        k, r = ds.modes.shape[0], 3 * ds.mode_std
        p = k * math.pi * r * r / (hi - lo) ** 2
        f = noise_floor(ds, n)["noise_floor"]
        print(f"| {name} | {k} | {ds.mode_std} | [{lo}, {hi}]² | {f['modes']:.1f} | {k * (1 - (1 - p / k) ** n):.1f} "
              f"| {100 * f['hq']:.2f} | {100 * p:.2f} | {f['mode_kl']:.3f} | {f['w1']:.3f} | {f['mmd2']:.4f} |")


if __name__ == "__main__":
    main()
