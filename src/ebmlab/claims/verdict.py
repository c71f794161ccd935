"""The verdict rules, applied by code (the README's "Verdicts" says the same).

A measured claim is judged at its largest recorded scale S (small < medium < paper) from the per-seed values of its
arms, in this order:

1. **Reproduced** / **not reproduced** — only at the paper's scale, for a claim with ``paper_value``: an
   equivalence test. With ≥ 3 seeds, the 95 % Student-t interval of arm a's mean lies inside the paper's value ±
   the spec's ``margin`` (plus the paper's ``spread``): reproduced; it lies wholly outside that band: not
   reproduced. Otherwise the comparison below decides. (A wider interval never reproduces more easily: it has to
   fit inside the band.)
2. **Inconclusive — the metric cannot separate**: on images, the metric does not rank the real data above the
   noise and the collapsed references recorded with the result by at least 10 % of the larger value. A claim about
   such a metric (precision: a collapsed set lies inside the data) names a ``collapse_check``, a metric that does
   separate (the mode count), recorded for the same runs: when both arms are off its noise floor (rule 3), the
   comparison goes on, and the row says so with the check's values.
3. **Inconclusive — an arm did not learn**: each arm's mean is compared with the noise floor and the real data of
   its metric (recorded per arm at its sample count; on 2D data too). An arm no better than noise by 10 % of the
   real–noise gap "did not leave the noise floor"; one better than the real data by that much "scores beyond the
   real data" (collapse, or a metric artefact). Such an arm decides nothing.
4. **Equal compute needs equal machine speed**: an equal-compute reading on the CPU clock (the result of a claim
   whose ``budget`` is ``equal_wall_time``, or its curves' compute readings) leaves out each seed whose two arms'
   runs recorded machine speeds (``ebmlab.machine``: the median probe of each run) more than
   :data:`SPEED_TOLERANCE` apart — the same CPU seconds were not the same compute —, and says which with their
   speeds. A seed with a run that recorded no speed (made before the probe) is kept only where its two runs trained
   side by side (their sessions overlapped on one host: one machine at one time), else left out as not verified; a
   result recorded before speeds were is judged as before, and the row says equal compute was assumed. Equal-steps
   readings are not affected. Which runs a seed's pair is are chosen before this rule (``runners.pair_seed``: a
   seed's run may exist once per CPU kind, or again on one kind, and the first pair that agrees is read).
5. **Diverged seeds are evidence**: a seed whose run diverged scores its arm's noise floor (a diverged model is no
   better than noise); without a noise reference its pair is left out, and the row says so.
6. The per-seed difference a − b (b replaced by the claim's ``threshold`` where it names one), signed so that
   positive is the claim's direction, paired by seed, needs ≥ 3 pairs; its 95 % Student-t interval (Welch's from
   each arm's mean, sd and n where a benchmark recorded only those) gives **consistent** (above 0), **contradicted**
   (below 0) or **inconclusive** (containing 0).
7. **The paper's effect**: with the paper's difference ``effect`` in the spec, an interval whose upper end is below
   it **excludes the paper's effect** — its own verdict where the interval contains 0 (a small effect may exist,
   the paper's does not); a consistent row is marked "smaller than the paper's effect". Where arm b's mean leaves
   less room to the real data than that effect (a baseline that does not collapse here while the paper's did), no
   interval could reach it: the row says the effect cannot be weighed and keeps the verdict of rule 6.
8. **One scorer per seed**: a seed whose two arms' runs were scored by different classifiers (their summaries'
   ``clf_sha256``, recorded per arm as ``scorer``: the stacked modes and the classifier-feature metrics depend on
   the classifier, which each machine trains for itself) is left out, and the row says which with the two
   classifiers; a result recorded before scorers were is judged as before.

Known answers: **known answer holds** (its test passes) or **known answer fails**. **Untested**: with the reason, or
no result yet. A row whose result was transcribed from an earlier benchmark, or whose spec's arms no longer resolve
to the recorded configurations (**stale**), keeps its verdict with the mark.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from .curves import CLOCKS
from .spec import SCALES, Claim, key_parts, result_key

MIN_SEEDS = 3
SEPARATION = 0.1  # a reference must be worse than the real data by at least this fraction of the larger magnitude
# rule 4: two runs' machine speeds (probe CPU-s) may differ by this fraction of the faster's: above the spread of a
# run's median probe and the 0-30 % a step's CPU time grows beside another run, below the 2x seen between sessions.
# 20 % on the probe is 25-29 % on the arms' steps: with the CPU's kernels capped from AVX2 to SSE4.1 the probe
# slowed 2.0-2.3x and the image arms' steps 2.6-3.0x, i.e. as the probe's ratio to the power 1.2-1.4
# (benchmarks/machine/results.md)
SPEED_TOLERANCE = 0.20
FLOOR = 0.1  # an arm must beat the noise floor by this fraction of the real–noise gap (and not beat the real data by it)


@dataclasses.dataclass(frozen=True)
class Verdict:
    label: str  # known answer holds | known answer fails | reproduced | not reproduced | consistent | contradicted |
    #             inconclusive | excludes the paper's effect | untested
    scale: str | None
    detail: str
    interval: tuple[float, float] | None = None
    marks: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        base = self.label
        if self.label in ("consistent", "contradicted", "inconclusive", "excludes the paper's effect") and self.scale:
            base = f"{self.label} at {self.scale} scale"
        return base + "".join(f" ({m})" for m in self.marks)


def t_interval(d: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, lower, upper) of the Student-t interval of the mean of d (n ≥ 2)."""
    from scipy import stats

    n = len(d)
    m = sum(d) / n
    sd = math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1))
    h = stats.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return m, m - h, m + h


