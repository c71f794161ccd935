"""``ebmlab bench toy``: a grid of (method, data set, seed) runs and a results table with mean ± std.

Each run trains into ``OUT/runs/<method>-<data>-s<seed>`` (so an interrupted benchmark resumes where it
stopped). With ``--grid FILE`` (a TOML table mapping option names to lists of values; a key naming several
options separated by commas sets them all to the same value; ``"METHOD:option"`` names an option of that method
only; a key whose values are tables, ``"gan:budget" = [{steps = 6000}, {n_critic = 5, steps = 1500}]``, is an
axis of *points*, each table's options set together, so that options can move jointly rather than as a product)
the cartesian product of the axes a method has is run for each method — axes naming none of its options
are skipped for it — into
``OUT/runs/<method>-<data>-g<setting>-s<seed>``, and the report adds a per-setting table. The table puts every method beside the real-data row (exact samples: the ceiling for sample
metrics, the true entropy as the NLL floor) and the reference rows recalled from papers, labelled as recalled.
Ctrl-C stops a bench: each running run finishes its step and saves a checkpoint there, and no queued run starts;
the same command resumes. The runs go seed by seed (every method and setting at seed 0, then at seed 1, …), so that a bench stopped part of
the way has each method at its first seeds rather than some methods at every seed and others at none.
``ebmlab bench render OUT`` writes a finished bench's table again from the runs its results.json recorded, in the
installed version's presentation (:func:`render`): nothing is retrained or re-evaluated.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from .errors import DivergenceError, EbmlabError
from .metrics.registry import is_bookkeeping


_INTERRUPTED = False  # a worker process whose run was interrupted (Ctrl-C) starts no further run


def _one(args: tuple[str, str, int, dict[str, Any], str]) -> dict[str, Any]:
    global _INTERRUPTED
    method, data, seed, overrides, out = args
    if _INTERRUPTED:  # a run already queued to this worker when the signal came: not started
        raise KeyboardInterrupt("an earlier run of this worker was interrupted")
    import torch

    torch.set_num_threads(1)
    from .trainer import train

    t0 = time.perf_counter()
    try:
        res = train(method, data, out=out, overrides={**overrides, "seed": seed}, progress=False)
        seconds = time.perf_counter() - t0
        if res.resumed_from > 0:  # reused or resumed: the wall time of all its sessions, from its run record
            seconds = _recorded_seconds(out)
        used = res.summary.get("budget") or {}
        return {"method": method, "data": data, "seed": seed, "status": "ok", "metrics": res.summary["metrics"],
                "seconds": seconds, "steps_run": used.get("steps"), "train_s": res.train_seconds,
                "cpu_s": res.train_cpu_seconds,
                "evals": used.get("net_evals_total")}
    except DivergenceError as exc:
        return {"method": method, "data": data, "seed": seed, "status": "diverged", "error": str(exc),
                "seconds": time.perf_counter() - t0}
    except KeyboardInterrupt:
        _INTERRUPTED = True
        raise


def _recorded_seconds(out: str | Path) -> float | None:
    """Wall time of a run summed over the sessions of its run.json; None when that is unknown: a run written before
    run records existed (its first recorded session does not start at step 0) or one with a killed session."""
    from datetime import datetime

    try:
        sessions = json.loads((Path(out) / "run.json").read_text())["sessions"]
        if not sessions or sessions[0]["start_step"] != 0 or any("ended" not in s for s in sessions):
            return None
        total = sum((datetime.strptime(s["ended"], "%Y-%m-%dT%H:%M:%S%z")
                     - datetime.strptime(s["started"], "%Y-%m-%dT%H:%M:%S%z")).total_seconds()
                    for s in sessions)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return total


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
    from .present import NONFINITE_MEANING

    out = []
    for r in rows:
        if r.get("nonfinite"):
            runs = ", ".join(f"seed {seed}: {share:.1%}" for seed, share in r["nonfinite"])
            where = f"{r['method']} on {r['data']}" + (f" ({r['setting']})" if r.get("setting") else "")
            out.append(f"{where}: samples not all finite ({runs} of its samples NaN or ±inf); in those runs "
                       f"{NONFINITE_MEANING}")
    return out


def load_grid(path: str | Path) -> dict[str, list[Any]]:
    """The grid file: option name (or comma-separated names set together) → non-empty list of values."""
    from .config import load_toml

    grid = load_toml(path)
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise EbmlabError(f"grid file {path}: {key!r} must map to a non-empty list of values, got {values!r}")
        tables = [isinstance(v, dict) for v in values]
        if any(tables) and not (all(tables) and all(values) and "," not in key):
            raise EbmlabError(f"grid file {path}: {key!r} mixes tables of options with plain values (or names several "
                              f"options, or has an empty table); an axis of points is one name mapping to a list "
                              f"of non-empty tables, e.g. \"gan:budget\" = [{{steps = 600}}, {{n_critic = 5, steps = 150}}]")
    return grid


def _axis_names(key: str, values: list[Any]) -> list[str]:
    """The (possibly method-scoped) option names an axis sets: the comma-separated key, or for an axis of points
    (tables of options) every option its tables name, under the key's scope."""
    if values and isinstance(values[0], dict):
        scope, _ = _scoped(key)
        opts = dict.fromkeys(k for v in values for k in v)
        return [f"{scope}:{k}" if scope else k for k in opts]
    return [n.strip() for n in key.split(",") if n.strip()]


