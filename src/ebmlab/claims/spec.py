"""The claim spec: one TOML file per claim, ``<specs>/<id>.toml``, and its results, ``<specs>/results/<id>.json``.

A spec is the experiment its row reports. It holds the paper (a key of :data:`PAPERS`), where the claim stands in
it (``where``: section, table or figure), the claim in our words, its ``status``, its ``section`` (``paper``: a claim
of the paper; ``ebmlab``: a check of ebmlab's own, e.g. a sampler's stationary law, listed apart) and what backs it:

- ``status = "measured"``: a ``[comparison]`` — ``metric``, its ``direction`` (higher or lower is better: the claim
  says arm ``a`` beats arm ``b``, or beats ``threshold``), the ``budget`` kind (equal_steps, equal_wall_time,
  equal_evals, same_run: both arms are metrics of the same runs), the arms ``a`` and ``b`` (each a ``label``, the
  ``method`` and optionally ``metric``: another key of the same summary, e.g. ``base_hq``, and ``overrides``),
  optionally the ``runner`` that makes its runs (``train``, the default: each arm is ``ebmlab train``; ``grid``:
  each arm is a method over the grid file the scale names, one value per grid setting; ``sr``: each arm an
  ``ebmlab sr`` model; ``semisup``: each arm a semi-supervised classifier trained with ``ebmlab semisup``'s
  protocol), the paper's ``effect`` (the difference a − b the paper reports, in the claim's direction and the
  metric's units, with ``effect_source``), ``decides`` (the options whose values decide the row: printed on it) and
  ``collapse_check`` (for a metric that cannot tell a model from collapse, such as precision: a metric that can,
  recorded for the same runs and checked per arm, ``ebmlab.claims.verdict`` rule 2);
  and ``[scale.small|medium|paper]`` tables: ``data``, ``seeds``, ``overrides`` for every run (``settings =
  "paper"`` among them: the paper's released settings, ``ebmlab.config``), per-arm ``a``/``b`` overrides, for
  ``grid`` the ``grid`` file, and for ``paper`` the ``data_files`` it needs, ``steps`` (with ``steps_source``: where
  in the paper or its release that length comes from) and the ``probe_shape`` of its samples; a ``note`` (text:
  what the scale is and how its budget was chosen, printed under the CPU's result of that scale on the page and
  under the dry run's header); a ``cuda`` table of
  overrides applied to every arm when the claim runs on a CUDA device (``claims run --device cuda``): a scale that
  budgets its runs in CPU-seconds needs one that gives the budget in wall seconds (``budget_seconds``), since CPU
  time counts nothing of a GPU's work (:func:`ebmlab.claims.arms.plan`);
- ``status = "known_answer"``: ``test``, the pytest node that checks the known answer;
- ``status = "untested"``: ``reason``.

A measured spec may instead read the runs of another: ``reads = "<id>"`` takes that spec's ``[comparison]`` and
``[scale.*]`` tables whole (the same arms, so the same runs, trained once), and its own ``[comparison]`` names only
what it reads of them differently — the ``metric``, its ``direction``, the paper's ``effect``, ``collapse_check``,
``decides``, and an arm's ``label`` and ``metric`` (e.g. VCD's chains from noise) — with ``scales``, optionally,
the source's scales it reads (all of them by default). A spec that reads another has no ``[scale]`` of its own and
cannot itself be read (no chains): e.g. a classifier-feature FD reading of the runs of a mode-count claim.

``paper_value`` (``value``, optional ``spread``, the equivalence ``margin``, ``metric`` and ``where``) is the
number the paper reports for arm a; ``contrary`` lists files of ``benchmarks/`` whose evidence goes against the
claim (linked from the row). Every spec names the ``networks`` its measurements used and the ``evidence`` files.

A result per scale (written by ``ebmlab claims run``) holds the per-seed values of each arm (``a``, ``b``; paired by
seed; None where a seed diverged, listed per arm in ``diverged``), the steps and CPU-seconds each arm's runs got,
each arm's resolved configuration (``arms``) and the commit it ran on, the noise and real-data references per arm,
the command, the machine and the wall time; for an equal-compute claim also ``equal_steps``, the same arms at the
same step count. A result of runs on a CUDA device is recorded apart, under ``<scale>@cuda`` (:func:`result_key`),
with the device's name, and shown in a column of its own. Results transcribed from an earlier benchmark (``[recorded.<scale>]`` tables of the spec) are
read too, and marked as such on the page.

Loading never stops at one bad file: :func:`load_claims` returns the claims it could read, and :func:`load_all` also
the files it could not, each with one line naming the file and the field.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..errors import EbmlabError

PAPERS = {
    "vgan": ("VGAN (and VCD)", "Zhai, Cheng, Feris & Zhang, \"Generative adversarial networks as variational training "
             "of energy based models\", 2016"),
    "bib": ("BiB — bidirectional bounds", "Geng et al., \"Bounds all around: training energy-based models with "
            "bidirectional bounds\", NeurIPS 2021 (code EBM-BB)"),
    "lbt": ("LBT / LBT-GAN", "Xu et al., \"Learning implicit generative models by teaching explicit ones\", 2019 "
            "(code Learning-By-Teaching)"),
    "kale": ("KALE / GEBM", "Arbel, Zhou & Gretton, \"Generalized energy based models\", ICLR 2021 "
             "(code GeneralizedEBM)"),
    "ebgan": ("EBGAN, EBGAN-PT, EBGAN-LN", "Zhao, Mathieu & LeCun, \"Energy-based generative adversarial networks\", "
              "ICLR 2017; the latent-normalised variant of the lecture"),
    "vae": ("VAE and IWAE", "Kingma & Welling 2014; Burda, Grosse & Salakhutdinov, \"Importance weighted "
            "autoencoders\", ICLR 2016 (code iwae)"),
    "bihm": ("BiHM and RWS", "Bornschein, Shabanian, Fischer & Bengio, \"Bidirectional Helmholtz machines\", ICML "
             "2016 (code bihm); Bornschein & Bengio, \"Reweighted wake-sleep\", ICLR 2015"),
    "sampling": ("Sampling", "the lecture's samplers: inverse transform, rejection, importance sampling, ULA/MALA/HMC, "
                 "AIS (Neal 2001)"),
    "sr": ("Super-resolution", "Bruna, Sprechmann & LeCun, \"Super-resolution with deep convolutional sufficient "
           "statistics\", ICLR 2016"),
    "pacgan": ("PacGAN (the baseline's packing)", "Lin, Khetan, Fanti & Oh, \"PacGAN: the power of two samples in "
               "generative adversarial networks\", NeurIPS 2018 (code PacGAN)"),
}
STATUSES = ("measured", "known_answer", "untested")
SECTIONS = ("paper", "ebmlab")
SCALES = ("small", "medium", "paper")
DIRECTIONS = ("higher", "lower")
BUDGETS = ("equal_steps", "equal_wall_time", "equal_evals", "same_run")
RUNNERS = ("train", "grid", "sr", "semisup")


@dataclasses.dataclass(frozen=True)
class Claim:
    """One claim: its spec's fields (module docstring) and its recorded results per scale."""

    id: str
    paper: str
    where: str
    claim: str
    status: str
    networks: str
    evidence: tuple[str, ...]
    comparison: dict[str, Any] | None
    scales: dict[str, dict[str, Any]]
    test: str | None
    reason: str | None
    paper_value: dict[str, Any] | None
    note: str | None
    order: int
    results: dict[str, dict[str, Any]]
    path: Path
    section: str = "paper"
    contrary: tuple[str, ...] = ()

    def arm(self, which: str) -> dict[str, Any]:
        assert self.comparison is not None
        arm: dict[str, Any] = self.comparison[which]
        return arm

    def scale_note(self, key: str) -> str | None:
        """The ``note`` of the scale of a result key (``medium`` or ``medium@cuda``), None without one."""
        note = self.scales.get(key_parts(key)[0], {}).get("note")
        return str(note) if note else None

    @property
    def runner(self) -> str:
        return str((self.comparison or {}).get("runner", "train"))