def welch_interval(a: dict[str, float], b: dict[str, float], level: float = 0.95) -> tuple[float, float, float]:
    """(difference of means, lower, upper) of Welch's interval from each arm's mean, sd and n."""
    from scipy import stats

    va, vb = a["sd"] ** 2 / a["n"], b["sd"] ** 2 / b["n"]
    m = a["mean"] - b["mean"]
    se = math.sqrt(va + vb)
    if se == 0:
        return m, m, m
    df = (va + vb) ** 2 / ((va ** 2 / (a["n"] - 1) if a["n"] > 1 else 0) + (vb ** 2 / (b["n"] - 1) if b["n"] > 1 else 0)
                           or float("inf"))
    h = stats.t.ppf(0.5 + level / 2, df) * se
    return m, m - h, m + h


def largest_scale(claim: Claim) -> str | None:
    recorded = [s for s in SCALES if s in claim.results]
    return recorded[-1] if recorded else None


def arm_references(r: dict[str, Any], which: str) -> dict[str, float]:
    """An arm's references: per arm (``references.a``) as ``claims run`` records them, or one set for both (a
    transcribed result)."""
    refs = r.get("references")
    if not isinstance(refs, dict):
        return {}
    mine = refs.get(which)
    if isinstance(mine, dict):
        return {k: float(v) for k, v in mine.items()}
    return {k: float(v) for k, v in refs.items() if not isinstance(v, dict)} if "real" in refs or "noise" in refs \
        else {}


def _separates(r: dict[str, Any], sign: int) -> bool:
    """Whether the references show the metric ranking the real data clearly above noise and collapse: each worse
    than the real data by ≥ :data:`SEPARATION` of the larger magnitude (uniform noise hits 992 of stacked digits'
    1000 arg-max modes: the mode count cannot tell a model from noise there)."""
    for which in ("a", "b"):
        refs = arm_references(r, which)
        if "real" not in refs or "collapsed" not in refs:
            continue
        real = refs["real"]
        for k in ("noise", "collapsed"):
            ref = refs.get(k)
            if isinstance(ref, (int, float)) and sign * (real - ref) < SEPARATION * max(abs(real), abs(ref)):
                return False
    return True


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def arm_state(values: list[float], refs: dict[str, float], sign: int) -> str | None:
    """Why an arm decides nothing (rule 3), or None: its mean at the noise floor, or beyond the real data."""
    if not values or "noise" not in refs or "real" not in refs:
        return None
    noise, real = refs["noise"], refs["real"]
    gap = sign * (real - noise)
    if gap <= 0:
        return None
    m = sum(values) / len(values)
    pct, side = f"{FLOOR:.0%}", "above" if sign > 0 else "below"
    if sign * (m - noise) <= FLOOR * gap:
        line = noise + sign * FLOOR * gap  # the line an arm must pass, printed so the row shows why
        return (f"did not leave the noise floor ({_fmt(m)} against noise {_fmt(noise)}, real data {_fmt(real)}: "
                f"it must pass noise by {pct} of the gap, {side} {_fmt(line)})")
    if sign * (m - real) > FLOOR * gap:
        line = real + sign * FLOOR * gap
        return (f"scores beyond the real data ({_fmt(m)} against real data {_fmt(real)}, noise {_fmt(noise)}: "
                f"more than {pct} of the gap past the data, {side} {_fmt(line)})")
    return None


