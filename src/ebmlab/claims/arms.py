"""A claim's arms at a scale: what each arm runs (method, data, options), its resolved configuration, the checks a
spec must pass before anything runs, and the runs' shared keys.

Everything a spec may set for a run is a run or method option (``ebmlab list --options``); the bench's budget names
are accepted too (``budget_seconds``, ``budget_cpu_seconds``, ``budget_evals`` for ``max_seconds``,
``max_cpu_seconds``, ``max_evals``), and a budgeted arm without ``steps`` gets the bench's upper bound of steps, so
that its budget ends it. The resolved configuration of an arm is the one its runs are trained with, less the options
that say where and how a run runs rather than what it computes (:data:`NOT_EXPERIMENT`), and it is what a result
records and what ``claims render`` compares to mark a row **stale**.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from ..errors import EbmlabError
from .spec import Claim

BUDGET_ALIASES = {"budget_seconds": "max_seconds", "budget_cpu_seconds": "max_cpu_seconds",
                  "budget_evals": "max_evals"}
BUDGETS = tuple(BUDGET_ALIASES.values())
BUDGET_STEPS = 10_000_000  # the steps of a budgeted run without its own: an upper bound only (as `ebmlab bench`)
# run options that say where and how a run runs, or what it writes beside its results — not what it computes
NOT_EXPERIMENT = frozenset({"seed", "device", "threads", "num_workers", "data_on_device", "graphs", "compile",
                            "loggers", "tensorboard", "plots", "log_every", "ckpt_every", "eval_every", "eval_spacing",
                            "data_dir", "speed_probe", "keep_checkpoints"})
# options every claims run gets unless the spec says otherwise: no pictures or event files (nothing reads them)
QUIET = {"plots": False, "loggers": ""}
# the runners' own keys of an arm or a scale (not run options)
SEMISUP_KEYS = ("rho",)
SCALE_KEYS = ("data", "seeds", "overrides", "a", "b", "cuda", "grid", "data_files", "steps", "steps_source", "probe_shape",
              "note", "labels", "classifier_steps", "sr_scale")


@dataclasses.dataclass(frozen=True)
class Arm:
    """One arm of a claim at a scale: ``which`` (a or b), the method (for ``sr``: the model), the data, its options,
    the metric its values are read from and the runner."""

    which: str
    label: str
    method: str
    data: str
    options: dict[str, Any]
    metric: str
    runner: str = "train"
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # the runner's own settings (semisup's rho)

    @property
    def key(self) -> str:
        """The runs' shared key: arms (of any claim) with the same method, data and options share their runs."""
        body = {"method": self.method, "data": self.data, "runner": self.runner,
                "options": {k: v for k, v in self.options.items() if k not in ("data_dir",)}}
        h = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:10]
        return f"{self.method}-{self.data.replace('/', '_')}-{h}"


SR_ARGS = ("steps", "crop", "n_eval")  # options of an sr arm that are `train_sr`'s arguments, not the model's


def sr_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An sr arm's options split into the model's and ``train_sr``'s (steps, crop, n_eval)."""
    return ({k: v for k, v in options.items() if k not in SR_ARGS and k not in NOT_EXPERIMENT},
            {k: v for k, v in options.items() if k in SR_ARGS})


def normalise(options: dict[str, Any]) -> dict[str, Any]:
    """Budget aliases to the run options; a budgeted run without ``steps`` gets :data:`BUDGET_STEPS`."""
    out = {}
    for k, v in options.items():
        name = BUDGET_ALIASES.get(k, k)
        if name in out and name != k:
            raise EbmlabError(f"{k} and {name} both set the budget; give it once")
        out[name] = v
    if any(out.get(b) for b in BUDGETS) and "steps" not in out:
        out["steps"] = BUDGET_STEPS
    return out


def _on_device(raw: dict[str, Any], gpu: dict[str, Any]) -> dict[str, Any]:
    """An arm's options on a CUDA device: the scale's ``cuda`` overrides on top, a budget named there replacing the
    arm's (a CPU-seconds budget cannot be kept beside a wall-seconds one)."""
    if any(BUDGET_ALIASES.get(k, k) in BUDGETS for k in gpu):
        raw = {k: v for k, v in raw.items() if BUDGET_ALIASES.get(k, k) not in BUDGETS}
    return {**raw, **gpu}


