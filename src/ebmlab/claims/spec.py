"""The claim spec: one TOML file per claim, ``<specs>/<id>.toml``, and its results, ``<specs>/results/<id>.json``.

A spec holds the paper (a key of :data:`PAPERS`), where the claim stands in it (``where``: section, table or
figure), the claim in our words, its ``status`` and what backs it:

- ``status = "measured"``: a ``[comparison]`` — ``metric``, its ``direction`` (higher or lower is better: the claim
  says arm ``a`` beats arm ``b``, or beats ``threshold``), the ``budget`` kind (equal_steps, equal_wall_time,
  equal_evals, same_run: both arms are metrics of the same runs) and the arms ``a`` and ``b`` (each a ``label``, the
  ``method`` and optionally ``metric``: another key of the same summary, e.g. ``base_hq``, and ``overrides``); and
  ``[scale.small|medium|paper]`` tables: ``data``, ``seeds``, ``overrides`` for every run, per-arm ``a``/``b``
  overrides, and for ``paper`` the ``data_files`` it needs, ``steps`` (with ``steps_source``: where in the paper or its
  release that length comes from) and the ``probe_shape`` of its samples;
- ``status = "known_answer"``: ``test``, the pytest node that checks the known answer;
- ``status = "untested"``: ``reason``.

Every spec names the ``networks`` its measurements used and the ``evidence`` files that recorded them. A result per
scale holds the per-seed values of each arm (``a``, ``b``; paired by seed) — or, where a benchmark recorded only
its summary, ``a_summary``/``b_summary`` (mean, sd, n) — with where it came from (``command`` or
``recorded_from``), the machine and the wall time.
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
SCALES = ("small", "medium", "paper")
DIRECTIONS = ("higher", "lower")
BUDGETS = ("equal_steps", "equal_wall_time", "equal_evals", "same_run")


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

    def arm(self, which: str) -> dict[str, Any]:
        assert self.comparison is not None
        return self.comparison[which]


def _need(d: dict[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    v = d.get(key)
    if not isinstance(v, types):
        kinds = types if isinstance(types, tuple) else (types,)
        raise EbmlabError(f"{where}: '{key}' must be {' or '.join(t.__name__ for t in kinds)}, got {v!r}")
    return v


def _check_comparison(c: Any, where: str) -> dict[str, Any]:
    if not isinstance(c, dict):
        raise EbmlabError(f"{where}: a measured claim needs a [comparison] table (metric, direction, budget, a, b)")
    _need(c, "metric", str, where)
    if c.get("direction") not in DIRECTIONS:
        raise EbmlabError(f"{where}: comparison.direction must be one of {', '.join(DIRECTIONS)}, got "
                          f"{c.get('direction')!r}")
    if c.get("budget") not in BUDGETS:
        raise EbmlabError(f"{where}: comparison.budget must be one of {', '.join(BUDGETS)}, got {c.get('budget')!r}")
    for arm in ("a",) + (() if "threshold" in c else ("b",)):
        a = _need(c, arm, dict, where)
        _need(a, "label", str, f"{where}: comparison.{arm}")
        _need(a, "method", str, f"{where}: comparison.{arm}")
    if "threshold" in c and not isinstance(c["threshold"], (int, float)):
        raise EbmlabError(f"{where}: comparison.threshold must be a number, got {c['threshold']!r}")
    return c


def _check_scales(s: Any, where: str) -> dict[str, dict[str, Any]]:
    if not isinstance(s, dict) or not s:
        raise EbmlabError(f"{where}: a measured claim needs [scale.small] (and optionally medium, paper) tables")
    for name, sc in s.items():
        if name not in SCALES or not isinstance(sc, dict):
            raise EbmlabError(f"{where}: scale {name!r} is not one of {', '.join(SCALES)} (or not a table)")
        _need(sc, "data", str, f"{where}: scale.{name}")
        seeds = sc.get("seeds", 3)
        if not isinstance(seeds, int) or seeds < 1:
            raise EbmlabError(f"{where}: scale.{name}.seeds must be an integer ≥ 1, got {seeds!r}")
    return s


def load_claim(path: Path, results_dir: Path | None = None) -> Claim:
    """One spec file, checked, with its results (``results_dir/<id>.json``) when recorded."""
    from ..config import load_toml
    from ..runs import read_json

    where = f"claim spec {path}"
    d = load_toml(path)
    status = d.get("status")
    if status not in STATUSES:
        raise EbmlabError(f"{where}: status must be one of {', '.join(STATUSES)}, got {status!r}")
    if d.get("paper") not in PAPERS:
        raise EbmlabError(f"{where}: paper must be one of {', '.join(PAPERS)}, got {d.get('paper')!r}")
    for key in ("where", "claim", "networks"):
        _need(d, key, str, where)
    evidence = d.get("evidence", [])
    if not (isinstance(evidence, list) and all(isinstance(e, str) for e in evidence)):
        raise EbmlabError(f"{where}: evidence must be a list of file paths, got {evidence!r}")
    comparison = _check_comparison(d.get("comparison"), where) if status == "measured" else None
    scales = _check_scales(d.get("scale"), where) if status == "measured" else {}
    if status == "known_answer":
        _need(d, "test", str, where)
    if status == "untested":
        _need(d, "reason", str, where)
    results_dir = results_dir or path.parent / "results"
    rf = results_dir / f"{path.stem}.json"
    ran = read_json(rf) if rf.is_file() else {}
    if not isinstance(ran, dict):
        raise EbmlabError(f"{rf}: results must be a JSON object of scale → result; restore it from version control")
    recorded = d.get("recorded", {})
    if not isinstance(recorded, dict) or any(s not in SCALES for s in recorded):
        raise EbmlabError(f"{where}: recorded must hold tables named by scale ({', '.join(SCALES)})")
    base = _repo_root(path)
    results = {s: recorded_result(r, comparison or {}, base, f"{where}: recorded.{s}") for s, r in recorded.items()}
    results.update(ran)  # a result `claims run` recorded replaces the one read from an earlier benchmark
    return Claim(id=path.stem, paper=d["paper"], where=d["where"], claim=d["claim"], status=status,
                 networks=d["networks"], evidence=tuple(evidence), comparison=comparison, scales=scales,
                 test=d.get("test"), reason=d.get("reason"), paper_value=d.get("paper_value"), note=d.get("note"),
                 order=int(d.get("order", 100)), results=results, path=path)


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
    from ..runs import read_json

    if not f.is_file():
        raise EbmlabError(f"{where}: references file {f} does not exist (benchmarks/claims/references.py writes it)")
    rows = read_json(f).get(data) or {}
    return {k: float(rows[k][metric]) for k in ("real", "noise", "collapsed")
            if isinstance((rows.get(k) or {}).get(metric), (int, float))}


def recorded_result(r: Any, comparison: dict[str, Any], base: Path, where: str) -> dict[str, Any]:
    """A result read from an earlier benchmark: ``from`` a bench's results.json, each arm selected by ``method``,
    ``data``, ``setting`` (its own ``metric``, its own ``from``: a companion bench of the same settings), paired by
    seed; or transcribed from a recorded table that ``from`` names: per-seed lists ``a`` and ``b`` (paired by
    position), or ``diff``, the per-seed paired differences a − b, or ``a_summary``/``b_summary`` (mean, sd, n)."""
    from ..runs import read_json

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
        return out
    if isinstance(r.get("a"), list) or isinstance(r.get("diff"), list):  # per-seed values transcribed from a table
        for k in ("a", "b", "diff"):
            if k in r:
                if not (isinstance(r[k], list) and all(isinstance(x, (int, float)) for x in r[k])):
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


def load_claims(specs: str | Path | None = None) -> list[Claim]:
    """Every claim of the spec directory, by paper (in :data:`PAPERS` order), then ``order``, then id."""
    d = Path(specs) if specs is not None else default_specs()
    if not d.is_dir():
        raise EbmlabError(f"claim specs directory {d} does not exist; run from a checkout of ebmlab (it holds "
                          f"benchmarks/claims/) or pass --specs DIR (or set EBMLAB_CLAIMS)")
    claims = [load_claim(p) for p in sorted(d.glob("*.toml"))]
    papers = list(PAPERS)
    return sorted(claims, key=lambda c: (papers.index(c.paper), c.order, c.id))


def get_claim(claim_id: str, specs: str | Path | None = None) -> Claim:
    from ..errors import did_you_mean

    claims = {c.id: c for c in load_claims(specs)}
    if claim_id not in claims:
        raise EbmlabError(f"unknown claim {claim_id!r}{did_you_mean(claim_id, claims)}; `ebmlab claims list` shows "
                          f"them")
    return claims[claim_id]