def _scored(r: dict[str, Any], which: str) -> tuple[list[float | None], int]:
    """An arm's per-seed values with each diverged seed scored as its noise floor (rule 5); how many were."""
    vals = list(r.get(which) or [])
    div = set((r.get("diverged") or {}).get(which, [])) if isinstance(r.get("diverged"), dict) else set()
    noise = arm_references(r, which).get("noise")
    n = 0
    for i, s in enumerate(r.get("seeds", range(len(vals)))):
        if i < len(vals) and vals[i] is None and s in div and noise is not None:
            vals[i], n = noise, n + 1
    return vals, n


def seed_pair(speed_a: Any, speed_b: Any, spans_a: Any, spans_b: Any) -> tuple[bool, str]:
    """Rule 4 on one seed's two runs: (kept, how) — kept when both probed speeds lie within
    :data:`SPEED_TOLERANCE`, or, where a run recorded none, when the two trained side by side
    (``ebmlab.machine.side_by_side``); ``how`` says which, or why the seed is left out."""
    from ..machine import side_by_side, speed_value

    x, y = speed_value(speed_a), speed_value(speed_b)
    if x is not None and y is not None:
        if max(x, y) > (1 + SPEED_TOLERANCE) * min(x, y):
            return False, (f"its arms ran at machine speeds {x:.3g} / {y:.3g} CPU-s of the probe "
                           f"({max(x, y) / min(x, y):.2f}×), not equal compute")
        return True, f"machine speeds {x:.3g} / {y:.3g} CPU-s of the probe"
    if side_by_side(spans_a, spans_b):
        return True, "trained side by side (no probes)"
    return False, "a run of it recorded no machine speed and its arms did not train side by side: not verified"


def speed_apart(claim: Claim, r: dict[str, Any]) -> tuple[dict[int, str], str]:
    """Rule 4 on an equal-compute CPU reading: {seed index: why it is left out} — its arms' runs probed machine
    speeds more than :data:`SPEED_TOLERANCE` apart, or a run recorded no speed and the two did not train side by
    side (``ebmlab.machine.side_by_side``) — and what the row says of the seeds it keeps without probes or of a
    result recorded before speeds were; ({}, "") for any other reading (an equal-steps pair or point, a
    fixed-steps claim, runs on a GPU: the wall clock)."""
    if ((claim.comparison or {}).get("budget") != "equal_wall_time" or r.get("clock", "cpu") != "cpu"
            or not isinstance(r.get("b"), list) or not isinstance(r.get("a"), list)):
        return {}, ""
    sp, spans = r.get("speed"), r.get("spans")
    if not isinstance(sp, dict):
        return {}, "; machine speeds not recorded (a result made before they were): equal compute assumed"
    n = len(r["b"])

    def per_seed(table: Any, w: str) -> list[Any]:
        got = table.get(w) if isinstance(table, dict) else None
        got = list(got) if isinstance(got, list) else []
        return (got + [None] * n)[:n]

    (sa, sb), (pa, pb) = (per_seed(sp, "a"), per_seed(sp, "b")), (per_seed(spans, "a"), per_seed(spans, "b"))
    out, kept = {}, 0
    for i in range(n):
        ok, how = seed_pair(sa[i], sb[i], pa[i], pb[i])
        if not ok:
            out[i] = how
        elif how.startswith("trained side by side"):
            kept += 1
    note = (f"; {kept} seed{'s' if kept != 1 else ''} kept without probes: {'their' if kept != 1 else 'its'} arms "
            f"trained side by side (overlapping sessions on one host)" if kept else "")
    return out, note