def _kinds(types: type | tuple[type, ...]) -> str:
    kinds = types if isinstance(types, tuple) else (types,)
    return " or ".join({"str": "a string", "int": "an integer", "float": "a number", "dict": "a table",
                        "list": "a list", "bool": "true or false"}.get(t.__name__, t.__name__) for t in kinds)


def _need(d: dict[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    v = d.get(key)
    if not isinstance(v, types) or (isinstance(v, bool) and bool not in (types if isinstance(types, tuple)
                                                                          else (types,))):
        raise EbmlabError(f"{where}: '{key}' must be {_kinds(types)}, got {v!r}")
    return v


def _maybe(d: dict[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    return _need(d, key, types, where) if key in d else None


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_arm(c: dict[str, Any], which: str, where: str) -> None:
    a = _need(c, which, dict, where)
    w = f"{where}: comparison.{which}"
    _need(a, "label", str, w)
    _need(a, "method", str, w)
    _maybe(a, "metric", str, w)
    _maybe(a, "overrides", dict, w)


def _check_comparison(c: Any, where: str) -> dict[str, Any]:
    if not isinstance(c, dict):
        raise EbmlabError(f"{where}: a measured claim needs a [comparison] table (metric, direction, budget, a, b)")
    _need(c, "metric", str, where)
    if c.get("direction") not in DIRECTIONS:
        raise EbmlabError(f"{where}: comparison.direction must be one of {', '.join(DIRECTIONS)}, got "
                          f"{c.get('direction')!r}")
    if c.get("budget") not in BUDGETS:
        raise EbmlabError(f"{where}: comparison.budget must be one of {', '.join(BUDGETS)}, got {c.get('budget')!r}")
    if c.get("runner", "train") not in RUNNERS:
        raise EbmlabError(f"{where}: comparison.runner must be one of {', '.join(RUNNERS)}, got {c.get('runner')!r}")
    for arm in ("a",) + (() if "threshold" in c else ("b",)):
        _check_arm(c, arm, where)
    for key in ("threshold", "effect"):
        if key in c and not _number(c[key]):
            raise EbmlabError(f"{where}: comparison.{key} must be a number, got {c[key]!r}")
    if "effect" in c and c["effect"] <= 0:
        raise EbmlabError(f"{where}: comparison.effect is the paper's difference a − b in the claim's direction "
                          f"(> 0), got {c['effect']!r}")
    _check_fraction_units(c, where)
    if "collapse_check" in c and not (isinstance(c["collapse_check"], str) and c["collapse_check"]):
        raise EbmlabError(f"{where}: comparison.collapse_check must name a metric that tells a model from collapse "
                          f"(e.g. \"modes\"), got {c['collapse_check']!r}")
    decides = c.get("decides", [])
    if not (isinstance(decides, list) and all(isinstance(x, str) for x in decides)):
        raise EbmlabError(f"{where}: comparison.decides must be a list of option names, got {decides!r}")
    return c


def _check_fraction_units(c: dict[str, Any], where: str) -> None:
    """A metric declared in % (``ebmlab.metadata.Metric``: the value is a fraction, shown × 100) has its effect and
    threshold as fractions too: an effect above 1 (or a threshold outside [0, 1]) is the paper's number in percent,
    which the verdict would misread by a factor of 100."""
    from ..metrics import registry

    m = registry.spec(c["metric"])
    if m is None or m.unit != "%":
        return
    if "effect" in c and c["effect"] > 1:
        raise EbmlabError(f"{where}: comparison.effect {c['effect']!r} is above 1, but {c['metric']} is a fraction "
                          f"(shown as %): give the paper's difference as a fraction too ({c['effect']!r} points is "
                          f"{c['effect'] / 100:g})")
    if "threshold" in c and not 0 <= c["threshold"] <= 1:
        raise EbmlabError(f"{where}: comparison.threshold {c['threshold']!r} is outside [0, 1], but {c['metric']} is "
                          f"a fraction (shown as %): give the threshold as a fraction ({c['threshold'] / 100:g} for "
                          f"{c['threshold']!r} %)")


def _check_scales(s: Any, where: str, runner: str) -> dict[str, dict[str, Any]]:
    if not isinstance(s, dict) or not s:
        raise EbmlabError(f"{where}: a measured claim needs [scale.small] (and optionally medium, paper) tables")
    for name, sc in s.items():
        if name not in SCALES or not isinstance(sc, dict):
            raise EbmlabError(f"{where}: scale {name!r} is not one of {', '.join(SCALES)} (or not a table)")
        w = f"{where}: scale.{name}"
        _need(sc, "data", str, w)
        seeds = sc.get("seeds", 3)
        if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
            raise EbmlabError(f"{w}.seeds must be an integer ≥ 1, got {seeds!r}")
        for key in ("overrides", "a", "b", "cuda"):
            _maybe(sc, key, dict, w)
        _maybe(sc, "note", str, w)  # what the scale is and how its budget was chosen: on the page and the dry run
        if runner == "grid":
            _need(sc, "grid", str, w)
        if "steps" in sc and (not isinstance(sc["steps"], int) or sc["steps"] < 1):
            raise EbmlabError(f"{w}.steps must be an integer ≥ 1, got {sc['steps']!r}")
    return s


def result_key(scale: str, device: str) -> str:
    """Where a result of runs on ``device`` (cpu or cuda) is recorded: the scale's own name for the CPU, else
    ``<scale>@<device>`` (a column of its own on the page)."""
    return scale if device == "cpu" else f"{scale}@{device}"


def key_parts(key: str) -> tuple[str, str]:
    """(scale, device) of a result key: ``medium@cuda`` → (medium, cuda), ``small`` → (small, cpu)."""
    scale, _, device = key.partition("@")
    return scale, device or "cpu"


def _check_paper_value(pv: Any, where: str) -> dict[str, Any] | None:
    if pv is None:
        return None
    if not isinstance(pv, dict) or not _number(pv.get("value")):
        raise EbmlabError(f"{where}: paper_value must be a table with a numeric value (and spread, margin, where), "
                          f"got {pv!r}")
    for key in ("spread", "margin"):
        if key in pv and not (_number(pv[key]) and pv[key] >= 0):
            raise EbmlabError(f"{where}: paper_value.{key} must be a number ≥ 0, got {pv[key]!r}")
    return pv


def _check_result(r: Any, where: str) -> dict[str, Any]:
    """A recorded result: a table whose per-seed lists hold numbers (or null: a diverged seed)."""
    if not isinstance(r, dict):
        raise EbmlabError(f"{where} must be a table (per-seed values, command, machine), got {type(r).__name__}")
    for key in ("a", "b", "diff"):
        v = r.get(key)
        if v is not None and not (isinstance(v, list) and all(x is None or _number(x) for x in v)):
            raise EbmlabError(f"{where}.{key} must be a list of per-seed numbers, got {v!r}")
    for key in ("a_summary", "b_summary"):
        v = r.get(key)
        if v is not None and not (isinstance(v, dict) and all(_number(v.get(k)) for k in ("mean", "sd", "n"))):
            raise EbmlabError(f"{where}.{key} must be a table of numbers mean, sd, n, got {v!r}")
    if "equal_steps" in r:
        _check_result(r["equal_steps"], f"{where}.equal_steps")
    return r


# what a spec that reads another's runs may say of its own in [comparison]: how it reads them, not what ran; and
# of each arm (comparison.a, comparison.b): its label and the metric it reads
READ_KEYS = ("metric", "direction", "effect", "effect_source", "collapse_check", "decides", "a", "b")
READ_ARM_KEYS = ("label", "metric")


def _read_runs_of(d: dict[str, Any], path: Path, where: str) -> dict[str, Any]:
    """``d`` with the ``[comparison]`` and ``[scale.*]`` of the spec it ``reads`` (module docstring), its own
    ``[comparison]`` keys (:data:`READ_KEYS`) over the source's."""
    from ..config import load_toml

    source = _need(d, "reads", str, where)
    src_path = path.parent / f"{source}.toml"
    if not src_path.is_file():
        raise EbmlabError(f"{where}: reads = {source!r}, but there is no spec {src_path}: name a claim id of "
                          f"this directory")
    if d.get("status") != "measured" or "scale" in d:
        raise EbmlabError(f"{where}: a spec that reads another's runs is measured and has no [scale] tables of its "
                          f"own (they are {source}'s)")
    src = load_toml(src_path)
    if "reads" in src or src.get("status") != "measured":
        raise EbmlabError(f"{where}: reads = {source!r}, which is not a measured spec with runs of its own (it "
                          f"{'reads ' + repr(src['reads']) if 'reads' in src else 'is ' + repr(src.get('status'))})")
    own = _maybe(d, "comparison", dict, where) or {}
    extra = sorted(set(own) - set(READ_KEYS))
    if extra:
        raise EbmlabError(f"{where}: comparison.{', comparison.'.join(extra)}: a spec that reads {source}'s runs "
                          f"names only how it reads them ({', '.join(READ_KEYS)}); the arms and budget are "
                          f"{source}'s")
    src_comparison = dict(src.get("comparison") or {})
    merged = {**src_comparison, **own}
    for arm in ("a", "b"):
        if arm not in own:
            continue
        mine = _need(own, arm, dict, where)
        extra = sorted(set(mine) - set(READ_ARM_KEYS))
        if extra:
            raise EbmlabError(f"{where}: comparison.{arm}.{', '.join(extra)}: a spec that reads {source}'s runs "
                              f"names only an arm's {' and '.join(READ_ARM_KEYS)}; its method and overrides are "
                              f"{source}'s")
        merged[arm] = {**dict(src_comparison.get(arm) or {}), **mine}
    scales = dict(src.get("scale") or {})
    wanted = d.get("scales", list(scales))
    if not (isinstance(wanted, list) and wanted and all(isinstance(x, str) and x in scales for x in wanted)):
        raise EbmlabError(f"{where}: 'scales' must be a non-empty list of {source}'s scales "
                          f"({', '.join(scales)}), got {wanted!r}")
    return {**d, "comparison": merged, "scale": {k: v for k, v in scales.items() if k in wanted}}


def _ran_results(rf: Path) -> dict[str, Any]:
    """The results ``claims run`` recorded in ``rf`` (none when it does not exist), checked."""
    from ..atomic import read_json

    ran = read_json(rf) if rf.is_file() else {}
    if not isinstance(ran, dict):
        raise EbmlabError(f"{rf}: results must be a JSON object of scale → result; restore it from version control")
    for s, r in ran.items():
        if s not in SCALES + ("known_answer",) + tuple(result_key(x, "cuda") for x in SCALES):
            raise EbmlabError(f"{rf}: '{s}' is not a scale ({', '.join(SCALES)}), a scale's CUDA result "
                              f"('small@cuda', ...) or known_answer")
        _check_result(r, f"{rf}: {s}")
    return ran


def load_claim(path: Path, results_dir: Path | None = None) -> Claim:
    """One spec file, checked, with its results (``results_dir/<id>.json``) when recorded."""
    from ..config import load_toml

    where = f"claim spec {path}"
    d = load_toml(path)
    if "reads" in d:
        d = _read_runs_of(d, path, where)
    status = d.get("status")
    if status not in STATUSES:
        raise EbmlabError(f"{where}: status must be one of {', '.join(STATUSES)}, got {status!r}")
    if d.get("paper") not in PAPERS:
        raise EbmlabError(f"{where}: paper must be one of {', '.join(PAPERS)}, got {d.get('paper')!r}")
    for key in ("where", "claim", "networks"):
        _need(d, key, str, where)
    for key in ("note", "test", "reason"):
        _maybe(d, key, str, where)
    order = d.get("order", 100)
    if not isinstance(order, int) or isinstance(order, bool):
        raise EbmlabError(f"{where}: 'order' must be an integer (the row's place in its table), got {order!r}")
    section = d.get("section", "paper")
    if section not in SECTIONS:
        raise EbmlabError(f"{where}: section must be one of {', '.join(SECTIONS)}, got {section!r}")
    lists = {}
    for key in ("evidence", "contrary"):
        v = d.get(key, [])
        if not (isinstance(v, list) and all(isinstance(e, str) for e in v)):
            raise EbmlabError(f"{where}: {key} must be a list of file paths, got {v!r}")
        lists[key] = tuple(v)
    comparison = _check_comparison(d.get("comparison"), where) if status == "measured" else None
    scales = _check_scales(d.get("scale"), where, (comparison or {}).get("runner", "train")) \
        if status == "measured" else {}
    if status == "known_answer":
        _need(d, "test", str, where)
    if status == "untested":
        _need(d, "reason", str, where)
    paper_value = _check_paper_value(d.get("paper_value"), where)
    ran = _ran_results((results_dir or path.parent / "results") / f"{path.stem}.json")
    recorded = d.get("recorded", {})
    if not isinstance(recorded, dict) or any(s not in SCALES for s in recorded):
        raise EbmlabError(f"{where}: recorded must hold tables named by scale ({', '.join(SCALES)})")
    base = _repo_root(path)
    results = {s: {**recorded_result(r, comparison or {}, base, f"{where}: recorded.{s}"), "transcribed": True}
               for s, r in recorded.items()}
    results.update(ran)  # a result `claims run` recorded replaces one transcribed from an earlier benchmark
    return Claim(id=path.stem, paper=d["paper"], where=d["where"], claim=d["claim"], status=status,
                 networks=d["networks"], evidence=lists["evidence"], comparison=comparison, scales=scales,
                 test=d.get("test"), reason=d.get("reason"), paper_value=paper_value, note=d.get("note"),
                 order=order, results=results, path=path, section=section, contrary=lists["contrary"])


def _repo_root(spec_path: Path) -> Path:
    """The directory that benchmark paths in a spec are relative to: the one holding ``benchmarks/``."""
    for parent in spec_path.resolve().parents:
        if (parent / "benchmarks").is_dir():
            return parent
    return spec_path.parent


def _bench_values(report: dict[str, Any], sel: dict[str, Any], metric: str) -> dict[int, float]:
    """seed → value of ``metric`` in the runs of a bench report matching ``sel`` (method, data, setting)."""
    out = {}
    for r in report.get("runs", []):
        if r.get("status") != "ok" or any(r.get(k) != v for k, v in sel.items() if k in ("method", "data",
                                                                                           "setting")):
            continue
        v = (r.get("metrics") or {}).get(metric)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[int(r["seed"])] = float(v)
    return out


def _references_from(f: Path, data: str, metric: str, where: str) -> dict[str, float]:
    """The real, noise and collapsed values of ``metric`` on ``data`` in a references file
    (``benchmarks/claims/references.py``)."""
    from ..atomic import read_json

    if not f.is_file():
        raise EbmlabError(f"{where}: references file {f} does not exist (benchmarks/claims/references.py writes it)")
    rows = read_json(f).get(data) or {}
    return {k: float(rows[k][metric]) for k in ("real", "noise", "collapsed")
            if _number((rows.get(k) or {}).get(metric))}


def recorded_result(r: Any, comparison: dict[str, Any], base: Path, where: str) -> dict[str, Any]:
    """A result transcribed from an earlier benchmark: ``from`` a bench's results.json, each arm selected by
    ``method``, ``data``, ``setting`` (its own ``metric``, its own ``from``: a companion bench of the same settings),
    paired by seed; or from a recorded table that ``from`` names: per-seed lists ``a`` and ``b`` (paired by
    position), or ``diff``, the per-seed paired differences a − b, or ``a_summary``/``b_summary`` (mean, sd, n)."""
    from ..atomic import read_json

    if not isinstance(r, dict) or not isinstance(r.get("from"), str):
        raise EbmlabError(f"{where}: needs from = the benchmark file it was recorded in")
    out: dict[str, Any] = {"recorded_from": r["from"], "data": r.get("data", "")}
    for k in ("a_summary", "b_summary", "references", "note"):
        if k in r:
            out[k] = r[k]
    if isinstance(r.get("references"), str):  # the reference rows of the data set, computed by a script
        out["references"] = _references_from(base / r["references"], out["data"],
                                             comparison.get("metric", ""), where)
    if "a_summary" in r:
        return _check_result(out, where)
    if isinstance(r.get("a"), list) or isinstance(r.get("diff"), list):  # per-seed values transcribed from a table
        for k in ("a", "b", "diff"):
            if k in r:
                if not (isinstance(r[k], list) and all(_number(x) for x in r[k])):
                    raise EbmlabError(f"{where}: {k} must be a list of per-seed numbers, got {r[k]!r}")
                out[k] = [float(x) for x in r[k]]
        return out
    arms = {}
    for which in ("a", "b"):
        if which in r:
            sel = r[which]
            f = base / sel.get("from", r["from"])  # an arm may come from a companion bench of the same settings
            if not f.is_file():
                raise EbmlabError(f"{where}: {f.relative_to(base)} does not exist")
            metric = sel.get("metric") or comparison.get(which, {}).get("metric") or comparison["metric"]
            arms[which] = _bench_values(read_json(f), {"data": r.get("data"), **sel} if r.get("data") else sel,
                                        metric)
    seeds = sorted(set.intersection(*(set(v) for v in arms.values()))) if arms else []
    if "b" in arms and len(seeds) < max(len(v) for v in arms.values()):
        out["note"] = "seeds without a finished run in both arms are left out of the pairing"
    out.update({w: [arms[w][s] for s in seeds] for w in arms})
    out["seeds"] = seeds
    return out


def default_specs() -> Path:
    """``EBMLAB_CLAIMS`` when set, else ``benchmarks/claims`` under the current directory (a checkout)."""
    import os

    return Path(os.environ.get("EBMLAB_CLAIMS") or "benchmarks/claims")


def _spec_dir(specs: str | Path | None) -> Path:
    d = Path(specs) if specs is not None else default_specs()
    if not d.is_dir():
        raise EbmlabError(f"claim specs directory {d} does not exist; run from a checkout of ebmlab (it holds "
                          f"benchmarks/claims/) or pass --specs DIR (or set EBMLAB_CLAIMS)")
    return d


def load_all(specs: str | Path | None = None) -> tuple[list[Claim], dict[str, str]]:
    """Every claim of the spec directory that could be read, by paper (in :data:`PAPERS` order), then ``order``,
    then id; and {file: why} for every spec (or its results file) that could not, one line each."""
    claims, bad = [], {}
    for p in sorted(_spec_dir(specs).glob("*.toml")):
        try:
            claims.append(load_claim(p))
        except EbmlabError as exc:
            bad[str(p)] = str(exc)
    papers = list(PAPERS)
    return sorted(claims, key=lambda c: (papers.index(c.paper), c.order, c.id)), bad


def load_claims(specs: str | Path | None = None) -> list[Claim]:
    """Every claim of the spec directory; the first unreadable file refused with its message (:func:`load_all`
    keeps going instead)."""
    claims, bad = load_all(specs)
    if bad:
        raise EbmlabError(next(iter(bad.values())))
    return claims


def get_claim(claim_id: str, specs: str | Path | None = None) -> Claim:
    from ..errors import did_you_mean

    d = _spec_dir(specs)
    path = d / f"{claim_id}.toml"
    if not path.is_file():
        names = [p.stem for p in d.glob("*.toml")]
        raise EbmlabError(f"unknown claim {claim_id!r}{did_you_mean(claim_id, names)}; `ebmlab claims list` shows "
                          f"them")
    return load_claim(path)