def grid_settings(grid: dict[str, list[Any]], method: str) -> list[tuple[str, dict[str, Any]]]:
    """(label, overrides) for each point of the product of the grid axes that ``method`` has options for."""
    from .config import RunConfig, field_types
    from .methods import get_method

    known = set(field_types(RunConfig)) | set(field_types(get_method(method).Config))
    axes = []
    for key, values in grid.items():
        if isinstance(values[0], dict):  # an axis of points: applies when every option it sets is the method's
            scope, _ = _scoped(key)
            if scope in (None, method) and all(k in known for v in values for k in v):
                axes.append((key, None, values))
            continue
        names = [opt for scope, opt in map(_scoped, key.split(",")) if opt and scope in (None, method) and opt in known]
        if names:
            axes.append((key, names, values))
    settings = []
    for combo in itertools.product(*(values for _, _, values in axes)):
        label = " ".join(f"{key}={_value_label(v)}" for (key, _, _), v in zip(axes, combo))
        point: dict[str, Any] = {}
        for (_, names, _), v in zip(axes, combo):
            point.update(v if names is None else {n: v for n in names})
        settings.append((label, point))
    return settings


def _scoped(name: str) -> tuple[str | None, str]:
    """``"gan:n_critic"`` → ("gan", "n_critic"): an axis for one method only; ``"lr_g"`` → (None, "lr_g")."""
    scope, _, opt = name.strip().rpartition(":")
    return (scope.strip() or None), opt.strip()


def _value_label(v: Any) -> str:
    if isinstance(v, dict):
        return ",".join(f"{k}={_value_label(x)}" for k, x in v.items())
    return ",".join(map(str, v)) if isinstance(v, list) else str(v)


def _fmt(cell: Any, col: str, of: int | None = None) -> str:
    """A table cell; ``of``: the row's finished runs — a mean over fewer of them (an exact NLL that some runs could
    not certify) says over how many, e.g. ``17.5 ± 5.7 (4 of 5)``."""
    if cell is None:
        return "–"
    if isinstance(cell, dict) and of is not None and cell.get("n", of) < of:
        return f"{_fmt(cell, col)} ({cell['n']} of {of})"
    from .present import scale as unit_scale

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
    from .metrics.registry import spec

    parts = [f"{c}: {m.meaning}" for c in cols if c not in RUN_COLUMNS and (m := spec(c)) is not None]
    return "Columns — " + "; ".join(parts) + ".\n" if parts else ""


