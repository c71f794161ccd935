"""One presentation of results for ``train``, ``eval``, ``bench`` and ``report``: every metric with its group,
unit, direction (higher or lower is better) and one-line meaning; the real-data value beside it where one exists;
bookkeeping (sample counts, grid sizes, checksums, notes) kept in ``summary.json`` only.

Units are the same everywhere: fractions that people read as rates (``hq``, precision, recall, coverage) are shown
in %, likelihoods in nats per example.
"""

from __future__ import annotations

import math
import re
from typing import Any

# name: (group, unit, better, description); better is "↑", "↓" or "" (diagnostic)
METRICS: dict[str, tuple[str, str, str, str]] = {
    "modes": ("samples", "", "↑", "modes covered by the samples"),
    "hq": ("samples", "%", "↑", "high-quality samples (within 3σ of a mode)"),
    "mode_kl": ("samples", "nats", "↓", "KL(mode frequencies ‖ uniform)"),
    "w1": ("samples", "", "↓", "Wasserstein-1 distance to test data"),
    "sw1": ("samples", "", "↓", "sliced Wasserstein-1 distance to test data"),
    "mmd2": ("samples", "", "↓", "MMD² (RBF kernel) to test data"),
    "clf_fd": ("samples", "", "↓", "Fréchet distance in the domain classifier's features (not FID)"),
    "clf_kid": ("samples", "", "↓", "kernel inception distance, in the domain classifier's features"),
    "clf_precision": ("samples", "%", "↑", "precision: samples inside the test data's feature manifold"),
    "clf_recall": ("samples", "%", "↑", "recall: test data inside the samples' feature manifold"),
    "clf_density": ("samples", "", "↑", "density (precision counting neighbourhoods)"),
    "clf_coverage": ("samples", "%", "↑", "coverage: test points with a sample among their neighbours"),
    "clf_score": ("samples", "", "↑", "classifier score exp E KL(p(y|x) ‖ p(y)) (an IS in the domain classifier)"),
    "fid": ("samples", "", "↓", "FID (Inception features)"),
    "inception_score": ("samples", "", "↑", "Inception score"),
    "nll": ("density", "nats", "↓", "exact test NLL of exp(−E) by quadrature"),
    "kl": ("density", "nats", "↓", "KL(data ‖ model) by quadrature"),
    "tv": ("density", "", "↓", "total variation to the data density"),
    "nll_box": ("density", "nats", "↓", "test NLL of exp(−E) normalised on the data box"),
    "kl_box": ("density", "nats", "↓", "KL(data ‖ model) normalised on the data box"),
    "log_z": ("density", "nats", "", "log normalising constant of exp(−E)"),
    "log_z_box": ("density", "nats", "", "log normalising constant of exp(−E) on the data box"),
    "tv_box": ("density", "", "↓", "total variation to the data density, model normalised on the data box"),
    "nll_lower": ("density", "nats", "", "lower bound of the generator's test NLL"),
    "nll_upper": ("density", "nats", "", "upper bound of the generator's test NLL"),
    "nll_upper_chi2": ("density", "nats", "", "χ² upper bound of the test NLL"),
    "nll_upper_diffusion": ("density", "nats", "", "diffusion upper bound of the test NLL"),
    "nll_iwae": ("density", "nats", "↓", "test NLL by the IWAE bound at the largest K"),
    "nll_is": ("density", "nats", "↓", "test NLL by importance sampling"),
    "nll_pstar": ("density", "nats", "↓", "test NLL of BiHM's p*"),
    "est_nll_iwae": ("density", "nats", "↓", "test NLL of LBT's estimator (IWAE, largest K)"),
    "elbo": ("density", "nats", "↑", "test ELBO"),
    "est_elbo": ("density", "nats", "↑", "test ELBO of LBT's estimator"),
    "log_z2": ("density", "nats", "", "BiHM's log Z²"),
    "probe_test_error": ("method", "%", "↓", "linear probe test error on the frozen energy features"),
    "score_mismatch": ("method", "", "↓", "BiB: score mismatch of the gp upper bound"),
    "fold_frac": ("method", "%", "", "fraction of generator samples folded into the box"),
}
PATTERNS = [  # families of names: (regex, group, unit, better, description with {0} for the group)
    (r"iwae_(\d+)", "density", "nats", "↑", "IWAE bound L_K at K = {0}"),
    (r"est_iwae_(\d+)", "density", "nats", "↑", "LBT estimator's IWAE bound at K = {0}"),
]
BOOKKEEPING = {"frac_finite", "n_modes_total", "quad_n", "quad_box", "clf_sha256", "clf_accuracy",
               "n_feature_samples", "n_mode_samples", "eval_k", "eval_points", "probe_feature_dim", "probe_n_test",
               "probe_n_train", "base_steps", "density_status",
               "entropy_true"}  # the data's entropy: already the real-data value of nll
