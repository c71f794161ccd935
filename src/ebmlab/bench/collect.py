"""Benches in parts and benches written again: ``ebmlab bench collect`` merges the parts of a sharded grid
(``--shard i/n``, one per job of a job array) into the table an unsharded run writes; ``ebmlab bench render``
writes a finished bench's table again from the runs its results.json recorded, in the installed version's
presentation: nothing is retrained or re-evaluated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import EbmlabError
from .run import write_report
from .tables import _recalled_from_report


def _check_part(part: Any, f: Path) -> None:
    """A part file's structure, checked before anything is merged: valid JSON is not enough."""
    fields = {"shard": list, "runs": list, "meta": dict, "suite": str, "datasets": list, "command": str}
    bad = [k for k, t in fields.items() if not isinstance(part, dict) or not isinstance(part.get(k), t)]
    if not bad:
        sh = part["shard"]
        if not (len(sh) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in sh)
                and 0 <= sh[0] < sh[1]):
            bad.append("shard (i, n with 0 ≤ i < n)")
        elif not isinstance(part["meta"].get("wall_s"), (int, float)):
            bad.append("meta.wall_s")
        elif not all(isinstance(r, dict) and {"method", "data", "seed", "status"} <= set(r) for r in part["runs"]):
            bad.append("runs (each with method, data, seed and status)")
    if bad:
        raise EbmlabError(f"{f} is valid JSON but not a bench part file (missing or malformed: {', '.join(bad)}); "
                          f"re-run that part with --shard, or remove the file")

def collect(out: str | Path) -> dict[str, Any]:
    """Merge ``OUT/parts/part-*-of-n.json`` (written by ``--shard i/n``) into OUT/results.md and results.json: the
    table an unsharded run of the same grid writes. Parts not yet written are listed under the table."""
    out = Path(out)
    files = sorted((out / "parts").glob("part-*-of-*.json"))
    if not files:
        raise EbmlabError(f"{out / 'parts'} holds no part files; run the grid with --shard i/n --out {out} first")
    parts = []
    for f in files:
        try:
            part = json.loads(f.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EbmlabError(f"{f} is not a readable part file ({exc}); re-run that part") from None
        _check_part(part, f)
        parts.append(part)
    first = parts[0]
    keys = ("suite", "datasets", "eval_samples", "grid", "runs_in_grid")
    for p, f in zip(parts, files):
        diff = [k for k in keys if p.get(k) != first.get(k)] + \
            (["number of parts"] if p["shard"][1] != first["shard"][1] else [])
        if diff:
            raise EbmlabError(f"{f} belongs to another grid than {files[0]} (they differ in {', '.join(diff)}); "
                              f"keep the parts of one grid in one directory")
    n = first["shard"][1]
    have = {p["shard"][0] for p in parts}
    missing = [f"part {i} of {n}" for i in range(n) if i not in have]
    # part i holds runs i, i + n, i + 2n, … of the grid: put them back in grid order (settings are listed in it)
    indexed = [(p["shard"][0] + j * n, r) for p in parts for j, r in enumerate(p["runs"])]
    results = [r for _, r in sorted(indexed, key=lambda t: t[0])]
    walls = [p["meta"]["wall_s"] for p in parts]
    meta = {**first["meta"], "wall_s": sum(walls), "jobs": f"{len(parts)} parts of {n} (wall time summed)"}
    return write_report(results, out, command=first["command"], meta=meta, suite=first["suite"],
                        datasets=first["datasets"], eval_samples=first["eval_samples"], grid=first["grid"],
                        runs_in_grid=first["runs_in_grid"], missing=missing, recalled=first.get("recalled"))

def render(out: str | Path) -> dict[str, Any]:
    """:func:`render_plan` then :func:`write_report` (see the former)."""
    return write_report(**render_plan(out))

def render_plan(out: str | Path) -> dict[str, Any]:
    """The arguments of :func:`write_report` that write OUT/results.md and results.json again from the runs
    recorded in OUT/results.json, in this version's table: its aggregation, columns and notes, and the noise-floor
    row of each 2D data set; the report is checked first (a bad one raises, nothing written). Nothing is trained or
    evaluated again: each run's metrics, the real-data rows and the recalled rows are the recorded ones (the
    real-data rows of image data come from the domain classifier the runs were scored by), so a table written
    before a presentation change can be read with it. The table says it was written again, when and by what."""
    import re
    from datetime import datetime, timezone

    from .. import __version__
    from ..data import DATASETS

    out = Path(out)
    f = out / "results.json"
    try:
        rep = json.loads(f.read_text())
    except FileNotFoundError:
        raise EbmlabError(f"{f} does not exist; `ebmlab bench render DIR` takes the --out directory of a finished "
                          f"bench (one holding results.json)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EbmlabError(f"{f} is not a readable bench report ({exc}); run the bench again, or restore the file "
                          f"from version control") from None
    fields = {"command": str, "meta": dict, "runs": list, "reference_real_data": dict}
    bad = [k for k, t in fields.items() if not isinstance(rep, dict) or not isinstance(rep.get(k), t)]
    if not bad:
        if not all(isinstance(r, dict) and {"method", "data", "seed", "status"} <= set(r)
                   and (r["status"] != "ok" or isinstance(r.get("metrics"), dict)) for r in rep["runs"]) \
                or not rep["runs"]:
            bad.append("runs (each with method, data, seed, status and a finished run's metrics)")
        if not (isinstance(rep["meta"].get("wall_s"), (int, float)) and {"machine", "torch", "jobs"} <= set(rep["meta"])):
            bad.append("meta (machine, torch, wall_s, jobs)")
        bad += [k for k, t in (("grid", dict), ("missing", list), ("datasets", list))
                if rep.get(k) is not None and not isinstance(rep[k], t)]
    if bad:
        raise EbmlabError(f"{f} is valid JSON but not an ebmlab bench report (missing or malformed: {', '.join(bad)}); "
                          f"run the bench again, or restore the file from version control")
    runs = rep["runs"]
    datasets = rep.get("datasets") or list(dict.fromkeys(r["data"] for r in runs))
    command = rep["command"]
    suite = rep.get("suite")
    if suite not in ("toy", "images"):  # reports written before the suite was kept: the command's, else the data's
        m = re.search(r"\bbench (toy|images)\b", command)
        suite = m.group(1) if m else ("toy" if all(d in DATASETS.own() for d in datasets) else "images")
    eval_samples = rep.get("eval_samples")
    if not isinstance(eval_samples, int) or isinstance(eval_samples, bool):
        # before the count was kept: the command's eval_samples= (the last one given), else the default it ran with
        from ..config import RunConfig

        given = re.findall(r"\beval_samples=(\d+)", command)
        eval_samples = int(given[-1]) if given else RunConfig().eval_samples
    if suite == "toy":  # the floor is computed from the data set: it must still be there
        from ..data import get_dataset

        for d in datasets:
            get_dataset(d)
    rendered = {"by": f"ebmlab bench render {out}", "version": __version__,
                "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")}
    return dict(results=runs, out=out, command=command, meta=rep["meta"], suite=suite, datasets=datasets,
                eval_samples=eval_samples, grid=rep.get("grid"), missing=rep.get("missing"),
                reference=rep["reference_real_data"], recalled_rows=_recalled_from_report(rep.get("recalled"), f),
                rendered=rendered)