def load_recalled(path: str | Path | None) -> dict[str, list[tuple[str, dict[str, float]]]]:
    """Rows recalled from papers, from a TOML file: one array of tables per data set, each with ``name`` and metric
    values (``benchmarks/recalled.toml``); shown in italics and labelled as recalled."""
    if path is None:
        return {}
    from .config import load_toml

    out: dict[str, list[tuple[str, dict[str, float]]]] = {}
    for data, rows in load_toml(path).items():
        if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("name"), str) for r in rows):
            raise EbmlabError(f"{path}: [{data}] must be an array of tables with a name and metric values "
                              f"([[{data}]] name = \"...\" modes = ...)")
        out[data] = [(r["name"], {k: v for k, v in r.items() if k != "name"}) for r in rows]
    return out


# what each run cost, beside its results (ebmlab.budget): wall time of the whole run, steps it trained, seconds of its
# training loop, samples passed forward through its networks in training
RUN_COLUMNS = ("seconds", "steps_run", "train_s", "cpu_s", "evals")
RUN_HEADERS = {"seconds": "seconds", "steps_run": "steps", "train_s": "train s", "cpu_s": "train cpu s",
               "evals": "net evals"}


def header(col: str) -> str:
    from .present import header as metric_header

    return RUN_HEADERS.get(col) or metric_header(col)


def table_columns(rows: list[dict[str, Any]]) -> list[str]:
    """The declared table columns found in the rows (``metadata.Metric.column``), then the budget used."""
    from .metrics.registry import columns

    return [*columns({k for r in rows for k in r}), *RUN_COLUMNS]


def markdown(rows: list[dict[str, Any]], reference: dict[str, dict[str, Any]], command: str, meta: dict,
             suite: str = "toy", recalled: dict[str, list[tuple[str, dict[str, float]]]] | None = None,
             floors: dict[str, dict[str, Any]] | None = None, rendered: dict[str, Any] | None = None,
             eval_samples: int | None = None) -> str:
    """results.md: per data set the real-data row (the ceiling), the noise-floor row where the data's kind has
    one (``floors``: uniform noise on a 2D set's box), the methods' rows, and rows recalled from papers;
    ``rendered``: the table was written again from recorded runs (:func:`render`), said under the command."""
    from .metrics.evaluators import FLOOR_DRAWS
    from .present import FLOOR_MEANING

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


