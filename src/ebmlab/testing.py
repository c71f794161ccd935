"""The method contract as checks anyone can run: ``check_method("name")`` runs on a registered method the checks the
project runs on its own (as scikit-learn's ``check_estimator`` does for estimators), each also callable alone:

- :func:`check_declarations` — every option has a range and meaning; the optional abilities' flags agree with the
  methods that give them; a method with its own guided sampler has a generator and an energy;
- :func:`check_step` — a training step gives finite 0-d metrics, moves every network in ``networks`` and none in
  ``frozen``; samples and energies have the data's shape and are finite;
- :func:`check_round_trip` — a save/load round trip restores the state bit for bit, and the next step is identical;
- :func:`check_sampling` — sampling is deterministic given a generator;
- :func:`check_no_host_reads` — a step reads no tensor value on the host (``ebmlab.syncs``);
- :func:`check_step_kinds` — steps of one declared kind run the same operations (what one captured graph
  replays); a method that declares itself uncapturable says why, and its steps do differ;
- :func:`check_capture` — steps replayed from the CPU emulation of a captured graph (``ebmlab.graphs``) leave
  exactly the state eager steps leave (networks, optimizers, random-number generator, own state, moving average,
  budget counts).

Every check runs on small settings (:class:`Case`): :data:`CASES` holds one row per built-in method (the project's
tests read it); a method without a row gets the row its data kinds imply. A failed check raises ``AssertionError``
saying which method and what.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from . import graphs
from .budget import Budget
from .config import field_types, resolve_config
from .data import get_dataset
from .methods import Method, get_method
from .options import entry
from .placement import Placement, build_method
from .syncs import CountHostReads


@dataclass(frozen=True)
class Case:
    """Small settings under which a method's contract is checked.

    ``data``: the data set its steps train on; ``settings``: options under which every kind of its steps occurs
    within a few steps, at small sizes; ``replay_steps``: steps of the replay check (every kind warmed up, captured
    and replayed twice); ``more_data``: data sets whose path through a step differs (images: conv nets, LOBPCG)."""

    data: str
    settings: dict[str, Any] = field(default_factory=dict)
    replay_steps: int = 10
    more_data: tuple[str, ...] = ()


_SMALL_LN = {"hidden": (16, 8), "g_hidden": (16,), "labels": 20, "labelled_batch": 16}
CASES: dict[str, Case] = {
    "gan": Case("ring8", more_data=("digits",)),
    "vgan": Case("ring8", more_data=("digits",)),
    "vgan_vcd": Case("ring8", {"reservoir": 40}, more_data=("digits",)),  # filling kinds 8..32, then "step"
    "kale": Case("ring8", {"burst_every": 3, "n_critic_burst": 2}, replay_steps=16, more_data=("digits",)),
    "bib": Case("ring8", more_data=("digits",)),
    "bib_jac_diff": Case("ring8", more_data=("digits",)),
    "bib_mi_gp": Case("ring8", more_data=("digits",)),
    "bib_mi_diff": Case("ring8", more_data=("digits",)),
    "bib_onesided": Case("ring8", more_data=("digits",)),
    "vae": Case("ring8", more_data=("digits",)),
    "lbt": Case("ring8", more_data=("digits",)),
    "lbt_gan": Case("ring8", more_data=("digits",)),
    "ebgan": Case("ring8", more_data=("digits",)),
    "ebgan_pt": Case("ring8", more_data=("digits",)),
    "ebgan_ln": Case("digits", _SMALL_LN),
    "bihm": Case("digits_bin"),
    "rws": Case("digits_bin"),
}
BATCH = 16  # rows of a checked step


def case(name: str) -> Case:
    """The row of :data:`CASES`, or for a method without one the row its data kinds imply."""
    if name in CASES:
        return CASES[name]
    cls = get_method(name)
    if cls.needs_labels:
        return Case("digits")
    if cls.data_kinds == ("binary",):
        return Case("digits_bin")
    return Case("ring8")


def build(name: str, data: str | None = None, *, seed: int = 0, **over: Any) -> Method:
    """The method on the CPU with its case's small settings (and ``over`` on top)."""
    c = case(name)
    cfg = resolve_config(name, data or c.data, overrides={"batch_size": BATCH, "seed": seed, **c.settings, **over})
    return build_method(cfg, torch.device("cpu"))


