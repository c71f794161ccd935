"""BiB on stacked Fashion-MNIST over a long run: modes and energies along training, from the runs' metrics logs.

    python benchmarks/images/bib_long/collect.py benchmarks/images/bib_long/runs/* --out benchmarks/images/bib_long

Each run was trained with ``eval_every`` (the evaluations along training, 26,000 samples for the modes) and
``log_every`` (the energies of each logged batch). Writes OUT/results.md (one table per run: at every evaluation,
the modes and sample metrics, and the range of E(real) and E(fake) over the logged batches since the previous
evaluation) and OUT/curves.png (energies and modes against steps, one colour per run).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def read(run: Path) -> tuple[dict, list[dict], list[dict]]:
    cfg = json.loads((run / "config.json").read_text())
    recs = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if ln.endswith("}")]
    return cfg, [r for r in recs if r["kind"] == "train"], [r for r in recs if r["kind"] == "eval"]


def label(cfg: dict) -> str:
    mc = cfg["method_config"]
    return (f"{cfg['method']} seed {cfg['run']['seed']}, data_gp_weight = {mc.get('data_gp_weight', 0)}, "
            f"lr_e = {mc.get('lr_e', mc.get('lr_energy', '?'))}")


def table(cfg: dict, train: list[dict], evals: list[dict]) -> list[str]:
    out = [f"### {label(cfg)} ({cfg['run']['steps']} steps, evaluated every {cfg['run']['eval_every']})", "",
           "| step | modes ↑ | modes in data ↑ | mode KL ↓ | clf FD ↓ | precision (%) | recall (%) | "
           "E(real) range since last | E(fake) range since last | E(fake) − E(real), last logged |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    prev = 0
    for e in evals:
        window = [t for t in train if prev < t["step"] <= e["step"]]
        prev = e["step"]
        er = [t["energy_real"] for t in window]
        ef = [t["energy_fake"] for t in window]
        gap = window[-1]["energy_fake"] - window[-1]["energy_real"] if window else math.nan
        rng = (lambda v: f"[{min(v):.3g}, {max(v):.3g}]" if v else "–")
        out.append(f"| {e['step']} | {e.get('modes', '–')} | {e.get('modes_in_data', '–')} | "
                   f"{e.get('mode_kl', math.nan):.2f} | {e.get('clf_fd', math.nan):.0f} | "
                   f"{100 * e.get('clf_precision', math.nan):.1f} | {100 * e.get('clf_recall', math.nan):.1f} | "
                   f"{rng(er)} | {rng(ef)} | {gap:.3g} |")
    return out + [""]


def plot(runs: list[tuple[dict, list[dict], list[dict]]], dest: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (cfg, train, evals) in enumerate(runs):
        c = f"C{i}"
        s = [t["step"] for t in train]
        a1.plot(s, [t["energy_real"] for t in train], color=c, label=f"E(real), {label(cfg)}")
        a1.plot(s, [t["energy_fake"] for t in train], color=c, ls="--", label="E(fake)")
        a2.plot([e["step"] for e in evals], [e.get("modes") for e in evals], "o-", color=c, label=label(cfg))
    a1.set_xlabel("step")
    a1.set_ylabel("energy of the logged batch")
    if max(abs(t[k]) for _, train, _ in runs for t in train for k in ("energy_real", "energy_fake")) > 100:
        a1.set_yscale("symlog")  # a drifting energy spans decades
    a1.legend(fontsize=6)
    a2.set_xlabel("step")
    a2.set_ylabel("modes of 1000 (26,000 samples)")
    a2.set_ylim(0, 1000)
    a2.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(dest, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--command", default="", help="the training commands, for the file")
    a = p.parse_args()
    runs = [read(r) for r in a.runs]
    lines = ["# BiB on stacked Fashion-MNIST along a long run", ""]
    if a.command:
        lines += ["```bash", a.command, "```", ""]
    for r in runs:
        lines += table(*r)
    (a.out / "results.md").write_text("\n".join(lines))
    plot(runs, a.out / "curves.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
