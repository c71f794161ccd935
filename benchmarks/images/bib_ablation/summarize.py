"""The BiB ablation's table from its bench directory: per setting and seed, the modes at the end, and the largest
|energy| of real and generated samples logged during training (a drifting energy runs to 10³–10⁵; a bounded one
stays within a few units), then the mean ± sd per setting; energy.json beside this script holds log10 of each run's
largest |energy| per setting (by seed), which the claim `bib-r1-ablation-energy-bounded` reads.

    python benchmarks/images/bib_ablation/summarize.py OUT > benchmarks/images/bib_ablation/results.md
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path


def main() -> None:
    out = Path(sys.argv[1])
    rep = json.loads((out / "results.json").read_text())
    rows: dict[str, dict[int, dict[str, float]]] = {}
    for r in rep["runs"]:
        label = f"{r['method']} {r.get('setting', '').split('=', 1)[-1]}"
        d = out / "runs" / f"{r['method']}-{r['data']}-g{0 if r['method'] == 'bib_onesided' else _g(r)}-s{r['seed']}"
        lines = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines() if x.strip()]
        energies = [abs(x[k]) for x in lines if x.get("kind") == "train" for k in ("energy_real", "energy_fake")
                    if isinstance(x.get(k), (int, float))]
        rows.setdefault(label, {})[r["seed"]] = {"modes": r["metrics"]["modes"], "max_abs_energy": max(energies),
                                                 "steps": r.get("steps_run"), "clf_fd": r["metrics"]["clf_fd"]}
    print(f"# BiB ablation on stacked Fashion-MNIST\n\nCommand: `{rep['command']}`; {rep['meta']['machine']}, torch "
          f"{rep['meta']['torch']}; wall {rep['meta']['wall_s']:.0f} s, {rep['meta']['jobs']} runs at a time.\n")
    print("| setting | seed | steps | modes | classifier FD | max \\|energy\\| in training |\n|---|---|---|---|---|---|")
    for label, seeds in rows.items():
        for s, v in sorted(seeds.items()):
            print(f"| {label} | {s} | {v['steps']} | {v['modes']} | {v['clf_fd']:.0f} | {v['max_abs_energy']:.3g} |")
    print("\n| setting | modes (mean ± sd) | max \\|energy\\| (median) |\n|---|---|---|")
    for label, seeds in rows.items():
        m = [v["modes"] for v in seeds.values()]
        e = [v["max_abs_energy"] for v in seeds.values()]
        print(f"| {label} | {statistics.mean(m):.0f} ± {statistics.stdev(m) if len(m) > 1 else 0:.0f} | "
              f"{statistics.median(e):.3g} |")
    print("\n```json\n" + json.dumps({k: {str(s): v for s, v in d.items()} for k, d in rows.items()}) + "\n```")
    energy = {k: [round(math.log10(v["max_abs_energy"]), 4) for _, v in sorted(d.items())] for k, d in rows.items()}
    (Path(__file__).parent / "energy.json").write_text(json.dumps(energy, indent=1) + "\n")


def _g(r: dict) -> int:
    return 0 if "100" in r.get("setting", "") else 1


if __name__ == "__main__":
    main()