def batches(name: str, n: int, data: str | None = None, seed: int = 0) -> list[Tensor]:
    """``n`` batches of real training data, drawn from a fixed seed."""
    ds = get_dataset(data or case(name).data)
    g = torch.Generator().manual_seed(seed)
    return [ds.train[torch.randint(0, len(ds.train), (BATCH,), generator=g)] for _ in range(n)]


def floats(name: str, metrics: dict[str, Any]) -> dict[str, float]:
    """A step's metrics — detached 0-d tensors or numbers, read by the trainer only at log steps — as floats."""
    for k, v in metrics.items():
        if isinstance(v, Tensor):
            assert v.dim() == 0 and not v.requires_grad, f"{name}: metric {k} must be a detached 0-d tensor: {v}"
        else:
            assert isinstance(v, (int, float)) and not isinstance(v, bool), f"{name}: metric {k}: {v!r}"
    return {k: float(v) for k, v in metrics.items()}


# --- declarations ------------------------------------------------------------------------------------------------
ABILITIES = {"has_guided_sampler": "guided_config", "can_augment": "augment", "can_inpaint": "inpaint"}


def check_declarations(name: str) -> None:
    """Options with metadata, ability flags that agree with what the class gives, a registry entry by its name."""
    cls = get_method(name)
    assert cls.name == name, f"{name}: the class's name is {cls.name!r}"
    for f in field_types(cls.Config):
        entry(f, cls)  # an option without a range and meaning raises, saying where to add it
    for flag, ability in ABILITIES.items():
        overrides = getattr(cls, ability) is not getattr(Method, ability)
        assert getattr(cls, flag) == overrides, (
            f"{name}: {flag}={getattr(cls, flag)} but the class {'gives' if overrides else 'does not give'} "
            f"{ability}(): set the flag to {overrides}")
    if cls.has_guided_sampler:
        assert cls.has_energy and cls.has_generator, f"{name}: a guided sampler needs a generator and an energy"
    unused = {k for k in getattr(cls.Config, "OPTIONS", {}) if k not in field_types(cls.Config)}
    assert not unused, f"{name}: OPTIONS entries of no option: {sorted(unused)}"


# --- one step, state and sampling -------------------------------------------------------------------------------------
def _snapshot(modules: dict[str, torch.nn.Module]) -> dict[str, list[Tensor]]:
    return {k: [p.detach().clone() for p in m.parameters()] for k, m in modules.items()}


def check_step(name: str) -> None:
    m = build(name)
    before, before_frozen = _snapshot(m.networks), _snapshot(m.frozen)
    metrics = floats(name, m.train_step(batches(name, 1)[0], 1))
    assert metrics and all(math.isfinite(v) for v in metrics.values()), f"{name}: {metrics}"
    for k, params in _snapshot(m.networks).items():
        assert any(not torch.equal(a, b) for a, b in zip(params, before[k])), f"{name}: network {k} did not move"
    for k, params in _snapshot(m.frozen).items():
        assert all(torch.equal(a, b) for a, b in zip(params, before_frozen[k])), f"{name}: frozen {k} moved"
    x = m.sample(50, generator=torch.Generator().manual_seed(0))
    shape = get_dataset(case(name).data).shape
    assert x.shape == (50, *shape) and torch.isfinite(x).all(), f"{name}: samples {tuple(x.shape)}, not (50, {shape})"
    if m.has_energy:
        e = m.energy(x)
        assert e.shape == (50,) and torch.isfinite(e).all(), f"{name}: energies of shape {tuple(e.shape)}"


def check_round_trip(name: str) -> None:
    a = build(name, seed=1)
    for s, x in enumerate(batches(name, 3)):
        a.train_step(x, s + 1)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = build(name, seed=2)  # another initialisation, overwritten by the load
    b.load_state_dict(torch.load(buf, weights_only=True))
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb), f"{name}: a parameter differs after the load"
    nxt = batches(name, 1, seed=9)[0]  # the continuation too: optimizer state and noise generator were restored
    ma, mb = floats(name, a.train_step(nxt, 4)), floats(name, b.train_step(nxt, 4))
    assert ma == mb, f"{name}: the step after the load differs: {ma} vs {mb}"
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb), f"{name}: a parameter differs after the step that followed the load"


