"""Table of the EBGAN-LN runs written by run.sh: test error of the clean ladder per setting and label count,
mean ± std over the 3 label subsets (each its own seed), steps, training seconds, and the paired difference
(EBGAN-LN − ladder on the same labelled subset).

    python benchmarks/ebgan_ln/collect.py OUTDIR
"""

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

out = Path(sys.argv[1])
rows: dict[tuple[str, int], dict[int, dict]] = defaultdict(dict)
for s in sorted(out.glob("*/summary.json")):
    setting, rest = s.parent.name.split("-l")
    labels, seed = (int(v) for v in rest.split("-s"))
    m = json.loads(s.read_text())["metrics"]
    sess = json.loads((s.parent / "run.json").read_text())["sessions"]
    rows[(setting, labels)][seed] = {"err": m["test_error"], "steps": sess[-1]["end_step"],
                                     "train_s": sum(x.get("train_seconds", 0) for x in sess),
                                     "fd": m.get("clf_fd"), "score": m.get("clf_score")}


def ms(v, scale=1.0, fmt=".2f"):
    v = scale * np.asarray(v, dtype=float)
    return f"{v.mean():{fmt}} ± {v.std(ddof=1) if len(v) > 1 else 0:{fmt}}"


print("| setting | labels | seeds | test error % (mean ± std) | per seed | steps | train s per run | "
      "samples: clf_fd / clf_score |")
print("|---|---|---|---|---|---|---|---|")
for (setting, labels), rs in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    seeds = sorted(rs)
    e = [rs[s]["err"] for s in seeds]
    samp = "–" if setting != "ebgan_ln" else f"{ms([rs[s]['fd'] for s in seeds], fmt='.0f')} / " \
                                             f"{ms([rs[s]['score'] for s in seeds])}"
    print(f"| {setting} | {labels} | {len(seeds)} | {ms(e, 100)} | {', '.join(f'{100 * v:.2f}' for v in e)} | "
          f"{ms([rs[s]['steps'] for s in seeds], fmt='.0f')} | {ms([rs[s]['train_s'] for s in seeds], fmt='.0f')} | "
          f"{samp} |")
print()
for labels in sorted({k[1] for k in rows}):
    a, b = rows.get(("ebgan_ln", labels), {}), rows.get(("ln", labels), {})
    common = sorted(set(a) & set(b))
    if common:
        d = [100 * (a[s]["err"] - b[s]["err"]) for s in common]
        print(f"- {labels} labels, EBGAN-LN − ladder at equal steps, paired by labelled subset: "
              f"{', '.join(f'{v:+.2f}' for v in d)} points (mean {np.mean(d):+.2f})")
    c = rows.get(("ln_time", labels), {})
    common = sorted(set(a) & set(c))
    if common:
        d = [100 * (a[s]["err"] - c[s]["err"]) for s in common]
        print(f"- {labels} labels, EBGAN-LN − ladder at equal wall time: {', '.join(f'{v:+.2f}' for v in d)} points "
              f"(mean {np.mean(d):+.2f})")

# the adversarial term over training: mean over seeds of the real and generated images' denoising cost (the energy)
# and of the fraction of generated images inside the margin (where the hinge pushes them up)
print()
print("| setting | labels | step | margin | energy of real images | energy of generated images | hinge active |")
print("|---|---|---|---|---|---|---|")
for (setting, labels) in sorted(rows, key=lambda k: (k[1], k[0])):
    if not setting.startswith("ebgan_ln"):
        continue
    logs = defaultdict(list)
    for d in sorted(out.glob(f"{setting}-l{labels}-s*")):
        for line in (d / "metrics.jsonl").read_text().splitlines():
            r = json.loads(line)
            if r["kind"] == "train" and r["step"] % 500 == 0 and "energy_fake" in r:
                logs[r["step"]].append(r)
    for step, rs in sorted(logs.items()):
        print(f"| {setting} | {labels} | {step} | {np.mean([r['margin'] for r in rs]):.1f} | "
              f"{np.mean([r['energy_real'] for r in rs]):.1f} | {np.mean([r['energy_fake'] for r in rs]):.1f} | "
              f"{100 * np.mean([r['hinge_active'] for r in rs]):.0f} % |")