def plan(claim: Claim, scale: str, device: str = "cpu") -> dict[str, Arm]:
    """Arm → :class:`Arm` at ``scale`` (a threshold claim has arm a only); on ``device`` cuda with the scale's
    ``cuda`` overrides (:func:`_on_device`), refusing a CPU-seconds budget there, which counts nothing of the GPU's
    work."""
    if scale not in claim.scales:
        raise EbmlabError(f"{claim.id} has no {scale} scale; it has "
                          f"{', '.join(s for s in claim.scales) or 'none (it is not measured)'}")
    sc = claim.scales[scale]
    c = claim.comparison or {}
    out = {}
    for which in ("a", "b"):
        arm = c.get(which)
        if not isinstance(arm, dict):
            continue
        raw = {**sc.get("overrides", {}), **arm.get("overrides", {}), **sc.get(which, {})}
        if device == "cuda":
            raw = _on_device(raw, sc.get("cuda", {}))
            if normalise(raw).get("max_cpu_seconds"):
                raise EbmlabError(f"{claim.id}'s {scale} scale budgets its runs in CPU-seconds, which count nothing "
                                  f"of a GPU's work: give the spec a [scale.{scale}.cuda] table with budget_seconds "
                                  f"(wall seconds a run) to run it on cuda, or run it with --device cpu; nothing was "
                                  f"run")
        extra = {k: raw.pop(k) for k in SEMISUP_KEYS if k in raw} if claim.runner == "semisup" else {}
        out[which] = Arm(which, arm["label"], arm["method"], sc["data"], normalise(raw),
                         arm.get("metric", c["metric"]), claim.runner, extra)
    return out


def resolved(arm: Arm) -> dict[str, Any]:
    """The configuration the arm's runs are made with (module docstring), as JSON-able data."""
    if arm.runner == "sr":
        from ..sr.api import build_model

        build_model(arm.method, 4, sr_options(arm.options)[0])  # the model's options refused before any run
        return {"runner": "sr", "model": arm.method, "data": arm.data, "options": _experiment(arm.options)}
    from ..config import resolve_config

    options = {**QUIET, **arm.options}
    cfg = resolve_config(arm.method, arm.data, overrides=options).to_dict()
    out = {"method": cfg["method"], "data": cfg["data"],
           "run": {k: v for k, v in cfg["run"].items() if k not in NOT_EXPERIMENT},
           "method_config": cfg["method_config"]}
    if arm.runner == "semisup":
        out["semisup"] = dict(arm.extra)
    plain: dict[str, Any] = json.loads(json.dumps(out, default=str))
    return plain


def _experiment(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sorted(options.items()) if k not in NOT_EXPERIMENT}


def produces(method: str, metric: str, kind: str) -> bool:
    """Whether a run of ``method`` on data of ``kind`` reports ``metric`` (its final evaluation, the linear probe,
    or its training record): by the metric metadata of ``ebmlab.metrics.registry``."""
    from ..methods import get_method
    from ..metrics import probe, registry, trajectory

    cls = get_method(method)
    prefix, base = registry.split_prefix(metric)
    if prefix and prefix not in cls.sample_sets:
        return False
    m = registry.spec(base)
    if m is None:
        return False
    if base in probe.METRICS:
        return hasattr(cls, "features")
    if base in trajectory.METRICS:
        return True  # read from the training record when the method logs energies (checked on the runs)
    if m.group == "method":
        return _declared(cls, base)
    if m.group == "density":
        return kind in ("toy2d", "vectors") or _declared(cls, base)
    return _sample_metric_fits(base, kind)


def _declared(cls: Any, name: str) -> bool:
    """Whether a method class declares the metric ``name`` (itself, or a ``{k}`` family it belongs to)."""
    import re

    return any(name == n or ("{k}" in n and re.fullmatch(re.escape(n).replace(re.escape("{k}"), r"\d+"), name))
               for n in cls.metrics)


def _sample_metric_fits(metric: str, kind: str) -> bool:
    from ..metrics import distances, images, inception, modes

    if metric in modes.METRICS:
        return kind in ("toy2d", "image") and (metric != "hq" or kind == "toy2d")
    if metric in images.METRICS or metric in inception.METRICS:
        return kind in ("image", "binary")
    if metric in distances.METRICS:
        return True
    return True  # a plugin's metric: scored on every sample set