def check_sampling(name: str) -> None:
    m = build(name)
    x1 = m.sample(20, generator=torch.Generator().manual_seed(5))
    x2 = m.sample(20, generator=torch.Generator().manual_seed(5))
    assert torch.equal(x1, x2), f"{name}: two draws from the same generator state differ"


# --- what a captured graph needs --------------------------------------------------------------------------------------
def check_no_host_reads(name: str, data: str | None = None, **over: Any) -> None:
    m = build(name, data, **over)
    bs = batches(name, 3, data)
    m.train_step(bs[0], 1)  # lazy set-up outside the count
    with CountHostReads() as c:
        for step in (2, 3):
            m.train_step(bs[step - 1], step)
    assert not c.where, f"{name} on {data or case(name).data}: {dict(c.where)}"


class _Trace(TorchDispatchMode):
    """Every operation a step runs, with the shapes and dtypes of its tensors and its Python numbers."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[str, tuple[Any, ...]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        flat, _ = tree_flatten((args, kwargs or {}))
        self.ops.append((str(func), tuple((tuple(a.shape), a.dtype) if isinstance(a, Tensor)
                                          else repr(a) if isinstance(a, float)  # NaN == NaN as text
                                          else a if isinstance(a, (int, bool, str, type(None)))
                                          else type(a).__name__ for a in flat)))
        return func(*args, **(kwargs or {}))


def step_traces(name: str, data: str | None = None, steps: int = 8,
                **over: Any) -> tuple[Method, list[tuple[str | None, list[Any]]]]:
    """(method, [(declared kind, operations)] of steps 2..``steps``): the first step of a session creates the
    optimizers' state."""
    m = build(name, data, **over)
    out = []
    for step, b in enumerate(batches(name, steps, data), 1):
        kind = m.step_kind(step)
        m.prepare_step(step)  # as the trainer does, outside the step
        t = _Trace()
        with t:
            m.train_step(b, step)
        out.append((kind, t.ops))
    return m, out[1:]


def check_step_kinds(name: str, data: str | None = None, steps: int = 8, **over: Any) -> None:
    m, recorded = step_traces(name, data, steps, **over)
    kinds = {k for k, _ in recorded}
    if m.capture_blocker() is not None:
        assert kinds == {None}, f"{name} declares kinds {kinds} though it says {m.capture_blocker()!r}"
        assert len({tuple(ops) for _, ops in recorded}) > 1, \
            f"{name} says {m.capture_blocker()!r}, but its steps agree"
        return
    assert None not in kinds, f"{name}: a step without a kind, though it declares no capture blocker"
    for kind in kinds:
        # the first step of a kind may create optimizer state (a phase's first step): the runner runs the first
        # graphs.WARMUP steps of each kind eagerly, so only the later ones must agree
        later = [tuple(ops) for k, ops in recorded if k == kind][1:]
        assert len(set(later)) <= 1, f"{name}: steps of kind {kind!r} run different operations"


# a run recipe inside the captured region: a moving average and a clip
REPLAY_RECIPE = {"ema": 0.9, "lr_schedule": "constant", "grad_clip": 5.0, "steps": 40}


def replay_pair(name: str, data: str | None = None, steps: int | None = None,
                **over: Any) -> tuple[Method, Method, graphs.StepGraphs, list[Budget]]:
    """The same steps through the trainer's two step runners (``graphs.runner``): eagerly, and replayed from the
    CPU emulation of a captured graph: (eager method, replayed method, the replaying runner, the two budgets)."""
    eager, replayed = (build(name, data, **{**REPLAY_RECIPE, **over}) for _ in range(2))
    bs = batches(name, steps or case(name).replay_steps, data)
    place = Placement(device=torch.device("cpu"), threads=torch.get_num_threads())
    budgets, runner = [], None
    for m in (eager, replayed):
        budget = Budget(m.networks)
        budget.start()
        budgets.append(budget)
        here = place if m is eager else replace(place, graphs="emulate").for_method(m)
        assert m is eager or here.captured, f"{name}: {here.eager_because}"
        runner = graphs.runner(m, here, budget, tensor_lrs=m.recipe.rc.lr_schedule != "constant")
        torch.manual_seed(1)  # the global generator too (some steps draw from it)
        for step, b in enumerate(bs, 1):
            m.recipe.before_step(step)
            m.prepare_step(step)
            out = runner.step(b, step)
            assert all(not isinstance(v, Tensor) or torch.isfinite(v).all() for v in out.values()), \
                f"{name}: a non-finite metric at step {step}"
        budget.stop()
    assert isinstance(runner, graphs.StepGraphs)
    return eager, replayed, runner, budgets