def scorer_apart(r: dict[str, Any]) -> dict[int, str]:
    """Rule 8: {seed index: why it is left out} for each seed whose arms' runs name different classifiers."""
    sc = r.get("scorer")
    if not isinstance(sc, dict) or not isinstance(sc.get("a"), list) or not isinstance(sc.get("b"), list):
        return {}
    return {i: f"its arms were scored by different classifiers ({x[:8]} / {y[:8]}): not one measurement"
            for i, (x, y) in enumerate(zip(sc["a"], sc["b"]))
            if isinstance(x, str) and isinstance(y, str) and x != y}


def _difference(claim: Claim, r: dict[str, Any], sign: int, skip: frozenset[int] = frozenset()
                ) -> tuple[float, float, float, int] | str:
    """(mean, lower, upper, n) of the signed difference, or why there is none; ``skip``: seed indices left out
    (rule 4)."""
    c = claim.comparison or {}
    thr = c.get("threshold")
    if isinstance(r.get("diff"), list):
        d = [sign * float(x) for x in r["diff"] if x is not None]
        if len(d) < MIN_SEEDS:
            return f"{len(d)} seeds (the rule needs ≥ {MIN_SEEDS})"
        m, lo, hi = t_interval(d)
        return m, lo, hi, len(d)
    if isinstance(r.get("a"), list):
        a, _ = _scored(r, "a")
        b = [float(thr)] * len(a) if thr is not None else _scored(r, "b")[0]
        if len(a) != len(b):
            return f"arms recorded at different seed counts ({len(a)} vs {len(b)}): not paired"
        pairs = [(x, y) for i, (x, y) in enumerate(zip(a, b)) if x is not None and y is not None and i not in skip]
        if len(pairs) < MIN_SEEDS:
            dropped = len(a) - len(pairs) - len(skip)
            return (f"{len(pairs)} seed{'s' if len(pairs) != 1 else ''} with both arms (the rule needs ≥ {MIN_SEEDS})"
                    + (f"; {dropped} left out (a run diverged without a noise reference, or lacks the metric)"
                       if dropped else ""))
        m, lo, hi = t_interval([sign * (x - y) for x, y in pairs])
        return m, lo, hi, len(pairs)
    sa, sb = r.get("a_summary"), r.get("b_summary")
    if isinstance(sa, dict) and (isinstance(sb, dict) or thr is not None):
        sb = sb if isinstance(sb, dict) else {"mean": float(thr or 0.0), "sd": 0.0, "n": sa["n"]}
        if min(sa["n"], sb["n"]) < MIN_SEEDS:
            return f"{min(sa['n'], sb['n'])} seeds (the rule needs ≥ {MIN_SEEDS})"
        m, lo, hi = welch_interval(sa, sb)
        if sign < 0:
            m, lo, hi = -m, -hi, -lo
        return m, lo, hi, min(sa["n"], sb["n"])
    return "no per-seed values or summaries recorded"


def _speed_text(r: dict[str, Any], apart: dict[int, str], note: str) -> str:
    """Rule 4's words on a row: each seed left out and why, then what it says of the seeds kept."""
    seeds = list(r.get("seeds") or range(len(r.get("a") or [])))
    return "".join(f"; seed {seeds[i] if i < len(seeds) else i} left out: {why}"
                   for i, why in sorted(apart.items())) + note


