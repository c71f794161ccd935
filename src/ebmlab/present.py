"""One presentation of results for ``train``, ``eval``, ``bench`` and ``report``: every metric with its group,
unit, direction (higher or lower is better) and one-line meaning; the real-data value beside it where one exists;
bookkeeping (sample counts, grid sizes, checksums, notes) kept in ``summary.json`` only.

Units are the same everywhere: fractions that people read as rates (``hq``, precision, recall, coverage) are shown
in %, likelihoods in nats per example.
"""

from __future__ import annotations

import math
from typing import Any

from .metrics import registry
from .metrics.registry import GROUPS


def spec(name: str) -> tuple[str, str, str, str] | None:
    """(group, unit, better, meaning) of a metric name, from the metadata declared beside it."""
    m = registry.spec(name)
    return None if m is None else (m.group, m.unit, m.better, m.meaning)


def is_bookkeeping(name: str, value: Any) -> bool:
    return registry.is_bookkeeping(name, value)


def scale(name: str) -> float:
    s = spec(name)
    return 100.0 if s and s[1] == "%" else 1.0


def fmt(name: str, value: Any) -> str:
    """A value in its display unit (``hq`` 0.97 → ``97``)."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) and scale(name) == 1.0:
        return str(value)
    v = float(value) * scale(name)
    if not math.isfinite(v):
        return str(v)
    return f"{v:.4g}"


def header(name: str) -> str:
    """A column title with unit and direction, e.g. ``hq (%) ↑``."""
    s = spec(name)
    if s is None:
        return name
    unit = f" ({s[1]})" if s[1] else ""
    return f"{name}{unit}{(' ' + s[2]) if s[2] else ''}"


def reference_value(reference: dict[str, Any], name: str) -> Any:
    """The real-data value beside a metric: its own, that of the metric it prefixes, or of the same quantity on
    another normalisation."""
    base = registry.split_prefix(name)[1]
    return reference.get(name, reference.get(base, reference.get(registry.same_as(name))))


# what the noise floor beside a 2D result is (``metrics.evaluators.Toy2D.floor``), said by every presentation of it
FLOOR_MEANING = ("the same metrics for noise drawn uniformly on the data set's box at the same sample count: one "
                 "high-quality sample captures a mode, so noise captures many, and a mode count means something only "
                 "above it")


# the noise reference beside an image result (``metrics.images.reference_set``)
NOISE_IMAGES_MEANING = ("the same metrics for images of uniform noise on the value range (coin flips for binary data) "
                        "at the same sample count")


def _is_toy(summary: dict[str, Any]) -> bool:
    """Whether a summary's noise floor is the 2D one (its metrics have the mode-capture columns)."""
    floor = summary.get("noise_floor")
    return isinstance(floor, dict) and "hq" in floor


def noise_floor_of(summary: dict[str, Any]) -> dict[str, Any] | None:
    """A summary's ``noise_floor`` (the metrics of noise on 2D data), or None where it has none."""
    floor = summary.get("noise_floor")
    return floor if isinstance(floor, dict) else None