def flat_state(state: Any, prefix: str = "") -> Any:
    """(path, value) leaves of a nested state, tensors and numbers."""
    if isinstance(state, dict):
        for k in sorted(state, key=str):
            yield from flat_state(state[k], f"{prefix}/{k}")
    elif isinstance(state, (list, tuple)):
        for i, v in enumerate(state):
            yield from flat_state(v, f"{prefix}/{i}")
    else:
        yield prefix, state


def assert_same_state(a: Any, b: Any, rtol: float = 0.0) -> None:
    """Equal states; ``rtol`` > 0 for floating-point tensors where the learning rate follows a schedule: a captured
    step reads it from a float32 tensor, an eager step as a Python (double) number, so each update differs by the
    rounding of the learning rate (relative 2⁻²⁴ ≈ 6e-8): measured on a 12-step GAN run, weights of order 0.1–1
    then differ by ≤ 6e-8, a few float32 ulps, hence atol = 1e-6 (and rtol for the larger entries)."""
    fa, fb = dict(flat_state(a)), dict(flat_state(b))
    assert fa.keys() == fb.keys(), f"the states hold different entries: {sorted(fa.keys() ^ fb.keys())[:5]}"
    for k in fa:
        x, y = fa[k], fb[k]
        if isinstance(x, Tensor) and not k.endswith("/lr"):
            assert isinstance(y, Tensor), k
            if rtol and x.dtype.is_floating_point:
                torch.testing.assert_close(x, y, rtol=rtol, atol=1e-6, msg=f"{k} differs")
            else:
                assert torch.equal(x, y), f"{k} differs"
            continue
        x, y = (float(v) if isinstance(v, Tensor) else v for v in (x, y))
        same = x == y if not (rtol and isinstance(x, float)) else math.isclose(x, y, rel_tol=1e-6)
        assert same, f"{k}: {x} vs {y}"


def check_capture(name: str, data: str | None = None, steps: int | None = None, **over: Any) -> None:
    """Replayed steps leave exactly the state (and budget counts) eager steps leave; a method that declares a
    capture blocker is not replayed (its step kinds check covers it)."""
    if build(name, data, **over).capture_blocker() is not None:
        return
    eager, replayed, runner, budgets = replay_pair(name, data, steps, **over)
    assert runner.replayed_steps >= 2 and runner.graphs, f"{name}: nothing was replayed"
    assert_same_state(eager.state_dict(), graphs.portable_method_state(replayed.state_dict()))
    assert budgets[0].evals == budgets[1].evals, f"{name}: replays counted other network evaluations"


CHECKS: dict[str, Callable[[str], None]] = {
    "declarations": check_declarations, "step": check_step, "round_trip": check_round_trip,
    "sampling": check_sampling, "no_host_reads": check_no_host_reads, "step_kinds": check_step_kinds,
    "capture": check_capture,
}


def _registered(method: str | type[Method]) -> str:
    """A method's registered name; a Method subclass not registered yet is registered first (in this process)."""
    if isinstance(method, type):
        from .methods import METHODS, register_method

        if METHODS.get(str(getattr(method, "name", ""))) is not method:
            register_method(method)
        return str(method.name)
    return method