GROUPS = {"samples": "samples", "density": "density and likelihood", "method": "method-specific"}


def spec(name: str) -> tuple[str, str, str, str] | None:
    """(group, unit, better, description) of a metric name; ``base_X`` is X of KALE's base generator."""
    if name.startswith("base_"):
        s = spec(name[5:])
        return None if s is None else (s[0], s[1], s[2], s[3] + " — base generator alone")
    if name in METRICS:
        return METRICS[name]
    for pat, group, unit, better, desc in PATTERNS:
        hit = re.fullmatch(pat, name)
        if hit:
            return group, unit, better, desc.format(*hit.groups())
    return None


def is_bookkeeping(name: str, value: Any) -> bool:
    base = name.removeprefix("base_")
    return (base in BOOKKEEPING or isinstance(value, (str, bool)) or value is None and name.endswith("_note")
            or base.endswith(("_se", "_std", "_err", "_note")))


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


# the real-data value of a metric computed on another normalisation or sampler of the same quantity
_SAME_AS = {"nll_box": "nll", "kl_box": "kl"}


def reference_value(reference: dict[str, Any], name: str) -> Any:
    base = name.removeprefix("base_")
    return reference.get(name, reference.get(base, reference.get(_SAME_AS.get(base, ""))))


def rows(metrics: dict[str, Any], reference: dict[str, Any] | None = None, skip: set[str] = frozenset()
         ) -> list[tuple[str, list[tuple[str, str, str, str, str]]]]:
    """Grouped rows [(group title, [(name, model, real data, unit+direction, meaning)])], bookkeeping left out;
    ``name_se`` / ``name_std`` values are shown as ± beside their metric."""
    reference = reference or {}
    groups: dict[str, list] = {}
    for k, v in metrics.items():
        if k in skip or is_bookkeeping(k, v):
            continue
        s = spec(k) or ("method", "", "", "")
        err = metrics.get(f"{k}_se", metrics.get(f"{k}_std", metrics.get(f"{k}_err")))
        shown = fmt(k, v) + (f" ± {fmt(k, err)}" if isinstance(err, (int, float)) and err is not None else "")
        r = reference_value(reference, k)
        ud = " ".join(x for x in (s[1], s[2]) if x)
        groups.setdefault(s[0], []).append((k, shown, fmt(k, r) if r is not None else "", ud, s[3]))
    return [(GROUPS[g], groups[g]) for g in GROUPS if g in groups]


NOTE_KEYS = ("density_note", "upper_note", "ais_note")


def notes(metrics: dict[str, Any]) -> list[str]:
    """The notes a reader must see beside the numbers (why a density is box-restricted or missing, what a bound
    assumes)."""
    out = []
    status = metrics.get("density_status")
    if isinstance(status, str) and status != "ok":
        out.append(f"density: {status.replace('_', ' ')} — {metrics.get('density_note', '')}".rstrip(" —"))
    out += [f"{k.removesuffix('_note')}: {metrics[k]}" for k in NOTE_KEYS[1:] if isinstance(metrics.get(k), str)]
    return out


def text_table(summary: dict[str, Any], skip: set[str] = frozenset()) -> list[str]:
    """The grouped results as aligned text lines, then the notes."""
    lines = []
    for title, rs in rows(summary["metrics"], summary.get("real_vs_real"), skip):
        lines.append(f"  {title}:")
        lines.append(f"    {'metric':<24}{'model':>20}{'real data':>12}  {'unit':<10}meaning")
        for name, model, real, ud, desc in rs:
            lines.append(f"    {name:<24}{model:>20}{real:>12}  {ud:<10}{desc}")
    lines += [f"  note — {n}" for n in notes(summary["metrics"])]
    return lines
