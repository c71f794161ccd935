"""A bench's tables: runs aggregated into mean ± std over seeds, beside the real-data row, the noise floor of 2D
data and rows recalled from papers; as plain cells (``table``: for results.md and the HTML report alike) and as
Markdown (``markdown``). The HTML report (``ebmlab.report``) reads a written report's tables through
:func:`report_tables`.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from ..errors import EbmlabError
from ..metrics.registry import is_bookkeeping


# what each run cost, beside its results (ebmlab.budget): wall time of the whole run, steps it trained, seconds of its
# training loop, samples passed forward through its networks in training
RUN_COLUMNS = ("seconds", "steps_run", "train_s", "cpu_s", "evals")

RUN_HEADERS = {"seconds": "seconds", "steps_run": "steps", "train_s": "train s", "cpu_s": "train cpu s",
               "evals": "net evals"}

def _mean_std(vals: list[float]) -> tuple[float, float] | None:
    vals = [v for v in vals if v is not None and math.isfinite(v)]
    if not vals:
        return None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)

def aggregate(results: list[dict[str, Any]], by_setting: bool = False) -> list[dict[str, Any]]:
    rows = []
    key_of = (lambda r: (r["method"], r["data"], r.get("setting", ""))) if by_setting else \
        (lambda r: (r["method"], r["data"]))
    keys = sorted(dict.fromkeys(key_of(r) for r in results), key=lambda k: (k[1], k[0]))  # settings in grid order
    for key in keys:
        rs = [r for r in results if key_of(r) == key]
        ok = [r for r in rs if r["status"] == "ok"]
        row: dict[str, Any] = {"method": key[0], "data": key[1], "runs": len(rs),
                               "diverged": sum(r["status"] == "diverged" for r in rs), "ok": len(ok)}
        partly = [(r["seed"], 1 - r["metrics"]["frac_finite"]) for r in ok
                  if isinstance(r["metrics"].get("frac_finite"), (int, float)) and r["metrics"]["frac_finite"] < 1]
        if partly:  # their distances are over the finite samples only: said under the table (nonfinite_notes)
            row["nonfinite"] = partly
        if by_setting:
            row["setting"] = key[2]
        elif len({r.get("setting", "") for r in rs}) > 1:  # a mean over different settings is not a seed mean
            row["pooled_settings"] = len({r.get("setting", "") for r in rs})
        names = dict.fromkeys(k for r in ok for k, v in r["metrics"].items()
                              if isinstance(v, (int, float)) and not isinstance(v, bool) and not is_bookkeeping(k, v))
        for c in [*names, *RUN_COLUMNS]:
            vals = [r.get(c) for r in ok] if c in RUN_COLUMNS else \
                [r["metrics"].get(c) for r in ok if c in r["metrics"]]
            ms = _mean_std(vals)
            if ms is not None:
                n = sum(v is not None and math.isfinite(v) for v in vals)
                row[c] = {"mean": ms[0], "std": ms[1], "n": n}
        rows.append(row)
    return rows

def nonfinite_notes(rows: list[dict[str, Any]]) -> list[str]:
    """One line per row with runs whose samples were not all finite (NaN or ±inf): their distances and feature
    metrics are over the finite samples only, so the row's numbers would otherwise overstate them."""
    from ..present import NONFINITE_MEANING

    out = []
    for r in rows:
        if r.get("nonfinite"):
            runs = ", ".join(f"seed {seed}: {share:.1%}" for seed, share in r["nonfinite"])
            where = f"{r['method']} on {r['data']}" + (f" ({r['setting']})" if r.get("setting") else "")
            out.append(f"{where}: samples not all finite ({runs} of its samples NaN or ±inf); in those runs "
                       f"{NONFINITE_MEANING}")
    return out

def _fmt(cell: Any, col: str, of: int | None = None) -> str:
    """A table cell; ``of``: the row's finished runs — a mean over fewer of them (an exact NLL that some runs could
    not certify) says over how many, e.g. ``17.5 ± 5.7 (4 of 5)``."""
    if cell is None:
        return "–"
    if isinstance(cell, dict) and of is not None and cell.get("n", of) < of:
        return f"{_fmt(cell, col)} ({cell['n']} of {of})"
    from ..present import scale as unit_scale

    scale = unit_scale(col)  # the same display units as `ebmlab train`/`eval` (hq, precision, ... in %)
    if isinstance(cell, dict):
        if cell.get("n", 2) < 2:  # one run: no spread to show
            return f"{cell['mean'] * scale:.3g}"
        return f"{cell['mean'] * scale:.3g} ± {cell['std'] * scale:.2g}"
    return f"{cell * scale:.3g}"