def _equivalence(claim: Claim, r: dict[str, Any]) -> tuple[str, str] | None:
    """(reproduced | not reproduced, why) by the paper-scale equivalence test (rule 1), or None."""
    pv = claim.paper_value
    if not pv or "margin" not in pv or not isinstance(r.get("a"), list):
        return None
    a = [float(x) for x in r["a"] if x is not None]
    if len(a) < MIN_SEEDS:
        return None
    m, lo, hi = t_interval(a)
    band = float(pv["margin"]) + float(pv.get("spread", 0.0))
    v = float(pv["value"])
    what = f"ours {_fmt(m)} [{_fmt(lo)}, {_fmt(hi)}] (95 %, n = {len(a)}) against the paper's {_fmt(v)} ± {_fmt(band)}"
    if v - band <= lo and hi <= v + band:
        return "reproduced", what + ": inside"
    if hi < v - band or lo > v + band:
        return "not reproduced", what + ": wholly outside"
    return None


def _guard(claim: Claim, r: dict[str, Any], sign: int) -> str | None:
    c = claim.comparison or {}
    for which in ("a", "b"):
        if which not in c or not isinstance(r.get(which), list):
            continue
        vals = [x for x in _scored(r, which)[0] if x is not None]
        why = arm_state(vals, arm_references(r, which), sign)
        if why:
            return f"arm {which} ({c[which]['label']}) {why}: it decides nothing"
    return None


def _room(claim: Claim, r: dict[str, Any], sign: int) -> float | None:
    """How far, in the claim's direction, arm a could get ahead of arm b's mean before it reached the real data's
    value (arm a's reference); None without a real-data reference or a per-seed arm b (a threshold claim)."""
    c = claim.comparison or {}
    real = arm_references(r, "a").get("real")
    vals = [x for x in _scored(r, "b")[0] if isinstance(x, (int, float))] if isinstance(r.get("b"), list) else []
    if real is None or not vals or "threshold" in c:
        return None
    return sign * (real - sum(vals) / len(vals))


def _collapse_check(claim: Claim, r: dict[str, Any]) -> tuple[bool, str]:
    """Rule 2's way out for a metric that cannot tell a model from collapse (precision: a single repeated image lies
    inside the data): the spec's ``collapse_check``, a metric that can (the mode count), recorded per seed for both
    arms of the same runs (``r["collapse_check"]``). It holds when that metric separates the real data from noise and
    collapse and each arm's mean on it is off the noise floor (rule 3); returns whether it holds and what it found."""
    from ..metrics import registry

    c = claim.comparison or {}
    name = c["collapse_check"]
    check = r.get("collapse_check")
    if not isinstance(check, dict) or check.get("metric") != name:
        return False, f"no {name} was recorded beside it to check the arms for collapse"
    m = registry.spec(name)
    sign = -1 if m is not None and m.better == "↓" else 1
    refs = check.get("references") if isinstance(check.get("references"), dict) else {}
    as_result = {"references": refs, "a": check.get("a"), "b": check.get("b")}
    if not _separates(as_result, sign):
        return False, f"{name} does not separate the real data from noise and collapse here either"
    seen = []
    for which in ("a", "b"):
        vals = [float(x) for x in check.get(which) or [] if isinstance(x, (int, float))]
        own = arm_references(as_result, which)
        if not vals or (why := arm_state(vals, own, sign)):
            return False, f"on {name}, arm {which} ({c[which]['label']}) {why or 'has no value'}"
        seen.append(f"{c[which]['label']} {_fmt(sum(vals) / len(vals))}")
    own = arm_references(as_result, "a")
    return True, (f"on {name} both arms are off the floors: {', '.join(seen)} (collapsed "
                  f"{_fmt(own.get('collapsed', math.nan))}, noise {_fmt(own.get('noise', math.nan))}, real "
                  f"{_fmt(own.get('real', math.nan))})")


