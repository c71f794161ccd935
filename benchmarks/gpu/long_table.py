"""The long stacked-Fashion runs of ``on_device.sh long`` as markdown: per method, its evaluations over training
(modes, mode KL, classifier FD, precision, recall) and the steps and loop time its session reached.

    python benchmarks/gpu/long_table.py long.tar.gz [--out long.md]

Reads each run's ``metrics.jsonl`` (the ``eval`` records: one every ``eval_every`` steps and the final one) and
``run.json`` (steps, the loop's seconds, the device, whether graphs were replayed) from the archive, without
unpacking it. The runs shared one GPU, so their rates are not speed measurements (``speed.py`` measures those).
"""

from __future__ import annotations

import argparse
import json
import tarfile
from pathlib import Path

KEYS = ("modes", "mode_kl", "clf_fd", "clf_precision", "clf_recall")
PERCENT = ("clf_precision", "clf_recall")  # fractions, shown in %


def read(archive: Path) -> dict[str, dict]:
    runs: dict[str, dict] = {}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if len(parts) != 3 or parts[2] not in ("metrics.jsonl", "run.json") or not member.isfile():
                continue
            fh = tar.extractfile(member)
            assert fh is not None
            text = fh.read().decode()
            rec = runs.setdefault(parts[1], {})
            if parts[2] == "run.json":
                rec["run"] = json.loads(text)
            else:
                rec["evals"] = [r for r in map(json.loads, text.splitlines()) if r.get("kind") == "eval"]
    return runs


def fmt(v, key: str = "") -> str:
    if v is None:
        return "–"
    if key in PERCENT:
        return f"{100 * v:.1f} %"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def table(runs: dict[str, dict]) -> str:
    lines = ["| method | steps | loop s | graphs | " + " | ".join(KEYS) + " (over training: step → value) |",
             "|---|---|---|---|" + "---|" * len(KEYS)]
    for name in sorted(runs):
        r = runs[name]
        sess = (r.get("run") or {}).get("sessions", [{}])[-1]
        g = sess.get("graphs") or {}
        gtxt = f"{g.get('replayed_steps', 0)} replayed" + (f" ({g['eager_because']})" if g.get("eager_because")
                                                            else "") if g else "off"
        evals = r.get("evals", [])
        cells = []
        for k in KEYS:
            pts = [(e["step"], e.get(k)) for e in evals if k in e]
            cells.append(", ".join(f"{s}: {fmt(v, k)}" for s, v in pts) or "–")
        lines.append(f"| {name} | {sess.get('end_step', '–')} | {fmt(sess.get('train_seconds'))} | {gtxt} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("archive", type=Path)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    text = table(read(a.archive))
    if a.out:
        a.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