def references_of(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The reference sets scored beside a result, as (column title, metrics): ``noise`` (the noise floor) and, for
    images, ``collapsed`` (one data point repeated), in that order, where the summary has them."""
    out = []
    for key, title in (("noise_floor", "noise"), ("collapse_floor", "collapsed")):
        ref = summary.get(key)
        if isinstance(ref, dict):
            out.append((title, ref))
    return out


def _with_err(values: dict[str, Any], k: str, v: Any) -> str:
    err = values.get(f"{k}_se", values.get(f"{k}_std", values.get(f"{k}_err")))
    return fmt(k, v) + (f" ± {fmt(k, err)}" if isinstance(err, (int, float)) and err is not None else "")


def rows(metrics: dict[str, Any], reference: dict[str, Any] | None = None, skip: set[str] = frozenset(),
         floor: dict[str, Any] | list[dict[str, Any]] | None = None) -> list[tuple[str, list[tuple[str, ...]]]]:
    """Grouped rows [(group title, [(name, model, real data, unit+direction, meaning)])], bookkeeping left out;
    ``name_se`` / ``name_std`` values are shown as ± beside their metric (the real data's too). With ``floor`` (a
    summary's ``noise_floor``, or a list of reference sets' metrics) each row has their values after the real
    data's: (name, model, real data, noise[, collapsed], unit+direction, meaning)."""
    reference = reference or {}
    floors = [] if floor is None else [floor] if isinstance(floor, dict) else list(floor)
    groups: dict[str, list] = {}
    for k, v in metrics.items():
        if k in skip or is_bookkeeping(k, v):
            continue
        s = spec(k) or ("method", "", "", "")
        r = reference_value(reference, k)
        ud = " ".join(x for x in (s[1], s[2]) if x)
        cells = (_with_err(reference, k, r) if r is not None else "",
                 *(fmt(k, b) if (b := reference_value(f, k)) is not None else "" for f in floors))
        groups.setdefault(s[0], []).append((k, _with_err(metrics, k, v), *cells, ud, s[3]))
    return [(GROUPS[g], groups[g]) for g in GROUPS if g in groups]


# what the collapsed reference beside an image result is (``metrics.images.reference_set``)
COLLAPSED_MEANING = ("the same metrics for the first training image repeated as many times: a generator collapsed "
                     "onto one data point; a metric that scores it near the real data cannot tell a model from "
                     "collapse")


def collapse_warnings(metrics: dict[str, Any], real: dict[str, Any] | None) -> list[str]:
    """Warnings where a sample set scores above the real data on a fidelity metric (precision, density) while its
    recall is near zero (< 5 %): the signature of collapse (a few repeated or background-like images), which those
    metrics reward."""
    real = real or {}
    out = []
    for prefix in ("clf_", ""):
        recall = metrics.get(f"{prefix}recall")
        if not isinstance(recall, (int, float)) or recall >= 0.05:
            continue
        for name in ("precision", "density"):
            v, r = metrics.get(prefix + name), real.get(prefix + name)
            if isinstance(v, (int, float)) and isinstance(r, (int, float)) and v > r:
                out.append(f"{prefix}{name} {fmt(prefix + name, v)} is above the real data's {fmt(prefix + name, r)} "
                           f"while {prefix}recall is {fmt(prefix + 'recall', recall)}: these samples look collapsed, "
                           f"and {prefix}{name} rewards collapse — read recall, coverage and KID/FD beside it")
    return out


# what non-finite samples do to the sample metrics (evaluators: distances on the finite rows, HQ over all of them)
NONFINITE_MEANING = ("the distances and feature metrics are taken on the finite samples only; a high-quality share "
                     "counts the others as misses")


def notes(metrics: dict[str, Any]) -> list[str]:
    """The notes a reader must see beside the numbers (why a density is box-restricted or missing, what a bound
    assumes): every ``*_note`` the evaluation wrote, the density's only when it is not ``ok``, and the share of
    non-finite samples when there are any (the metrics would otherwise read as if taken on every sample)."""
    out = []
    finite = metrics.get("frac_finite")
    if isinstance(finite, (int, float)) and not isinstance(finite, bool) and finite < 1:
        out.append(f"samples: {1 - finite:.1%} of the samples are not finite (NaN or ±inf): {NONFINITE_MEANING}")
    status = metrics.get("density_status")
    if isinstance(status, str) and status != "ok":
        out.append(f"density: {status.replace('_', ' ')} — {metrics.get('density_note', '')}".rstrip(" —"))
    out += [f"{k.removesuffix('_note')}: {v}" for k, v in metrics.items()
            if k.endswith("_note") and k != "density_note" and isinstance(v, str)]
    return out


def k_table(m: dict[str, Any]) -> tuple[list[str], set[str]]:
    """Estimates reported per sample count K (keys ``k<K>_<name>``, e.g. BiHM's) as one table: K by estimate."""
    import re

    cells: dict[int, dict[str, float]] = {}
    for key, v in m.items():
        hit = re.fullmatch(r"k(\d+)_(\w+)", key)
        if hit and isinstance(v, (int, float)):
            cells.setdefault(int(hit[1]), {})[hit[2]] = v
    if not cells:
        return [], set()
    cols = list(dict.fromkeys(c for row in cells.values() for c in row))
    lines = ["  estimates by number of samples K (nats per example; ess_*: effective sample size / K):",
             "  " + f"{'K':>8}" + "".join(f"{c:>14}" for c in cols)]
    for k in sorted(cells):
        lines.append("  " + f"{k:>8}" + "".join(f"{cells[k].get(c, float('nan')):>14.4g}" for c in cols))
    return lines, {f"k{k}_{c}" for k in cells for c in cells[k]}


def text_table(summary: dict[str, Any], skip: set[str] = frozenset()) -> list[str]:
    """The grouped results as aligned text lines (with the reference sets' columns), then warnings and notes."""
    lines = []
    refs = references_of(summary)
    heads = "".join(f"{title:>12}" for title, _ in refs)
    for title, rs in rows(summary["metrics"], summary.get("real_vs_real"), skip, [r for _, r in refs]):
        lines.append(f"  {title}:")
        lines.append(f"    {'metric':<24}{'model':>20}{'real data':>20}{heads}  {'unit':<12}meaning")
        for name, model, real, *mid, ud, desc in rs:
            lines.append(f"    {name:<24}{model:>20}{real:>20}{''.join(f'{c:>12}' for c in mid)}  {ud:<12}{desc}")
    meanings = {"noise": FLOOR_MEANING if _is_toy(summary) else NOISE_IMAGES_MEANING,
                "collapsed": COLLAPSED_MEANING}
    lines += [f"  {title}: {meanings[title]}" for title, _ in refs]
    lines += [f"  WARNING — {w}" for w in collapse_warnings(summary["metrics"], summary.get("real_vs_real"))]
    lines += [f"  note — {n}" for n in notes(summary["metrics"])]
    units = (summary.get("protocol") or {}).get("units")
    if isinstance(units, str):  # standardised vectors: the numbers above are in the standardised units
        lines.append(f"  units — {units}")
    return lines