def run_toy_bench(methods: list[str], datasets: list[str], seeds: int, *, out: str | Path, steps: int | None = None,
                  overrides: dict[str, Any] | None = None, jobs: int = 1, command: str = "",
                  grid: dict[str, list[Any]] | None = None, suite: str = "toy",
                  shard: tuple[int, int] | None = None, recalled: str | Path | None = None) -> dict[str, Any]:
    """Run the grid of (method, data, seed[, setting]) and write results.md/json; ``suite`` picks the note;
    ``recalled``: a TOML file of rows recalled from papers (:func:`load_recalled`) to show beside the results.

    ``shard=(i, n)`` runs only the i-th of n disjoint parts of the grid (every n-th run, starting at run i, so each
    part mixes methods) and writes ``OUT/parts/part-<i>-of-<n>.json`` instead of the table; :func:`collect` merges
    the parts into the same table as an unsharded run. Runs already finished in OUT are reused, unfinished ones
    resumed, so a part can be re-run after a kill."""
    if shard is not None and not (isinstance(shard, tuple) and len(shard) == 2 and 0 <= shard[0] < shard[1]):
        raise EbmlabError(f"--shard must be i/n with 0 ≤ i < n; got {shard}")
    from .data import get_dataset
    from .methods import get_method

    for m in methods:
        get_method(m)
    for d in datasets:
        get_dataset(d)
    if seeds < 1:
        raise EbmlabError(f"--seeds must be ≥ 1, got {seeds}")
    load_recalled(recalled)  # a bad file is refused before any run
    out = Path(out)
    over = dict(overrides or {})
    if steps is not None:
        over["steps"] = steps
    over.setdefault("plots", "true")  # the report (report.html) shows every run's plots side by side
    if grid is None:
        tasks = [(m, d, s, over, str(out / "runs" / f"{m}-{d}-s{s}"))
                 for s in range(seeds) for d in datasets for m in methods]
        labels = [None] * len(tasks)
    else:
        from .config import RunConfig, field_types

        run_known = set(field_types(RunConfig))
        names = [(n, *_scoped(n)) for key, values in grid.items() for n in _axis_names(key, values)]
        unknown = [n for n, scope, opt in names
                   if (scope is not None and (scope not in methods or opt not in
                                              run_known | set(field_types(get_method(scope).Config))))
                   or (scope is None and opt not in run_known.union(*(field_types(get_method(m).Config)
                                                                       for m in methods)))]
        given = set(overrides or {}) | ({"steps"} if steps is not None else set())
        both = [n for n, _, opt in names if opt in given]
        problems = ([f"{', '.join(unknown)}: an option of none of the methods {', '.join(methods)}"] if unknown else []) \
            + ([f"{', '.join(both)}: also given as key=value"] if both else [])
        if problems:
            raise EbmlabError(f"--grid: {'; '.join(problems)}; fix the grid file or the overrides")
        tasks, labels = [], []
        for s in range(seeds):
            for d in datasets:
                for m in methods:
                    for g, (label, setting) in enumerate(grid_settings(grid, m)):
                        tasks.append((m, d, s, {**over, **setting}, str(out / "runs" / f"{m}-{d}-g{g}-s{s}")))
                        labels.append(label)
    n_grid = len(tasks)
    if shard is not None:
        tasks, labels = tasks[shard[0]::shard[1]], labels[shard[0]::shard[1]]
    t0 = time.perf_counter()
    from tqdm.auto import tqdm

    bar = tqdm(total=len(tasks), desc=f"bench {suite} ({jobs} at a time)", unit="run", dynamic_ncols=True)
    if jobs > 1:
        try:
            with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as ex:
                results = []
                for r in ex.map(_one, tasks):  # in grid order; the bar moves as each finishes in that order
                    results.append(r)
                    bar.set_postfix_str(f"{r['method']} on {r['data']}: {r['status']}", refresh=False)
                    bar.update(1)
        except BrokenProcessPool:
            bar.close()
            raise EbmlabError(f"a worker process of the bench was killed while it ran (by the system; out of memory "
                              f"is the usual cause: `dmesg` says) — run fewer at a time (--jobs) or with smaller "
                              f"evaluation options; the finished runs are kept in {out / 'runs'} and the same "
                              f"command reuses them and resumes the others from their checkpoints") from None
    else:
        results = []
        for t in tasks:
            results.append(_one(t))
            bar.set_postfix_str(f"{t[0]} on {t[1]}: {results[-1]['status']}", refresh=False)
            bar.update(1)
    bar.close()
    for r, label in zip(results, labels):
        if label is not None:
            r["setting"] = label
    import torch

    meta = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
            "torch": torch.__version__, "wall_s": time.perf_counter() - t0, "jobs": jobs}
    cmd = command or f"ebmlab bench {suite} " + " ".join(sys.argv[3:])
    spec = {"suite": suite, "datasets": datasets, "eval_samples": int(over.get("eval_samples", 2500)),
            "grid": grid, "runs_in_grid": n_grid, "recalled": str(recalled) if recalled is not None else None}
    if shard is not None:
        from .runs import json_safe

        part = {"command": cmd, "meta": meta, "shard": list(shard), **spec, "runs": results}
        (out / "parts").mkdir(parents=True, exist_ok=True)
        path = out / "parts" / f"part-{shard[0]}-of-{shard[1]}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(json_safe(part), indent=1))
        tmp.replace(path)
        return part
    return write_report(results, out, command=cmd, meta=meta, **spec)