def judge(claim: Claim, r: dict[str, Any], scale: str) -> Verdict:
    """The verdict of one result ``r`` at ``scale`` by the module's rules 1–7."""
    c = claim.comparison or {}
    sign = 1 if c.get("direction") == "higher" else -1
    if scale == "paper" and (eq := _equivalence(claim, r)):
        return Verdict(eq[0], scale, eq[1])
    checked = ""
    if not _separates(r, sign):
        cannot = (f"{c['metric']} does not rank the real data above the noise and collapsed references here: it "
                  f"cannot separate a model from collapse")
        if not c.get("collapse_check"):
            return Verdict("inconclusive", scale, cannot)
        held, found = _collapse_check(claim, r)
        if not held:
            return Verdict("inconclusive", scale, f"{cannot}, and {found}")
        checked = f"; {c['metric']} cannot tell a model from collapse, and {found}"
    if why := _guard(claim, r, sign):
        return Verdict("inconclusive", scale, why)
    apart, note = speed_apart(claim, r)
    apart = {**scorer_apart(r), **apart}
    speed = _speed_text(r, apart, note)
    diff = _difference(claim, r, sign, frozenset(apart))
    if isinstance(diff, str):
        return Verdict("inconclusive", scale, diff + speed)
    m, lo, hi, n = diff
    scored = sum(_scored(r, w)[1] for w in ("a", "b")) if isinstance(r.get("a"), list) else 0
    left_out = len(r["a"]) - n - len(apart) if isinstance(r.get("a"), list) else 0
    what = (f"Δ = {m:+.4g} [{lo:+.4g}, {hi:+.4g}] (95 %, n = {n}; > 0 favours the claim)"
            + (f"; {scored} diverged run{'s' if scored != 1 else ''} scored as noise" if scored else "")
            + (f"; {left_out} seed{'s' if left_out != 1 else ''} left out (an arm's run lacks the metric)"
               if left_out else "") + speed
            + ("; no spread: every seed gave the same difference" if hi - lo <= 1e-12 * max(1.0, abs(m)) else "")
            + checked)
    label = "consistent" if lo > 0 else "contradicted" if hi < 0 else "inconclusive"
    effect = c.get("effect")
    marks: tuple[str, ...] = ()
    room = _room(claim, r, sign)
    if isinstance(effect, (int, float)) and room is not None and room < effect:
        what += (f"; the paper's effect {effect:+.4g} ({c.get('effect_source', 'its report')}) cannot be weighed: "
                 f"arm b ({c['b']['label']}) leaves only {room:+.4g} to the real data")
    elif isinstance(effect, (int, float)) and hi < effect:
        what += f"; the paper's effect {effect:+.4g} ({c.get('effect_source', 'its report')}) lies above the interval"
        if label == "inconclusive":
            label = "excludes the paper's effect"
        elif label == "consistent":
            marks = ("smaller than the paper's effect",)
    return Verdict(label, scale, what, (lo, hi), marks)


def verdict(claim: Claim, stale: bool = False) -> Verdict:
    """The claim's verdict by the module's rules, at its largest recorded scale (``stale``: the row's mark, from
    :func:`ebmlab.claims.render.stale`)."""
    if claim.status == "untested":
        return Verdict("untested", None, claim.reason or "")
    if claim.status == "known_answer":
        r = claim.results.get("known_answer") or {}
        if r.get("test") == "passed":
            return Verdict("known answer holds", "exact", f"{claim.test} passes")
        if r.get("test") == "failed":
            return Verdict("known answer fails", "exact", f"{claim.test} fails")
        return Verdict("untested", None, f"{claim.test} not run yet (`ebmlab claims run {claim.id}`)")
    scale = largest_scale(claim)
    if scale is None:
        first = next((s for s in SCALES if s in claim.scales), "small")  # the cheapest scale the spec declares
        return Verdict("untested", None, f"no result recorded yet (`ebmlab claims run {claim.id} --scale {first}`)")
    r = claim.results[scale]
    v = judge(claim, r, scale)
    marks = v.marks + (("transcribed",) if r.get("transcribed") else ()) + (("stale",) if stale else ())
    return dataclasses.replace(v, marks=marks)


def equal_steps_verdict(claim: Claim, key: str | None = None) -> Verdict | None:
    """The verdict of an equal-compute claim's equal-steps pair at its largest scale (or of the result ``key``, e.g.
    ``medium@cuda``), when recorded."""
    key = key or largest_scale(claim)
    r = claim.results.get(key or "", {})
    pair = r.get("equal_steps")
    if not isinstance(pair, dict):
        return None
    return _judge_reading(claim, r, pair, scale_of(key))