NOTE = {
    "toy": "Mean ± std over training seeds; `seconds` is the wall time of one run (training + final evaluation); "
           "`steps`, `train s`, `train cpu s` and `net evals` the steps it trained, its training loop's wall and "
           "CPU seconds (all its threads: the compute it used, whatever ran beside it) and the samples passed "
           "forward through its networks in training (ebmlab.budget). "
           "Sample metrics on {n} samples against the fixed test split. The `real data` row uses fresh "
           "exact samples (the ceiling; its nll is the true entropy, the floor).",
    "images": "Mean ± std over training seeds; `seconds` is the wall time of one run (training + final evaluation); "
              "`steps`, `train s`, `train cpu s` and `net evals` the steps it trained, its training loop's wall and "
              "CPU seconds (all its threads: the compute it used, whatever ran beside it) and the samples passed "
              "forward through its networks in training (ebmlab.budget). "
              "The `real data` row uses real train images at the same count (for stacked modes: the 26,000 stacked "
              "test triples, so the classifier's own errors are in the ceiling).",
}

def column_notes(cols: list[str]) -> str:
    """What each column is, from the metadata declared beside each metric."""
    from ..metrics.registry import spec

    parts = [f"{c}: {m.meaning}" for c in cols if c not in RUN_COLUMNS and (m := spec(c)) is not None]
    return "Columns — " + "; ".join(parts) + ".\n" if parts else ""

def load_recalled(path: str | Path | None) -> dict[str, list[tuple[str, dict[str, float]]]]:
    """Rows recalled from papers, from a TOML file: one array of tables per data set, each with ``name`` and metric
    values (``benchmarks/recalled.toml``); shown in italics and labelled as recalled."""
    if path is None:
        return {}
    from ..config import load_toml

    out: dict[str, list[tuple[str, dict[str, float]]]] = {}
    for data, rows in load_toml(path).items():
        if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("name"), str) for r in rows):
            raise EbmlabError(f"{path}: [{data}] must be an array of tables with a name and metric values "
                              f"([[{data}]] name = \"...\" modes = ...)")
        out[data] = [(r["name"], {k: v for k, v in r.items() if k != "name"}) for r in rows]
    return out

def header(col: str) -> str:
    from ..present import header as metric_header

    return RUN_HEADERS.get(col) or metric_header(col)

def table_columns(rows: list[dict[str, Any]]) -> list[str]:
    """The declared table columns found in the rows (``metadata.Metric.column``), then the budget used."""
    from ..metrics.registry import columns

    return [*columns({k for r in rows for k in r}), *RUN_COLUMNS]

def markdown(rows: list[dict[str, Any]], reference: dict[str, dict[str, Any]], command: str, meta: dict,
             suite: str = "toy", recalled: dict[str, list[tuple[str, dict[str, float]]]] | None = None,
             floors: dict[str, dict[str, Any]] | None = None, rendered: dict[str, Any] | None = None,
             eval_samples: int | None = None) -> str:
    """results.md: per data set the real-data row (the ceiling), the noise-floor row where the data's kind has
    one (``floors``: uniform noise on a 2D set's box), the methods' rows, and rows recalled from papers;
    ``rendered``: the table was written again from recorded runs (:func:`render`), said under the command."""
    from ..metrics.evaluators import FLOOR_DRAWS
    from ..present import FLOOR_MEANING

    recalled = recalled or {}
    floors = floors or {}
    floor_note = (f"The `uniform noise (floor)` row: {FLOOR_MEANING} (mode metrics: the mean of {FLOOR_DRAWS} "
                  f"draws). " if floors else "")
    cols = [c for c in table_columns(rows) if any(c in r for r in rows)]
    head, body = table(rows, reference, recalled, floors)
    title = "Toy benchmark" if suite == "toy" else "Image benchmark"
    again = (f"Table written again on {rendered['date']} from the runs recorded in results.json by `{rendered['by']}` "
             f"(ebmlab {rendered['version']}): the same runs and numbers, in that version's table (rows, columns, "
             f"notes{', the noise floor' if floors else ''}).\n" if rendered else "")
    lines = [f"# {title}\n\nCommand: `{command}`\n", *([again] if again else []),
             f"Machine: {meta['machine']}; torch {meta['torch']}; wall time {meta['wall_s']:.0f} s; "
             + ("one run at a time" if meta["jobs"] == 1 else f"{meta['jobs']} runs in parallel"
                if isinstance(meta["jobs"], int) else str(meta["jobs"])) + ".\n",  # collect: "k parts of n (...)"
             NOTE.get(suite, NOTE["toy"]).replace("{n}", str(eval_samples or "eval_samples")) + " " + floor_note
             + column_notes(cols)
             + ("Rows in italics are recalled from papers, not re-checked.\n" if recalled else ""),
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    mark = {"real": "**{}**", "floor": "*{}*", "recalled": "*{}*", "run": "{}"}
    for kind, cells in body:
        lines.append("| " + " | ".join([cells[0], mark[kind].format(cells[1]), *cells[2:]]) + " |")
    lines += [f"\nNote — {n}." for n in nonfinite_notes(rows)]
    return "\n".join(lines) + "\n"

Table = tuple[list[str], list[tuple[str, list[str]]]]

def table(rows: list[dict[str, Any]], reference: dict[str, dict[str, Any]],
          recalled: dict[str, list[tuple[str, dict[str, float]]]] | None = None,
          floors: dict[str, dict[str, Any]] | None = None) -> Table:
    """The results table as plain cells, for results.md and the HTML report alike: (header, body), each body row
    (kind, cells) with kind ``real`` (the real-data row), ``floor`` (uniform noise on a 2D set's box), ``run`` (a
    method's mean ± std over seeds) or ``recalled`` (a row recalled from a paper); per data set in that order."""
    recalled = recalled or {}
    floors = floors or {}
    cols = [c for c in table_columns(rows) if any(c in r for r in rows)]
    head = ["data", "method", "runs", "diverged"] + [header(c) for c in cols]
    body: list[tuple[str, list[str]]] = []

    def reference_row(kind: str, data: str, label: str, values: dict[str, Any]) -> None:
        body.append((kind, [data, label, "–", "–"] + [_fmt(values.get(c), c) for c in cols]))

    for data in sorted({r["data"] for r in rows}):
        reference_row("real", data, "real data", reference.get(data, {}))
        if data in floors:
            reference_row("floor", data, "uniform noise (floor)", floors[data])
        for r in rows:
            if r["data"] == data:
                name = r["method"] + (f" ({r['pooled_settings']} settings pooled: see per setting)"
                                      if r.get("pooled_settings") else "")
                body.append(("run", [data, name, str(r["runs"]), str(r["diverged"])]
                             + [_fmt(r.get(c), c, r.get("ok")) for c in cols]))
        for name, vals in recalled.get(data, []):
            reference_row("recalled", data, name, vals)
    return head, body

def settings_table(rows: list[dict[str, Any]]) -> Table:
    """The per-setting table of a grid benchmark (mean ± std over seeds), as :func:`table`'s ``run`` rows."""
    cols = [c for c in table_columns(rows) if any(c in r for r in rows)]
    head = ["data", "method", "setting", "runs", "diverged"] + [header(c) for c in cols]
    return head, [("run", [r["data"], r["method"], r["setting"], str(r["runs"]), str(r["diverged"])]
                   + [_fmt(r.get(c), c, r.get("ok")) for c in cols]) for r in rows]

def markdown_settings(rows: list[dict[str, Any]]) -> str:
    """The per-setting table of a grid benchmark (mean ± std over seeds)."""
    head, body = settings_table(rows)
    lines = ["\n## Per setting\n", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cells) + " |" for _, cells in body]
    return "\n".join(lines) + "\n"