def write_report(results: list[dict[str, Any]], out: str | Path, *, command: str, meta: dict[str, Any], suite: str,
                 datasets: list[str], eval_samples: int, grid: dict[str, list[Any]] | None,
                 runs_in_grid: int | None = None, missing: list[str] | None = None,
                 recalled: str | None = None, reference: dict[str, Any] | None = None,
                 recalled_rows: dict[str, list[tuple[str, dict[str, float]]]] | None = None,
                 rendered: dict[str, Any] | None = None) -> dict[str, Any]:
    """results.md and results.json of a finished grid (or of the parts of one, see :func:`collect`).

    ``reference``: the real-data rows kept from an earlier report of the same runs (else computed now: with a
    retrained domain classifier they would be in another feature space than the runs'). Runs scored by different
    domain classifiers (``clf_sha256``) are listed under the table: their feature metrics are not comparable.
    ``recalled_rows``: rows recalled from papers as an earlier report kept them (instead of the ``recalled`` file);
    ``rendered``: set by :func:`render` (the table written again from recorded runs), said under the command."""
    from .metrics import noise_floor, real_reference
    from .runs import json_safe

    out = Path(out)
    rows = aggregate(results)
    reference = reference if reference is not None else {d: real_reference(d, eval_samples) for d in datasets}
    # the noise floor of each 2D data set (cheap and deterministic: computed again, not kept from an earlier report)
    floors = {d: f["noise_floor"] for d in datasets if (f := noise_floor(d, eval_samples))} if suite == "toy" else {}
    if recalled_rows is None:
        recalled_rows = load_recalled(recalled)
    report = {"command": command, "meta": meta, "suite": suite, "datasets": datasets, "eval_samples": eval_samples,
              "rows": rows, "reference_real_data": reference,
              **({"reference_noise": floors} if floors else {}), "recalled": recalled_rows, "runs": results,
              **({"rendered": rendered} if rendered else {})}
    md = markdown(rows, reference, command, meta, suite, recalled_rows, floors, rendered, eval_samples)
    if grid is not None:
        report["grid"] = grid
        report["setting_rows"] = aggregate(results, by_setting=True)
        md += markdown_settings(report["setting_rows"])
    if missing:
        report["missing"] = missing
        md += "\nMissing parts of the grid (not in the table): " + ", ".join(missing) + ".\n"
    scorers = classifiers_used(results)
    if len(scorers) > 1:
        report["classifiers"] = scorers
        md += ("\n**Runs scored by different domain classifiers** (their clf_* features, precision/recall and mode "
               "labels come from different networks; compare within one): " + "; ".join(
                   f"{sha}: {', '.join(runs)}" for sha, runs in scorers.items()) + ".\n")
    from .runs import atomic_write_bytes

    text = json.dumps(json_safe(report), indent=1).encode()
    atomic_write_bytes(out / "results.json", lambda fh: fh.write(text))
    atomic_write_bytes(out / "results.md", lambda fh: fh.write(md.encode()))
    if (out / "runs").is_dir():
        from . import report as html_report

        html_report.write([out], out / "report.html", title=f"Benchmark {out.name}")
    return report


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

    from . import __version__
    from .data import DATASETS

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
        suite = m.group(1) if m else ("toy" if all(d in DATASETS for d in datasets) else "images")
    eval_samples = rep.get("eval_samples")
    if not isinstance(eval_samples, int) or isinstance(eval_samples, bool):
        # before the count was kept: the command's eval_samples= (the last one given), else the default it ran with
        from .config import RunConfig

        given = re.findall(r"\beval_samples=(\d+)", command)
        eval_samples = int(given[-1]) if given else RunConfig().eval_samples
    if suite == "toy":  # the floor is computed from the data set: it must still be there
        from .data import get_dataset

        for d in datasets:
            get_dataset(d)
    rendered = {"by": f"ebmlab bench render {out}", "version": __version__,
                "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")}
    return dict(results=runs, out=out, command=command, meta=rep["meta"], suite=suite, datasets=datasets,
                eval_samples=eval_samples, grid=rep.get("grid"), missing=rep.get("missing"),
                reference=rep["reference_real_data"], recalled_rows=_recalled_from_report(rep.get("recalled"), f),
                rendered=rendered)