def scale_of(key: str | None) -> str | None:
    """The scale of a result key (``medium@cuda`` → ``medium``)."""
    return key_parts(key)[0] if key else None


def device_verdicts(claim: Claim, device: str = "cuda") -> dict[str, Verdict]:
    """Result key → verdict of the results recorded from runs on ``device`` (``<scale>@cuda``), by the same rules as
    the CPU's; none for a claim that is not measured."""
    if claim.status != "measured":
        return {}
    return {key: judge(claim, claim.results[key], scale_of(key) or "small")
            for s in SCALES if (key := result_key(s, device)) in claim.results}


def _judge_reading(claim: Claim, r: dict[str, Any], reading: dict[str, Any], scale: str | None,
                   compute: bool = False) -> Verdict:
    """The verdict of a second reading of a result's runs (an equal-steps pair, a curve's point), judged with the
    result's references and without its diverged seeds; ``compute``: a reading at equal compute, with the runs'
    machine speeds (rule 4)."""
    speed = ({"speed": r.get("speed"), "spans": r.get("spans"), "clock": r.get("clock", "cpu")} if compute
             else {"clock": "steps"})
    scorer = reading.get("scorer", r.get("scorer"))  # a curve's point reads the result's own runs
    return judge(claim, {**reading, "references": r.get("references"), "diverged": {}, "scorer": scorer, **speed},
                 scale or "small")


def holds_from(claim: Claim, key: str | None = None) -> dict[str, str]:
    """From which point on the claim's direction holds with 95 % confidence along the learning curves of the result
    ``key`` (the largest scale by default): for ``steps`` and ``compute`` (:func:`ebmlab.claims.curves.along`), the
    first point from which every later reading is **consistent** by the same rules (the readings judged without a
    ``collapse_check``: the curves hold the claim's metric alone), or that the last reading is not; absent where the
    curves give no reading of that kind."""
    from .curves import along

    key = key or largest_scale(claim)
    r = claim.results.get(key or "", {})
    curves = r.get("curves")
    if not isinstance(curves, dict) or not curves:
        return {}
    clock = r.get("clock", "cpu") if r.get("clock") in CLOCKS else "cpu"
    unit = CLOCKS[clock][2]
    out = {}
    for kind, points in along({w: [[tuple(p) for p in c] for c in runs] for w, runs in curves.items()},
                              clock).items():
        if not points:
            continue
        labels = [_judge_reading(claim, r, reading, scale_of(key), kind == "compute").label for _, reading in points]
        i = len(labels)
        while i > 0 and labels[i - 1] == "consistent":
            i -= 1
        if i == len(labels):
            out[kind] = "not at the one point read" if len(labels) == 1 else f"not at the last of {len(labels)} points"
        else:
            at = f"step {points[i][0]:.0f}" if kind == "steps" else f"{points[i][0]:.0f} {unit}"
            out[kind] = f"from {at} on ({len(labels) - i} of {len(labels)} point{'s' if len(labels) > 1 else ''})"
    return out


def curve_verdicts(claim: Claim, key: str | None = None) -> dict[str, Verdict]:
    """The verdicts of the learning curves' readings (``ebmlab.claims.curves``) at the largest recorded scale (or of
    the result ``key``), by the same rules: ``equal_steps`` (at the largest step every run reached) and
    ``equal_compute`` (at the CPU time — the wall time, for runs on a GPU — every run reached), each with the step
    or time it was read at in its detail; those not recorded are absent."""
    key = key or largest_scale(claim)
    r = claim.results.get(key or "", {})
    out = {}
    for kind, reading in (r.get("curve_readings") or {}).items():
        if not isinstance(reading, dict):
            continue
        v = _judge_reading(claim, r, reading, scale_of(key), kind == "equal_compute")
        at = reading.get("read_at") or {}
        where = f"at step {at['step']}" if "step" in at else next(
            (f"at {at[k]} {unit}" for _, k, unit in CLOCKS.values() if k in at), "at an unrecorded time")
        out[kind] = dataclasses.replace(v, detail=f"{where}: {v.detail}")
    return out
