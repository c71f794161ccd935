"""Fashion-MNIST likelihoods of the 8-bit test images, for every method that has one, at one compute budget.

    python benchmarks/images/fashion_likelihood.py --budget 600 --seeds 3 --jobs 2 --ais 300 \\
        --out benchmarks/images/fashion_nll

Which methods have a likelihood of images, and which estimator gives it (all in nats per image of the discrete data
and in bits per dimension; a method with none is not in the table rather than in it with a number that means
something else):
- VAE, Gaussian decoder on uniformly dequantised data: the IWAE bound L_K at the preset's K (``iwae_ks``: 1, 10,
  100 on images) shifted by D·log w, so −L_K is an upper bound on −log P(x) in expectation; and with ``decoder=discretised`` (the decoder's mass on each
  of the 256 levels, a probability already).
- LBT: its explicit estimator (a VAE trained on the generator's samples), the same dequantised IWAE bound.
- EBGAN-PT: the energy is an autoencoder's reconstruction error with a tanh-bounded decoder, so it grows
  quadratically away from the data and exp(−E) is normalisable on R^D; AIS gives log Z with T and 2T intermediate
  distributions (``ebmlab eval --ais T``), E at dequantised test images, shifted by −D·log w. AIS under-estimates log
  Z in expectation, so this NLL is optimistic (biased low): the T/2T pair shows how far from converged it is.
Not here: GAN, VGAN (a bounded energy: no finite log Z on R^D), KALE (the model is exp(−E)·G, on the generator's
manifold), BiB (its bounds on images are manifold quantities, reported as ``manifold_nll_*``), BiHM (binary data).

Steps 1–3 each reuse what is done, so the same command resumes:
1. ``equal_time.py`` trains VAE, VAE discretised, LBT and EBGAN-PT for the steps each runs in ``--budget`` seconds
   on one thread (the rates measured interleaved, ``OUT/rates.json``), ``--seeds`` seeds each;
2. ``ebmlab eval RUN --ais T --json`` for each EBGAN-PT run into ``OUT/ais/``;
3. ``OUT/results.md``: mean ± std over seeds (the std is over training seeds; the standard error of the estimate
   over test points is ``nll_iwae_se`` of each run, listed beside it). Its first row is the likelihood of no model
   (each pixel uniform over its 256 levels: D·log 256 nats, 8 bits per dimension): an upper bound above it is still
   a valid bound, but says the model gives the test images less mass than no model does.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
METHODS = "vae,lbt,ebgan_pt"
AIS_METHODS = ("ebgan_pt",)


def train(a) -> None:
    pts = f"iwae_points={a.points}"
    cmd = [sys.executable, str(HERE / "equal_time.py"), "--data", "fashion", "--methods", METHODS,
           "--variants", f'vae:decoder="discretised",{pts}', "--set", f"vae:{pts};lbt:lr_est=3e-4,{pts}",
           "--budget", str(a.budget), "--rounds", "3", "--seconds", "3", "--seeds", str(a.seeds), "--jobs",
           str(a.jobs), "--out", str(a.out), "eval_samples=1000", "loggers="]
    print(" ".join(cmd), flush=True)
    if subprocess.call(cmd) != 0:
        raise SystemExit("the training grid failed (see above)")


def ais(a) -> None:
    runs = sorted(p for p in (a.out / "runs").iterdir() if p.name.split("-")[0] in AIS_METHODS)
    (a.out / "ais").mkdir(exist_ok=True)

    def one(run: Path) -> None:
        dest = a.out / "ais" / f"{run.name}.json"
        if dest.is_file():
            return
        t0 = time.perf_counter()
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        res = subprocess.run([sys.executable, "-m", "ebmlab.cli", "eval", str(run), "--ais", str(a.ais), "--json",
                              "--device", "cpu"], capture_output=True, text=True, env=env)
        if res.returncode != 0:
            raise SystemExit(f"ebmlab eval {run} --ais {a.ais} failed:\n{res.stderr}")
        out = json.loads(res.stdout)
        out["ais_seconds"] = time.perf_counter() - t0
        tmp = dest.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=1))
        tmp.replace(dest)
        print(f"AIS {run.name}: {time.perf_counter() - t0:.0f} s", flush=True)

    with ThreadPoolExecutor(a.jobs) as ex:
        list(ex.map(one, runs))


def _ms(vals: list[float], digits: int = 1) -> str:
    """Mean ± std over seeds of the finite values, at ``digits`` decimals ("–" when there are none)."""
    vals = [v for v in vals if v is not None and math.isfinite(v)]
    if not vals:
        return "–"
    m = statistics.fmean(vals)
    return f"{m:.{digits}f} ± {statistics.stdev(vals):.{digits}f}" if len(vals) > 1 else f"{m:.{digits}f}"


def table(a) -> str:
    grid = (a.out / "grid.toml").read_text()
    rows: dict[str, list[dict]] = {}
    for run in sorted((a.out / "runs").iterdir()):
        summ = run / "summary.json"
        if not summ.is_file():
            continue
        s = json.loads(summ.read_text())
        m = s["metrics"]
        cfg = json.loads((run / "config.json").read_text())
        method, mc = cfg["method"], cfg["method_config"]
        steps = s.get("budget", {}).get("steps")
        if method == "vae":
            label = f"VAE, {mc['decoder']} decoder"
            est = ("IWAE, discretised decoder" if mc["decoder"] == "discretised" else
                   "IWAE, uniform dequantisation")
            rec = {"nll": m.get("nll_iwae"), "bpd": m.get("bpd_iwae"), "se": m.get("nll_iwae_se"),
                   "how": f"{est}, K = {max(mc['iwae_ks'])}, {mc['iwae_points']} test images", "bias": "upper bound"}
            rec["k_curve"] = {k: -m[f"iwae_{k}"] for k in mc["iwae_ks"] if f"iwae_{k}" in m}
        elif method == "lbt":
            label = "LBT (its estimator)"
            rec = {"nll": m.get("est_nll_iwae"), "bpd": m.get("est_bpd_iwae"), "se": m.get("est_nll_iwae_se"),
                   "how": f"the estimator's IWAE, uniform dequantisation, K = {max(mc['iwae_ks'])}, "
                          f"{mc['iwae_points']} test images", "bias": "upper bound"}
            rec["k_curve"] = {k: -m[f"est_iwae_{k}"] for k in mc["iwae_ks"] if f"est_iwae_{k}" in m}
        elif method in AIS_METHODS:
            f = a.out / "ais" / f"{run.name}.json"
            if not f.is_file():
                continue
            e = json.loads(f.read_text())["metrics"]
            t1, t2 = a.ais, 2 * a.ais
            label = "EBGAN-PT (AIS)"
            rec = {"nll": e.get(f"nll_ais_T{t2}"), "bpd": e.get(f"bpd_ais_T{t2}"), "se": None,
                   "nll_t1": e.get(f"nll_ais_T{t1}"),
                   "how": f"AIS log Z (64 chains, T = {t2}; T = {t1} beside it), E at dequantised test images",
                   "bias": "optimistic (AIS log Z is low in expectation)"}
        else:
            continue
        rec.update(seed=cfg["run"]["seed"], steps=steps)
        rows.setdefault(label, []).append(rec)

    lines = ["| model | estimator | direction | seeds | steps | NLL (nats / image) ↓ | bits / dim ↓ | "
             "standard error over test images (nats) |", "|---|---|---|---|---|---|---|---|"]
    d = 28 * 28  # the reference row: every pixel uniform over its 256 levels, the likelihood of no model at all
    lines.append(f"| *no model: each pixel uniform over its 256 levels* | exact, D·log 256 | exact | – | – | "
                 f"{d * math.log(256):.1f} | 8.000 | 0 |")
    for label, rs in rows.items():
        se = ", ".join(f"{r['se']:.1f}" for r in rs if r.get("se") is not None)
        lines.append(f"| {label} | {rs[0]['how']} | {rs[0]['bias']} | {len(rs)} | {rs[0]['steps']} | "
                     f"{_ms([r['nll'] for r in rs])} | {_ms([r['bpd'] for r in rs], 3)} | {se or '–'} |")
    extra = []
    for label, rs in rows.items():
        if "k_curve" in rs[0]:
            ks = list(rs[0]["k_curve"])
            extra.append(f"- {label}, −L_K by K (mean over seeds): " + ", ".join(
                f"K = {k}: {_ms([r['k_curve'].get(k) for r in rs])}" for k in ks))
        if "nll_t1" in rs[0]:
            extra.append(f"- {label}, NLL at T = {a.ais}: {_ms([r['nll_t1'] for r in rs])} "
                         f"(at T = {2 * a.ais}: {_ms([r['nll'] for r in rs])})")
    cmd = " ".join(["python", "benchmarks/images/fashion_likelihood.py", *sys.argv[1:]])
    text = (f"# Fashion-MNIST: likelihoods of the 8-bit test images at {a.budget:.0f} s of one-thread training\n\n"
            f"```bash\n{cmd}\n```\n\nSteps per method (from `rates.json`, `grid.toml`):\n\n```toml\n{grid}```\n\n"
            + "\n".join(lines) + "\n\n" + "\n".join(extra) + "\n")
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=600.0)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--points", type=int, default=1000, help="test images of the IWAE estimates")
    p.add_argument("--ais", type=int, default=300, help="AIS intermediate distributions T (and 2T)")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    train(a)
    ais(a)
    text = table(a)
    (a.out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
