"""Table of the fixed-base KALE runs written by run.sh: per setting, mean ± std over seeds of the test NLL of the
base alone and of base + energy, and the paired gain (with each run's own standard error).

    python benchmarks/kale_fixed/collect.py OUTDIR > benchmarks/kale_fixed/results.md
"""

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

out = Path(sys.argv[1])
rows = defaultdict(list)
for s in sorted(out.glob("*/summary.json")):
    setting = s.parent.name.rsplit("-s", 1)[0]
    m = json.loads(s.read_text())["metrics"]
    run = json.loads((s.parent / "run.json").read_text())
    secs = sum(x.get("train_seconds", 0) for x in run.get("sessions", []))
    rows[setting].append({k: m.get(k) for k in ("base_nll", "nll_ebm", "nll_gain", "nll_gain_se", "log_z_ebm",
                                                  "log_z_ebm_se", "log_z_ebm_ess", "mmd2", "base_mmd2")}
                         | {"seed": s.parent.name.rsplit("-s", 1)[1], "train_s": secs})


def gaussian_reference(csv: Path) -> str:
    """Test NLL of the full-covariance Gaussian fitted by maximum likelihood on the same standardised train split."""
    from ebmlab.data import get_dataset

    ds = get_dataset(str(csv))
    x, t = ds.train.double().numpy(), ds.test.double().numpy()
    mu, cov = x.mean(0), np.cov(x.T, bias=True)
    _, logdet = np.linalg.slogdet(cov)
    d = t - mu
    nll = 0.5 * (np.einsum("ij,jk,ik->i", d, np.linalg.inv(cov), d) + logdet + x.shape[1] * np.log(2 * np.pi))
    return (f"Reference: the full-covariance Gaussian MLE of the same train split has test NLL {nll.mean():.2f} ± "
            f"{nll.std(ddof=1) / len(nll) ** 0.5:.2f} nats ({len(t)} test rows, {len(x)} train rows, standardised units).")


def ms(v):
    v = np.asarray(v, dtype=float)
    return f"{v.mean():.2f} ± {v.std(ddof=1) if len(v) > 1 else 0:.2f}"


print("| setting | seeds | base_nll (flow/Gaussian alone) | nll_ebm (base + energy) | gain per seed (± paired se) "
      "| log Z (ESS) per seed | MMD² base → model | train s |")
print("|---|---|---|---|---|---|---|---|")
for k, rs in rows.items():
    gains = ", ".join(f"{r['nll_gain']:.2f} ± {r['nll_gain_se']:.2f}" for r in rs)
    lz = ", ".join(f"{r['log_z_ebm']:.3f} ({100 * r['log_z_ebm_ess']:.0f} %)" for r in rs)
    mmd = ", ".join(f"{r['base_mmd2']:.4f} → {r['mmd2']:.4f}" for r in rs)
    print(f"| {k} | {len(rs)} | {ms([r['base_nll'] for r in rs])} | {ms([r['nll_ebm'] for r in rs])} | {gains} | "
          f"{lz} | {mmd} | {ms([r['train_s'] for r in rs])} |")

csv = out / "breast_cancer.csv"
if csv.exists():
    print()
    print(gaussian_reference(csv))