def check(claim: Claim, scale: str, arms: dict[str, Arm]) -> dict[str, dict[str, Any]]:
    """Every refusal of a spec before anything runs: an arm the runner cannot make, options a method refuses, arms
    that resolve to the same experiment, a metric no arm produces. Returns each arm's resolved configuration."""
    from ..data import get_dataset
    from ..methods import METHODS

    if claim.runner in ("train", "grid", "semisup"):
        unknown = sorted({a.method for a in arms.values() if a.method not in METHODS})
        if unknown:
            raise EbmlabError(f"{claim.id}: arm method {', '.join(unknown)} is not a method of ebmlab (`ebmlab list`); "
                              f"a claim measured by its own command names its runner (comparison.runner)")
    configs = {}
    for which, arm in arms.items():
        try:
            configs[which] = resolved(arm)
        except EbmlabError as exc:
            raise EbmlabError(f"{claim.id}: arm {which} ({arm.label}) is refused before any run: {exc}") from None
    if "a" in arms and "b" in arms and configs["a"] == configs["b"] and arms["a"].metric == arms["b"].metric:
        raise EbmlabError(f"{claim.id}: arms a ({arms['a'].label}) and b ({arms['b'].label}) resolve to the same "
                          f"experiment ({arms['a'].method} on {arms['a'].data}, the same options and metric "
                          f"{arms['a'].metric}): nothing distinguishes them — give the arms the settings that differ "
                          f"(comparison.a/b.overrides or scale.a/b); nothing was run")
    if claim.runner in ("train", "grid"):
        from ..metrics import registry, trajectory

        for a in arms.values():
            if configs[a.which]["run"].get("eval") == "none" and registry.split_prefix(a.metric)[1] not in \
                    trajectory.METRICS:
                raise EbmlabError(f"{claim.id}: arm {a.which} ({a.label}) trains with eval=none, whose runs write no "
                                  f"metrics, and reads {a.metric} from them — use eval=quick or full; nothing was run")
        kind = get_dataset(arms["a"].data).kind if scale != "paper" else None
        if kind is not None and not any(produces(a.method, a.metric, kind) for a in arms.values()):
            names = ", ".join(f"{a.method} ({a.metric})" for a in arms.values())
            raise EbmlabError(f"{claim.id}: no arm's method reports its metric on {kind} data: {names} — the "
                              f"metric must be one the runs write (`ebmlab list --options` and the metrics table of "
                              f"the docs say which); nothing was run")
        check = (claim.comparison or {}).get("collapse_check")
        if kind is not None and check and not all(produces(a.method, check, kind) for a in arms.values()):
            raise EbmlabError(f"{claim.id}: comparison.collapse_check {check!r} is not a metric every arm's method "
                              f"reports on {kind} data — name one the runs write (e.g. modes on a stacked set); "
                              f"nothing was run")
    return configs


def options_text(cfg: dict[str, Any], names: list[str]) -> str:
    """``name=value`` of the options ``names`` in a resolved configuration (run options, then the method's)."""
    both = {**cfg.get("run", {}), **cfg.get("method_config", {}), **cfg.get("options", {}), **cfg.get("semisup", {})}
    return " ".join(f"{n}={_short(both[n])}" for n in names if n in both)


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return ",".join(map(_short, v))
    return str(v)


def small_cost(claim: Claim) -> str:
    """What the claim costs at the small scale: the wall time of its recorded `claims run`, else its runs and their
    training budget (CPU-seconds per run), else the runs alone (their steps bound them; one run times them). The
    evaluations come on top of a budget (a stacked set's mode count draws 26,000 samples: minutes a run for a
    generator, hours for latent chains on a CPU), and the plan says so."""
    if claim.status != "measured":
        return "a test" if claim.status == "known_answer" else "—"
    r = claim.results.get("small") or {}
    if not r.get("transcribed") and isinstance(r.get("wall_s"), (int, float)):
        return f"{r['wall_s'] / 60:.0f} min wall (recorded, load {r.get('load_1min', '?')})"
    if "small" not in claim.scales:
        return "no small scale"
    arms = plan(claim, "small")
    seeds = int(claim.scales["small"].get("seeds", 3))
    runs = len({a.key for a in arms.values()}) * seeds
    budget = max((float(a.options.get(b) or 0) for a in arms.values() for b in BUDGETS), default=0.0)
    if budget:
        return f"{runs} runs of ≤ {budget:g} s training each (+ the equal-steps pair, + evaluations)"
    return f"{runs} runs (steps-bound)"
