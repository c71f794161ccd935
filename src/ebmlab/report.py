"""``ebmlab report``: one self-contained HTML file (no network: styles inline, images embedded as data URIs) for
one run, several runs, or a benchmark directory.

A run gets its resolved configuration, its results table (grouped, with units, direction and the real-data value,
as printed by ``ebmlab eval``), its plots and sample grids, and its run record. Several runs, or the runs of a bench
directory, also get a comparison table and their sample grids side by side. A bench directory gets its results
tables (from its results.json, in this version's table: see ``ebmlab bench render``), also when its runs are gone. A small inline script checks, once the
page has loaded, that every image was decoded, and says so at the top of the page (``data-images`` on ``<body>``).
"""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path
from typing import Any

from .errors import EbmlabError
from .runs import with_latest_evaluation
from .present import FLOOR_MEANING, fmt, header, noise_floor_of, notes, reference_value, rows

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:1.5em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:2em}
h3{font-size:1.05em}table{border-collapse:collapse;margin:8px 0 16px;font-size:.9em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f0f0f0}td{white-space:nowrap}
td.l,th.l{text-align:left}tr.real td{background:#eef6ee;font-weight:600}tr.ref td{font-style:italic;color:#555}
.gallery{display:flex;flex-wrap:wrap;gap:16px}.gallery figure{margin:0;text-align:center}
.gallery img{max-width:320px;image-rendering:pixelated;border:1px solid #ddd}
img.plot{max-width:640px;border:1px solid #ddd;margin:4px}img.wide{max-width:100%;border:1px solid #ddd;margin:4px}
.tablewrap{overflow-x:auto}
.meta{color:#555;font-size:.9em}code{background:#f4f4f4;padding:1px 4px}
#status{padding:6px 10px;border-radius:4px;background:#f4f4f4;font-size:.85em}
"""

SCRIPT = """
window.addEventListener('error', function (e) { document.body.dataset.errors = (e.message || 'error'); });
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.dataset.images = ok + '/' + imgs.length;
  document.getElementById('status').textContent =
    ok === imgs.length ? imgs.length + ' images shown' : (imgs.length - ok) + ' of ' + imgs.length + ' images could not be decoded';
});
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _img(path: Path, cls: str = "plot") -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img class="{cls}" alt="{_e(path.name)}" src="data:image/png;base64,{data}">'


def _table(head: list[str], body: list[list[str]], left: int = 1, real_rows: tuple[int, ...] = (),
           left_cols: tuple[int, ...] = (), ref_rows: tuple[int, ...] = ()) -> str:
    """An HTML table; ``real_rows`` shaded (the real data), ``ref_rows`` in italics (a floor, a recalled row)."""
    def cls(i: int) -> str:
        return "l" if i < left or i in left_cols else ""

    th = "".join(f'<th class="{cls(i)}">{_e(h)}</th>' for i, h in enumerate(head))
    trs = []
    for r, row in enumerate(body):
        tds = "".join(f'<td class="{cls(i)}">{_e(c)}</td>' for i, c in enumerate(row))
        trs.append(f'<tr class="{"real" if r in real_rows else "ref" if r in ref_rows else ""}">{tds}</tr>')
    return f"<div class='tablewrap'><table><thead><tr>{th}</tr></thead><tbody>{''.join(trs)}</tbody></table></div>"


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _plot_order(p: Path) -> tuple[int, str]:
    """Samples and data first (what a reader looks at), densities next, curves last."""
    rank = {"samples": 0, "data": 1, "density": 2, "sandwich": 4, "curves": 5}
    return rank.get(p.stem, 3), p.stem


def _sr_section(run: Path, cfg: dict[str, Any], title: str | None) -> str:
    """A super-resolution run: its options, test metrics and the comparison grid."""
    summary = _read(run / "summary.json")
    parts = [f"<h2>{_e(title or run.name)}</h2>",
             f'<p class="meta">super-resolution model {_e(cfg.get("model"))} on {_e(cfg.get("data"))}, ×'
             f'{_e(cfg.get("scale"))}, {_e(cfg.get("steps"))} steps — <code>{_e(run)}</code></p>']
    test = summary.get("test") if isinstance(summary, dict) else None
    if isinstance(test, dict):
        parts.append(_table(["metric", "value"], [[k, fmt(k, v) if isinstance(v, (int, float)) else str(v)]
                                                  for k, v in test.items()], left=1))
    else:
        parts.append("<p><i>Not evaluated yet (`ebmlab sr eval RUN`).</i></p>")
    if (run / "grid.png").is_file():
        parts.append("<h3>Low resolution, bicubic, model, truth</h3>" + _img(run / "grid.png"))
    conf_rows = [[k, json.dumps(v)] for k, v in cfg.items() if k != "format"]
    parts.append("<details><summary>Configuration</summary>" + _table(["option", "value"], conf_rows, left=2)
                 + "</details>")
    return "\n".join(parts)


def _run_section(run: Path, title: str | None = None) -> str:
    cfg, summary, record = _read(run / "config.json"), _read(run / "summary.json"), _read(run / "run.json")
    summary = with_latest_evaluation(summary, run)  # an `ebmlab eval` made since the run finished
    if not isinstance(cfg, dict):
        raise EbmlabError(f"{run} is not an ebmlab run directory (no readable config.json)")
    if cfg.get("format") == "ebmlab-sr-run-1":
        return _sr_section(run, cfg, title)
    parts = [f"<h2>{_e(title or run.name)}</h2>",
             f'<p class="meta">{_e(cfg.get("method"))} on {_e(cfg.get("data"))} — <code>{_e(run)}</code>; presets: '
             f'{_e(", ".join(cfg.get("presets", [])) or "none")}</p>']
    plots = sorted((run / "plots").glob("*.png"), key=_plot_order) if (run / "plots").is_dir() else []
    pictures = [p for p in plots if _plot_order(p)[0] < 5]
    if pictures:
        parts.append("<h3>Samples and densities</h3><div>" + "".join(_img(p) for p in pictures) + "</div>")
    if isinstance(summary, dict):
        parts.append(f"<h3>Results at step {_e(summary.get('step'))} (↑ higher is better, ↓ lower)</h3>")
        if summary.get("evaluation", "full") != "full":
            parts.append(f"<p class='meta'>Evaluation: {_e(summary['evaluation'])}</p>")
        floor = noise_floor_of(summary)
        head = ["metric", "model", "real data"] + (["uniform noise"] if floor is not None else []) + ["unit", "meaning"]
        for group, rs in rows(summary.get("metrics", {}), summary.get("real_vs_real"), floor=floor):
            parts.append(f"<p><b>{_e(group)}</b></p>")
            parts.append(_table(head, [list(r) for r in rs], left=1, left_cols=(len(head) - 2, len(head) - 1)))
        if floor is not None:
            parts.append(f"<p class='meta'>Uniform noise: {_e(FLOOR_MEANING)}.</p>")
        parts += [f"<p class='meta'>Note — {_e(n)}</p>" for n in notes(summary.get("metrics", {}))]
    elif (run / "summary.json").exists():
        parts.append("<p><i>summary.json is not readable (damaged or edited): running the run's train command again "
                     "evaluates the final checkpoint and writes it anew.</i></p>")
    else:
        parts.append("<p><i>No final results yet (the run has not finished).</i></p>")
    curves = [p for p in plots if _plot_order(p)[0] == 5]
    if curves:
        parts.append("<h3>Training curves</h3><div>" + "".join(_img(p, "wide") for p in curves) + "</div>")
    conf_rows = [[sect, k, json.dumps(v)] for sect in ("run", "method_config") for k, v in cfg.get(sect, {}).items()]
    parts.append("<details><summary>Resolved configuration</summary>"
                 + _table(["section", "option", "value"], conf_rows, left=3) + "</details>")
    if isinstance(record, dict) and record.get("sessions"):
        keys = ["started", "ended", "status", "start_step", "end_step", "steps_per_s", "device", "threads",
                "ebmlab_version", "git_commit", "torch_version", "command"]
        parts.append("<details><summary>Run record (run.json)</summary>"
                     + _table(keys, [[str(s.get(k, "")) for k in keys] for s in record["sessions"]], left=len(keys))
                     + "</details>")
    return "\n".join(parts)


def _comparison(runs: list[Path]) -> str:
    """One table per data set: a row per run, a column per metric those runs report, the real-data values on
    top. (One table over several data sets would be mostly empty cells: their metrics differ.)"""
    sums = [(r, with_latest_evaluation(_read(r / "summary.json"), r)) for r in runs]
    sums = [(r, s) for r, s in sums if isinstance(s, dict) and "method" in s and isinstance(s.get("metrics"), dict)]
    if not sums:
        return "<p><i>None of the runs has finished yet.</i></p>"
    out = []
    for d in dict.fromkeys(s["data"] for _, s in sums):
        mine = [(r, s) for r, s in sums if s["data"] == d]
        cols: list[str] = []
        for _, s in mine:
            for name, _v, *_ in (x for _, rs in rows(s["metrics"]) for x in rs):
                if name not in cols:
                    cols.append(name)
        def reference_row(label: str, ref: dict[str, Any]) -> list[str]:
            return [label, "", ""] + [fmt(c, v) if (v := reference_value(ref, c)) is not None else "" for c in cols]

        body = [reference_row("real data", mine[0][1].get("real_vs_real", {}))]
        floor = noise_floor_of(mine[0][1])
        if floor is not None:
            body.append(reference_row("uniform noise (floor)", floor))
        for r, s in mine:
            m = s["metrics"]
            body.append([s["method"], r.name, str(s.get("step"))] + [fmt(c, m.get(c)) if c in m else "" for c in cols])
        out.append(f"<h3>{_e(d)}</h3>" + _table(["method", "run", "step"] + [header(c) for c in cols], body, left=2,
                                                 real_rows=(0,), ref_rows=(1,) if floor is not None else ()))
    return "\n".join(out)


def _gallery(runs: list[Path]) -> str:
    figs = []
    for r in runs:
        p = r / "plots" / "samples.png"
        if p.is_file():
            figs.append(f"<figure>{_img(p, 'grid')}<figcaption>{_e(r.name)}</figcaption></figure>")
    return '<div class="gallery">' + "".join(figs) + "</div>" if figs else "<p><i>No sample plots.</i></p>"


def expand(paths: list[str | Path]) -> tuple[list[Path], list[Path]]:
    """(bench directories, run directories) named by ``paths``; a bench directory contributes its runs."""
    benches, runs = [], []
    for p in map(Path, paths):
        if not p.exists():
            raise EbmlabError(f"{p} does not exist; pass run directories or a bench --out directory")
        if (p / "config.json").is_file():
            runs.append(p)
        elif (p / "results.json").is_file() or (p / "runs").is_dir():
            benches.append(p)
            runs += sorted(d for d in (p / "runs").glob("*") if (d / "config.json").is_file())
        else:
            raise EbmlabError(f"{p} is neither a run directory (config.json) nor a bench directory (results.json)")
    # a bench directory whose runs are gone (shared, or pruned) still has its table
    if not runs and not any((b / "results.json").is_file() for b in benches):
        raise EbmlabError(f"no run directories found in {', '.join(map(str, paths))}")
    return benches, runs


def _bench_section(b: Path) -> str:
    """A bench directory: its command and machine, its tables (from results.json, as results.md gives them: the
    real-data row shaded, floor and recalled rows in italics), and results.md itself (its notes) folded."""
    from .bench.tables import report_tables

    res = _read(b / "results.json")
    parts = [f"<h2>Benchmark {_e(b)}</h2>"]
    if not isinstance(res, dict):
        parts.append("<p><i>results.json is missing or unreadable: the bench has not finished, or the file was "
                     "damaged (run the bench command again).</i></p>")
    else:
        meta = res.get("meta") if isinstance(res.get("meta"), dict) else {}
        wall = meta.get("wall_s")
        parts.append(f"<p class='meta'>Command: <code>{_e(res.get('command', '?'))}</code><br>Machine: "
                     f"{_e(meta.get('machine', '?'))}; torch {_e(meta.get('torch', '?'))}; wall time "
                     f"{_e(round(wall)) if isinstance(wall, (int, float)) else '?'} s</p>")
        try:
            tables, table_notes = report_tables(res, b / "results.json")
        except (EbmlabError, KeyError, TypeError, AttributeError) as exc:
            tables, table_notes = [], []
            parts.append(f"<p><i>its tables could not be read from results.json ({_e(exc)}); results.md "
                         f"below is as written.</i></p>")
        for title, (head, body) in tables:
            kinds = [k for k, _ in body]
            parts.append(f"<h3>{_e(title)} (mean ± std over seeds)</h3>" + _table(
                head, [cells for _, cells in body], left=2 if head[2] != "setting" else 3,
                real_rows=tuple(i for i, k in enumerate(kinds) if k == "real"),
                ref_rows=tuple(i for i, k in enumerate(kinds) if k in ("floor", "recalled"))))
        parts += [f"<p class='meta'>Note — {_e(n)}.</p>" for n in table_notes]
    md = b / "results.md"
    if md.is_file():
        parts.append("<details><summary>results.md (with the notes on every column)</summary><pre>"
                     + _e(md.read_text()) + "</pre></details>")
    return "\n".join(parts)


def build(paths: list[str | Path], title: str | None = None) -> str:
    """The HTML text of the report."""
    benches, runs = expand(paths)
    parts = [f"<h1>{_e(title or 'ebmlab report')}</h1>",
             f'<p class="meta">Generated {time.strftime("%Y-%m-%d %H:%M")} from {len(runs)} run(s)'
             f'{f" and {len(benches)} bench table(s)" if benches else ""}. '
             f'<span id="status">images not yet checked</span></p>']
    for b in benches:
        parts.append(_bench_section(b))
    if len(runs) > 1:
        parts += ["<h2>Comparison</h2>", _comparison(runs), "<h2>Samples side by side</h2>", _gallery(runs)]
    for r in runs:
        parts.append(_run_section(r))
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>" + _e(title or "ebmlab report")
            + f"</title><style>{CSS}</style></head><body>" + "\n".join(parts)
            + f"<script>{SCRIPT}</script></body></html>")


def write(paths: list[str | Path], out: str | Path, title: str | None = None) -> Path:
    """Write the report to ``out`` (atomically) and return its path."""
    from .atomic import atomic_write_bytes

    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise EbmlabError(f"--out must name an .html file, got {out}")
    text = build(paths, title).encode()
    atomic_write_bytes(out, lambda fh: fh.write(text))
    return out