def parametrize_with_checks(methods: Iterable[str | type[Method]], checks: Iterable[str] | None = None) -> Any:
    """A pytest mark running each check of the contract (:data:`CHECKS`, or the ``checks`` named) on each method
    as a test of its own, with ids such as ``gan-step`` — as scikit-learn's ``parametrize_with_checks`` does for
    estimators. Methods are registered names or Method subclasses (registered first, in this process). The test
    takes ``method`` (the name) and ``check`` (the function)::

        from ebmlab.testing import parametrize_with_checks

        @parametrize_with_checks([MyGAN])
        def test_contract(method, check):
            check(method)

    A failing check then names its method and check in pytest's report, where :func:`check_method` stops at the
    first failure."""
    import pytest

    chosen = list(CHECKS) if checks is None else list(checks)
    unknown = [c for c in chosen if c not in CHECKS]
    if unknown:
        raise ValueError(f"unknown checks {unknown}; the checks are {', '.join(CHECKS)}")
    names = [_registered(m) for m in methods]
    return pytest.mark.parametrize("method, check", [pytest.param(n, CHECKS[c], id=f"{n}-{c}")
                                                     for n in names for c in chosen])


def check_method(method: str | type[Method]) -> None:
    """Every check of the contract (:data:`CHECKS`) on a method: a registered name, or a Method subclass (registered
    first, in this process, when it is not), on its case's data; :func:`parametrize_with_checks` makes each check a
    test of its own."""
    name = _registered(method)
    for check in CHECKS.values():
        check(name)


def check_dataset(name: str) -> None:
    """A data set (a built-in or plugin name, or a path) against the data interface (``ebmlab.data.base.Dataset``):
    it has the interface; its splits are float32 ``[n, *spec.shape]`` with at least 2 rows, finite, inside the
    spec's value range (and on its grid of levels, for quantised data; {0, 1} for binary data); labels, where it has
    them, one per row and below ``n_classes``; ``train_batch`` gives the rows of ``train`` (deterministic data) and
    the device split encodes rows as ``train_batch`` does."""
    from .data import get_dataset
    from .data.base import Dataset

    ds = get_dataset(name)
    assert isinstance(ds, Dataset), f"{name}: {type(ds).__name__} lacks the data interface (ebmlab.data.base.Dataset)"
    ds.read()
    spec = ds.spec
    for split, x in (("train", ds.train), ("test", ds.test)):
        assert x.dtype == torch.float32 and tuple(x.shape[1:]) == tuple(spec.shape) and len(x) >= 2, \
            f"{name}: {split} split {tuple(x.shape)} {x.dtype}, expected float32 [n ≥ 2, *{tuple(spec.shape)}]"
        assert torch.isfinite(x).all(), f"{name}: the {split} split holds non-finite values"
        if spec.value_range is not None:
            lo, hi = spec.value_range
            assert float(x.min()) >= lo and float(x.max()) <= hi, f"{name}: {split} values outside {spec.value_range}"
        if spec.kind == "binary":
            assert bool(((x == 0) | (x == 1)).all()), f"{name}: binary data with values other than 0 and 1"
    for split, y, x in (("train", ds.train_labels, ds.train), ("test", ds.test_labels, ds.test)):
        if y is not None:
            assert len(y) == len(x), f"{name}: {len(y)} {split} labels for {len(x)} rows"
            assert ds.n_classes is not None and int(y.min()) >= 0 and int(y.max()) < ds.n_classes, \
                f"{name}: {split} labels outside 0..n_classes-1"
    idx = torch.arange(min(4, ds.n_train))
    rows = ds.train_batch(idx, generator=torch.Generator().manual_seed(0))
    assert tuple(rows.shape) == (len(idx), *spec.shape), f"{name}: train_batch gives {tuple(rows.shape)}"
    if ds.binarize != "dynamic":
        assert torch.equal(rows, ds.train[idx]), f"{name}: train_batch's rows are not the train split's"
        held, encode = ds.device_split("cpu")
        assert torch.equal(encode(held[idx]).reshape(rows.shape), rows), \
            f"{name}: the device split encodes rows otherwise than train_batch"


__all__ = ["assert_same_state", "BATCH", "batches", "build", "Case", "case", "CASES", "check_capture",
           "check_dataset", "check_declarations", "check_method", "check_no_host_reads", "check_round_trip",
           "check_sampling", "check_step", "check_step_kinds", "CHECKS", "flat_state", "floats",
           "parametrize_with_checks", "replay_pair", "step_traces"]