def report_tables(rep: dict[str, Any], f: Path | str = "results.json") -> tuple[list[tuple[str, Table]], list[str]]:
    """The tables of a written report (results.json) as :func:`table` gives them — the main table, and for a grid
    the per-setting table — and the notes under them (:func:`nonfinite_notes`). Its rows are aggregated again from
    its runs (so a report of an older version reads as this version's table); the reference, floor and recalled
    rows are the recorded ones."""
    runs = [r for r in rep.get("runs", []) if isinstance(r, dict)]
    rows = aggregate(runs)
    out = [("Results", table(rows, rep.get("reference_real_data") or {},
                             _recalled_from_report(rep.get("recalled"), Path(f)), rep.get("reference_noise") or {}))]
    if rep.get("grid") is not None:
        out.append(("Per setting", settings_table(aggregate(runs, by_setting=True))))
    return out, nonfinite_notes(rows)

def _recalled_from_report(rec: Any, f: Path) -> dict[str, list[tuple[str, dict[str, float]]]]:
    """The recalled rows a report kept: ``[name, {metric: value}]`` per row, or in reports written before recalled
    rows came from a file, ``[name, modes, hq]``."""
    out: dict[str, list[tuple[str, dict[str, float]]]] = {}
    for data, rows in (rec or {}).items():
        out[data] = []
        for r in rows if isinstance(rows, list) else [None]:
            if isinstance(r, list) and len(r) == 2 and isinstance(r[0], str) and isinstance(r[1], dict):
                out[data].append((r[0], r[1]))
            elif isinstance(r, list) and len(r) == 3 and isinstance(r[0], str) and all(
                    isinstance(v, (int, float)) for v in r[1:]):
                out[data].append((r[0], {"modes": r[1], "hq": r[2]}))
            else:
                raise EbmlabError(f"{f}: recalled rows of {data!r} are not [name, {{metric: value}}] lists ({r!r}); "
                                  f"the report was edited or is not an ebmlab bench report")
    return out

def classifiers_used(results: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The domain classifier (``clf_sha256``) that scored each finished run: sha → ["method (setting) seeds
    0, 2", ...], a setting named only where a method has several."""
    groups: dict[str, dict[str, list[str]]] = {}
    several = {m for m in {r["method"] for r in results}
               if len({r.get("setting", "") for r in results if r["method"] == m}) > 1}
    for r in results:
        sha = (r.get("metrics") or {}).get("clf_sha256") if r.get("status") == "ok" else None
        if sha:
            who = r["method"] + (f" ({r.get('setting', '')})" if r["method"] in several else "")
            groups.setdefault(str(sha), {}).setdefault(who, []).append(str(r["seed"]))
    return {sha: [f"{who} seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)}" for who, seeds in g.items()]
            for sha, g in groups.items()}
