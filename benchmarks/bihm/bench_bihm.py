"""BiHM vs RWS vs the VAE on binary images at the same wall-clock budget, and the convergence of each estimate in K.

    python benchmarks/bihm/bench_bihm.py --data digits_bin,fashion_bin --budget 120,300 --out benchmarks/bihm

For each data set (fixed binarisation: one Bernoulli draw of grey/255, seed 0 for train, 1 for test):
1. the step rate of each method is measured in this one process, interleaved over rounds (so all three see the same
   machine load), and each method gets steps = budget × its median rate: the same wall-clock budget, written down as
   a step count so the runs are reproducible and resumable;
2. each method trains through ``ebmlab.train`` into OUT/runs/<method>-<data> (a re-run reuses the recorded rates and
   resumes or reuses the runs);
3. every run is evaluated on the first ``--points`` test images for K ∈ {1, 10, 100, 1000, 10000}: IS log p(x),
   2 log p̃*(x) and log p*(x) = 2 log p̃* − log Z² (BiHM; Z² from ``--z2`` outer × 10 inner draws, with its s.e.),
   the IWAE bound L_K (VAE), and the ESS of the weights of p and of p*;
4. for each estimate, the smallest K whose value is within 0.5 nats of its K = 10000 value.

Networks: BiHM and RWS use each data set's preset (digits_bin: 64-32-16 hidden units; 28×28 sets: the BiHM
paper's 12 layers); the VAE is the IWAE paper's MLP (two hidden layers of 200 tanh units, z in R^50, Bernoulli
decoder). ``--data binarized_mnist --data-dir DIR`` runs the same on the standard files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

KS = (1, 10, 100, 1000, 10000)
VAE_OVER = {"net": "mlp", "hidden": (200, 200), "z_dim": 50, "act": "tanh", "decoder": "bernoulli"}


def overrides(method: str, points: int, z2: int) -> dict:
    if method == "vae":
        return {**VAE_OVER, "iwae_ks": KS, "iwae_points": points, "batch_size": 100}
    return {"eval_ks": KS, "eval_points": points, "z2_samples": z2}


def step_rates(data: str, methods: list[str], data_dir: str, rounds: int = 5, seconds: float = 2.0) -> dict[str, float]:
    """Median steps/s of each method over ``rounds`` rounds, the methods interleaved within a round and each timed
    for at least ``seconds`` (short timings under a shared machine's load scatter by a factor of two)."""
    from ebmlab.data import get_dataset
    from ebmlab.trainer import build_method
    from ebmlab.config import resolve_config

    ds = get_dataset(data, data_dir=data_dir or None)
    built = {}
    for m in methods:
        cfg = resolve_config(m, data, overrides={**overrides(m, 1, 1), "seed": 0,
                                                 **({"data_dir": data_dir} if data_dir else {})})
        built[m] = (build_method(cfg, torch.device("cpu")), cfg.run.batch_size)
    rates = {m: [] for m in methods}
    g = torch.Generator().manual_seed(0)
    for _ in range(rounds):
        for m, (meth, bs) in built.items():
            batches = [ds.train[torch.randint(0, len(ds.train), (bs,), generator=g)] for _ in range(8)]
            meth.train_step(batches[0], 1)
            n, t0 = 0, time.perf_counter()
            while n < 10 or time.perf_counter() - t0 < seconds:
                meth.train_step(batches[n % 8], n + 2)
                n += 1
            rates[m].append(n / (time.perf_counter() - t0))
    return {m: statistics.median(r) for m, r in rates.items()}


def within(values: dict[int, float], tol: float = 0.5) -> int | None:
    ref = values[max(values)]
    for k in sorted(values):
        if all(abs(values[j] - ref) <= tol for j in sorted(values) if j >= k):
            return k
    return None


def table_rows(method: str, metrics: dict) -> dict:
    """The K-table of one run: estimate name → {K: value} (nats per example; ESS as a fraction of K)."""
    out: dict[str, dict[int, float]] = {}
    if method == "vae":
        out["iwae"] = {k: metrics[f"iwae_{k}"] for k in KS}
        return out
    for name in ("log_p", "two_log_pt", "log_pstar", "ess_p", "ess_pstar"):
        if f"k{KS[0]}_{name}" in metrics:
            out[name] = {k: metrics[f"k{k}_{name}"] for k in KS}
    return out


def save_grids(method, name: str, data: str, folder: Path) -> dict[str, float]:
    """64 binary samples per sampler as a PNG grid: BiHM from p* by resampling and by Gibbs, RWS from p, the VAE
    from its decoder; returns each sampler's wall time (the Gibbs sampler's mean acceptance rate too)."""
    import dataclasses

    from ebmlab.plots import save_image_grid

    folder.mkdir(parents=True, exist_ok=True)
    modes = ["sir", "gibbs"] if name == "bihm" else [None]
    times = {}
    method.train(False)
    for mode in modes:
        if mode is not None:
            method.config = dataclasses.replace(method.config, sample_mode=mode, sample_mean=False)
        g = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        if mode == "gibbs":
            state, acc = method._gibbs(64, g)
            x = state[0].reshape(64, *method.spec.shape)
            times["gibbs_acceptance"] = acc
        else:
            x = method.sample(64, generator=g)
        times[mode or "samples"] = time.perf_counter() - t0
        save_image_grid(x.clamp(0, 1), (0.0, 1.0), folder / f"{data}_{name}{'_' + mode if mode else ''}.png")
    return times


def main() -> None:
    import ebmlab

    p = argparse.ArgumentParser()
    p.add_argument("--data", default="digits_bin,fashion_bin")
    p.add_argument("--budget", default="120,300", help="seconds of training per method, one per data set")
    p.add_argument("--methods", default="bihm,rws,vae")
    p.add_argument("--points", type=int, default=200, help="test images evaluated")
    p.add_argument("--z2", type=int, default=100_000, help="outer samples of the Z² estimator")
    p.add_argument("--data-dir", default="")
    p.add_argument("--out", default="benchmarks/bihm")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    methods = a.methods.split(",")
    datas, budgets = a.data.split(","), [float(b) for b in a.budget.split(",")]
    if len(budgets) != len(datas):
        raise SystemExit("--budget needs one value per data set")
    report = {"command": "python benchmarks/bihm/bench_bihm.py " + " ".join(os.sys.argv[1:]),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                         f"{a.threads} thread(s)", "load_start": os.getloadavg()[0], "data": {}}
    t_all = time.perf_counter()
    previous = json.loads((out / "results.json").read_text()).get("data", {}) if (out / "results.json").is_file() else {}
    for data, budget in zip(datas, budgets):
        # a re-run reuses the rates it measured before, so it resumes the same step counts
        rates = previous.get(data, {}).get("rates") or step_rates(data, methods, a.data_dir)
        if set(rates) != set(methods):
            rates = step_rates(data, methods, a.data_dir)
        entry = {"budget_s": budget, "rates": rates, "runs": {}}
        for m in methods:
            steps = max(1, int(budget * rates[m]))
            over = {**overrides(m, a.points, a.z2), "steps": steps, "seed": 0, "threads": a.threads,
                    "eval_samples": 1000, "log_every": 500, "ckpt_every": max(steps // 4, 1), "loggers": ""}
            if a.data_dir:
                over["data_dir"] = a.data_dir
            t0 = time.perf_counter()
            res = ebmlab.train(m, data, out=out / "runs" / f"{m}-{data}", overrides=over, progress=False)
            met = res.summary["metrics"]
            rows = table_rows(m, met)
            conv = {name: within(vals) for name, vals in rows.items() if not name.startswith("ess")}
            entry["runs"][m] = {"steps": steps, "seconds_incl_eval": time.perf_counter() - t0, "rows": rows,
                                "k_within_half_nat": conv,
                                **{k: met.get(k) for k in ("log_z2", "log_z2_se", "nll_pstar", "nll_pstar_se",
                                                           "nll_is", "nll_is_se", "nll_iwae", "nll_iwae_se",
                                                           "clf_fd")}}
            entry["runs"][m]["grids"] = save_grids(res.method, m, data, out / "grids")
            print(f"{data} {m}: {steps} steps, {entry['runs'][m]['seconds_incl_eval']:.0f} s", flush=True)
            (out / "results.json").write_text(json.dumps(report | {"data": {**report["data"], data: entry}},
                                                         indent=1, default=float))
        report["data"][data] = entry
    report["wall_s"] = time.perf_counter() - t_all
    report["load_end"] = os.getloadavg()[0]
    (out / "results.json").write_text(json.dumps(report, indent=1, default=float))
    (out / "results.md").write_text(markdown(report))
    print(markdown(report))


def _f(v, nd=2):
    return "–" if v is None else f"{v:.{nd}f}"


def markdown(r: dict) -> str:
    lines = ["# BiHM, RWS and the VAE on binary images", "",
             f"Command: `{r['command']}`; machine: {r['machine']}; load average {r['load_start']:.2f} at the start, "
             f"{r.get('load_end', float('nan')):.2f} at the end; wall time {r.get('wall_s', float('nan')):.0f} s.", "",
             "Nats per test image (first N test images of the fixed binarisation). log p*: BiHM's model, "
             "2 log p̃* − log Z² (Z² ± its s.e.); IS log p: the top-down model p by importance sampling with q; "
             "VAE: the IWAE bound L_K. Every K-sample estimate is a stochastic lower bound of its limit.", ""]
    for data, e in r["data"].items():
        lines += [f"## {data}: {e['budget_s']:.0f} s of training per method", "",
                  "| method | steps | steps/s | test log p* (K=10⁴) | 2 log p̃* (K=10⁴) | IS log p (K=10⁴) | "
                  "IWAE L_10⁴ | log Z² ± s.e. | clf_fd |", "|---|---|---|---|---|---|---|---|---|"]
        for m, run in e["runs"].items():
            rows = run["rows"]
            get = lambda n: rows.get(n, {}).get(max(KS)) if n in rows else None  # noqa: E731
            z2 = f"{run['log_z2']:.3f} ± {run['log_z2_se']:.3f}" if run.get("log_z2") is not None else "–"
            lines.append(f"| {m} | {run['steps']} | {e['rates'][m]:.1f} | {_f(get('log_pstar'))} | "
                         f"{_f(get('two_log_pt'))} | {_f(get('log_p'))} | {_f(get('iwae'))} | {z2} | "
                         f"{_f(run.get('clf_fd'), 1)} |")
        lines += ["", "Convergence in K (mean over the test images):", "",
                  "| method | estimate | " + " | ".join(f"K={k}" for k in KS) + " | smallest K within 0.5 nats of K=10⁴ |",
                  "|---|---|" + "---|" * len(KS) + "---|"]
        for m, run in e["runs"].items():
            for name, vals in run["rows"].items():
                digits = 3 if name.startswith("ess") else 2
                lines.append(f"| {m} | {name} | " + " | ".join(_f(vals.get(k) if k in vals else vals.get(str(k)),
                                                                   digits) for k in KS)
                             + f" | {run['k_within_half_nat'].get(name, '–') if not name.startswith('ess') else ''} |")
        lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
