"""Compiled training steps (run option ``compile``, ``ebmlab.compiled``): the same numbers as eager steps, the draws
of the eager step (``rng.Tape``), and the run option's refusals and fall-backs.

Compiled here with ``aot_eager`` (dynamo's trace and AOT autograd, no code generation: the graph inductor would
compile, run by eager kernels, in seconds); inductor's generated code is compared with eager steps by
``benchmarks/peers/lbt_speed.py`` at the released networks (the logged losses of a compiled and an eager run)."""

from __future__ import annotations

import re

import pytest
import torch

from ebmlab import compiled, rng
from ebmlab.budget import Budget
from ebmlab.compiled import CompiledSteps
from ebmlab.errors import EbmlabError
from ebmlab.methods.lbt import LBT, LBTGAN, LBTConfig, LBTGANConfig

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # dynamo's imports

DT = torch.float64
TINY = dict(z_dim=3, g_hidden=(5,), est_z_dim=2, est_hidden=(6,), est_decoder_var=0.1, lr_est=1e-2,
            unroll_steps=2, n_est=2, est_batch=12, clip_g=1.0)


def tiny(seed: int = 0, **over) -> LBT:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        m = LBT(LBTConfig(**{**TINY, **over}), data_dim=2, device=torch.device("cpu"),
                generator=torch.Generator().manual_seed(seed + 1))
    for net in m.networks.values():
        net.double()
    return m


def batches(n: int, b: int = 16) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(50)
    return [torch.randn(b, 2, generator=g, dtype=DT) * 0.5 + 1.0 for _ in range(n)]


def state(m: LBT) -> list[torch.Tensor]:
    out = [p.detach().clone() for net in m.networks.values() for p in net.parameters()]
    out += [b.clone() for net in m.networks.values() for b in net.buffers()]  # BatchNorm's statistics
    for opt in m.optimizers.values():
        for st in opt.state.values():  # Adam's moments or Adadelta's averages, and the step count
            out += [torch.as_tensor(st[k]).clone() for k in sorted(st)]
    return out


def seeded(build) -> object:
    """A method built under torch's seed 0 (its initialisation) with its networks in float64."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        m = build()
    for net in m.networks.values():
        net.double()
    return m


def eager_and_compiled(make, data: list[torch.Tensor], f64: bool = True, backend: str = "aot_eager"
                       ) -> list[tuple[object, list[dict]]]:
    """A fresh method from ``make`` run eagerly over ``data``, and another through the compiled step (``backend``:
    aot_eager, or eager — dynamo's whole-graph trace run by eager kernels, without AOT autograd's functionalisation,
    for checks of arithmetic that the aot_eager tests of the same step already trace —; each step kind's first two
    steps eager), with float64 the default dtype (``f64``): [(method, metrics per step)] for the two."""
    default = torch.get_default_dtype()
    if f64:
        torch.set_default_dtype(DT)  # the latents drawn in float64, as the networks are
    try:
        out = []
        for compile in (False, True):
            m = make()
            runner = CompiledSteps(m, m.train_step, lambda: None, None, backend=backend)
            rows = []
            for i, b in enumerate(data, 1):
                m.prepare_step(i)
                rows.append({k: float(v) for k, v in (runner.step(b, i) if compile else m.train_step(b, i)).items()})
            out.append((m, rows))
    finally:
        torch.set_default_dtype(default)
    return out


def assert_same_runs(out: list[tuple[object, list[dict]]], rtol: float, atol: float) -> None:
    """The two runs of :func:`eager_and_compiled` end with the same parameters, buffers and Adam states, report the
    same metrics at every step and made the same draws."""
    (eager, m_e), (comp, m_c) = out
    for a, b in zip(state(eager), state(comp), strict=True):
        torch.testing.assert_close(b, a, rtol=rtol, atol=atol)
    for a, b in zip(m_e, m_c, strict=True):
        assert a.keys() == b.keys() and all(b[k] == pytest.approx(a[k], rel=rtol, abs=atol) for k in a), (a, b)
    assert eager.rng.get_state().equal(comp.rng.get_state())


def run(m: LBT, steps: list[torch.Tensor], compile: bool, budget: Budget | None = None, backend: str = "aot_eager"
        ) -> list[dict]:
    after = m.recipe.after_step if m.recipe is not None else (lambda: None)
    runner = CompiledSteps(m, m.train_step, after, budget, backend=backend)
    out = []
    for i, b in enumerate(steps, 1):
        metrics = runner.step(b, i) if compile else m.train_step(b, i)
        out.append({k: float(v) for k, v in metrics.items()})
    return out


def tiered(cases: list, ids: list[str]) -> list:
    """The parametrisation of a compiled-step test over ``cases`` (tuples of its arguments, the last one its backend
    added here): the first case compiled with ``aot_eager`` in every run; each other case with ``eager`` — dynamo's
    trace of the same step and graph, guards, draws and numbers, run by eager kernels without AOT autograd's
    functionalisation, in about half the time (BiB's step: 5.4 against 10.6 CPU-s) — and again with ``aot_eager``
    under the ``slow`` marker (``pytest -m slow``), so that the suite keeps one AOT trace per step kind."""
    out = []
    for i, (case, name) in enumerate(zip(cases, ids, strict=True)):
        if i == 0:
            out.append(pytest.param(*case, "aot_eager", id=name))
        else:
            out.append(pytest.param(*case, "eager", id=f"{name}-eager"))
            out.append(pytest.param(*case, "aot_eager", id=name, marks=pytest.mark.slow))
    return out


@pytest.mark.parametrize("over,backend", tiered(
    [({},), ({"flat_unroll": False, "eps_placement": "outside_sqrt", "clip_g": None},)], ["over0", "over1"]))
def test_compiled_lbt_steps_are_the_eager_steps(over, backend):
    """Six steps: the first eager (its draws listed), five through the compiled teaching; parameters, Adam moments
    and step counts of all three optimizers, every metric and the network evaluations the budget counts equal the
    eager run's (float64 rounding); the compiled function is traced once."""
    data = batches(6)
    eager, comp = tiny(**over), tiny(**over)
    counted = []
    for m, compile in ((eager, False), (comp, True)):
        budget = Budget(m.networks)
        budget.start()
        counted.append((run(m, data, compile, budget, backend), budget.evals))
    (m_e, evals_e), (m_c, evals_c) = counted
    assert comp._core is not None  # the compiled path ran
    assert evals_c == evals_e and evals_e["generator"] > 0
    for a, b in zip(state(eager), state(comp), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)
    for a, b in zip(m_e, m_c, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            assert b[k] == pytest.approx(a[k], rel=1e-10, abs=1e-12), k
    assert eager.rng.get_state().equal(comp.rng.get_state())  # the same draws were made from the generator


def with_batchnorm_generator(m: LBT) -> LBT:
    """``m`` with an MLP generator that has BatchNorm (as the conv and paper generators have), in float64."""
    with torch.random.fork_rng():
        torch.manual_seed(7)
        g = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.BatchNorm1d(6), torch.nn.ReLU(),
                                torch.nn.Linear(6, 2)).double()
    opt = m.optimizers["generator"]
    m.G = m.networks["generator"] = g
    m.optimizers["generator"] = type(opt)(g.parameters(), **opt.defaults)
    return m


def test_compiled_lbt_with_a_batchnorm_generator_carries_its_statistics():
    """A generator with BatchNorm: its running statistics, updated by each of the step's n_est·K + K training-mode
    passes, are carried through the compiled teaching in the eager order; after six steps the parameters, the
    statistics, the Adam states and the metrics equal the eager run's (float64 rounding)."""
    data = batches(6)
    eager, comp = with_batchnorm_generator(tiny()), with_batchnorm_generator(tiny())
    m_e, m_c = run(eager, data, False), run(comp, data, True)
    assert comp._core is not None and comp.compile_blocker() is None
    assert not comp.G[1].running_mean.equal(torch.zeros(6))  # the statistics moved
    for a, b in zip(state(eager), state(comp), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)
    for a, b in zip(m_e, m_c, strict=True):
        assert a.keys() == b.keys() and all(b[k] == pytest.approx(a[k], rel=1e-10, abs=1e-12) for k in a)
    assert eager.rng.get_state().equal(comp.rng.get_state())


@pytest.mark.parametrize("bn,backend", tiered([(False,), (True,)], ["False", "True"]))
def test_compiled_lbt_gan_steps_are_the_eager_steps(bn, backend):
    """LBT-GAN: two warm-up steps (no teaching) and four teaching steps, the first of each kind eager; the compiled
    parts and the eager discriminator steps and GAN term between them give the eager run's numbers — with a
    BatchNorm generator too, whose statistics the compiled parts and the eager passes between them write in the
    eager step's order."""
    data = batches(6)
    runs = []
    for compile in (False, True):
        with torch.random.fork_rng():
            torch.manual_seed(0)
            m = LBTGAN(LBTGANConfig(**TINY, d_hidden=(5,), warmup_steps=2), data_dim=2, device=torch.device("cpu"),
                       generator=torch.Generator().manual_seed(1))
        for net in m.networks.values():
            net.double()
        if bn:
            with_batchnorm_generator(m)
        runs.append((m, run(m, data, compile, backend=backend)))
    (eager, m_e), (comp, m_c) = runs
    assert comp._parts is not None
    for a, b in zip(state(eager), state(comp), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)
    for a, b in zip(m_e, m_c, strict=True):
        assert a.keys() == b.keys() and all(b[k] == pytest.approx(a[k], rel=1e-10, abs=1e-12) for k in a)


def test_a_tape_gives_the_recorded_draws_again_and_refuses_others():
    g = torch.Generator().manual_seed(3)
    with rng.recording(g) as draws:
        a = rng.randn(4, 2, generator=g, dtype=DT)
        rng.randn(3, generator=torch.Generator())  # another generator: not listed
        b = rng.rand(5, generator=g)
        c = rng.randint(0, 7, (6,), generator=g)
    assert [d.size for d in draws] == [(4, 2), (5,), (6,)]
    g.manual_seed(3)
    tape = rng.redraw(draws, g)
    assert tape.take((4, 2), DT, None).equal(a) and tape.take((5,), None, "cpu").equal(b)
    with pytest.raises(RuntimeError, match="check_used|took 2 of the 3"):
        tape.check_used()
    with pytest.raises(RuntimeError, match=r"asks for \(7,\).*drew \(6,\)"):
        tape.take((7,), None, None)
    assert rng.randint(0, 7, (6,), generator=tape).equal(c)  # via the module's draws, as compiled code takes them
    tape.check_used()
    with pytest.raises(RuntimeError, match="drew more noise"):
        tape.take((1,), None, None)


def test_the_run_option_refuses_what_it_cannot_compile_and_auto_says_why(monkeypatch):
    cpu = torch.device("cpu")
    lbt = tiny()
    monkeypatch.setattr(compiled, "compiler_available", lambda device: False)
    assert "no C++ compiler" in compiled.decide("auto", lbt, cpu, 1, "fp32", 10**6)
    with pytest.raises(EbmlabError, match="no C"):
        compiled.decide("on", lbt, cpu, 1, "fp32", 10)
    monkeypatch.setattr(compiled, "compiler_available", lambda device: True)
    assert compiled.decide("on", lbt, cpu, 1, "fp32", 10) is None
    assert "times 20 eager steps before it decides" in compiled.decide("auto", lbt, cpu, 1, "fp32", 10)
    assert compiled.decide("auto", lbt, cpu, 1, "fp32", compiled.AUTO_PROBE_STEPS + 1) is None
    assert compiled.decide("off", lbt, cpu, 1, "fp32", 10**6) == "off"
    bn = tiny()
    bn.estimator.module.encoder = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.BatchNorm1d(4))
    with pytest.raises(EbmlabError, match="compile=on: lbt's steps cannot be compiled here: its estimator writes "
                                          "buffers"):
        compiled.decide("on", bn, cpu, 1, "fp32", 10)
    with pytest.raises(EbmlabError, match="data-parallel"):
        compiled.decide("on", lbt, cpu, 2, "fp32", 10)
    with pytest.raises(EbmlabError, match="fp32"):
        compiled.decide("on", lbt, cpu, 1, "bf16", 10)
    with pytest.raises(EbmlabError, match="captured graphs"):
        compiled.decide("on", lbt, torch.device("cuda"), 1, "fp32", 10)
    assert "LOBPCG" in compiled.decide("auto", _bib(), cpu, 1, "fp32", 10**6)


def _bib():
    from ebmlab.methods import METHODS

    return METHODS["bib"](METHODS["bib"].Config(score_volume="lobpcg"), data_dim=2, device=torch.device("cpu"),
                          generator=torch.Generator())


SMALL = {"z_dim": 4, "g_hidden": [8], "est_z_dim": 2, "est_hidden": [8], "unroll_steps": 2, "n_est": 1,
         "batch_size": 16, "eval_every": 0, "eval_samples": 50, "eval_density": False, "plots": False,
         "loggers": "", "iwae_ks": [1, 5], "iwae_points": 20, "elbo_samples": 2}


def test_a_compiled_run_resumes_an_eager_one_with_its_numbers_and_records_the_compile(tmp_path, monkeypatch, capsys):
    """compile=on through ebmlab.train: a run trained eagerly to step 3 and resumed compiled to step 6 ends where a
    run trained eagerly to step 6 ends (float32 rounding); the session record states the compile and its seconds,
    and the compile time is said without a progress bar (what ``ebmlab train --no-progress`` runs)."""
    import json

    import ebmlab

    monkeypatch.setattr(compiled, "BACKEND", "aot_eager")
    monkeypatch.setattr(compiled, "compiler_available", lambda device: True)  # aot_eager generates no code
    eager = ebmlab.train("lbt", "ring8", out=tmp_path / "e", progress=False, overrides={**SMALL, "steps": 6})
    ebmlab.train("lbt", "ring8", out=tmp_path / "c", progress=False, overrides={**SMALL, "steps": 6},
                 stop_after=3)
    capsys.readouterr()
    resumed = ebmlab.train("lbt", "ring8", out=tmp_path / "c", progress=False, echo=True,
                           overrides={**SMALL, "steps": 6, "compile": "on"})
    assert re.search(r"compile: the step compiled in \d+\.\d s", capsys.readouterr().out)
    for a, b in zip(eager.method.G.parameters(), resumed.method.G.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    sessions = json.loads((tmp_path / "c" / "run.json").read_text())["sessions"]
    assert "compile" not in sessions[0]
    assert sessions[-1]["compile"]["mode"] == "on" and sessions[-1]["compile"]["seconds"] > 0
    assert sessions[-1]["compile"]["backend"] == "aot_eager"


def test_compile_on_for_a_step_that_cannot_be_compiled_is_refused_before_anything_is_written(tmp_path):
    import ebmlab

    with pytest.raises(EbmlabError, match="compile=on: bib's steps cannot be compiled here: its latent score's LOBPCG"):
        ebmlab.train("bib", "ring8", out=tmp_path / "g", progress=False,
                     overrides={"steps": 2, "compile": "on", "score_volume": "lobpcg"})
    assert not (tmp_path / "g").exists()
    with pytest.raises(EbmlabError, match="compile=on and graphs=emulate"):
        ebmlab.train("lbt", "ring8", out=tmp_path / "l", progress=False,
                     overrides={"steps": 2, "compile": "on", "graphs": "emulate"})
    assert not (tmp_path / "l").exists()


def test_auto_compiles_a_run_only_where_its_timed_eager_steps_say_it_repays(tmp_path, monkeypatch, capsys):
    """compile=auto through ebmlab.train: the first AUTO_PROBE_STEPS steps run eagerly and are timed; a 9-step run
    of this size goes on eagerly (a compile would cost more than it saves), one whose compile costs nothing (the
    constant set below any saving) is compiled from there and ends where the eager run ends (float32 rounding); the
    decision with its numbers is said (without a progress bar) and recorded in the session."""
    import json

    import ebmlab

    monkeypatch.setattr(compiled, "BACKEND", "aot_eager")
    monkeypatch.setattr(compiled, "compiler_available", lambda device: True)
    monkeypatch.setattr(compiled, "AUTO_PROBE_STEPS", 4)  # 4 timed eager steps, then the decision
    over = {**SMALL, "steps": 9, "compile": "auto"}
    eager = ebmlab.train("lbt", "ring8", out=tmp_path / "e", progress=False, overrides={**over, "compile": "off"})
    capsys.readouterr()
    ebmlab.train("lbt", "ring8", out=tmp_path / "a", progress=False, echo=True, overrides=over)
    said = capsys.readouterr().out
    assert re.search(r"compile=auto: 5 steps left at [\d.]+ ms an eager step; .*the run goes on eagerly", said)
    record = json.loads((tmp_path / "a" / "run.json").read_text())["sessions"][-1]["compile"]
    assert record["mode"] == "auto" and "seconds" not in record and "goes on eagerly" in record["auto"]
    monkeypatch.setattr(compiled, "AUTO_COMPILE_SECONDS", -1.0)
    comp = ebmlab.train("lbt", "ring8", out=tmp_path / "c", progress=False, echo=True, overrides=over)
    assert "compiled from here" in capsys.readouterr().out
    record = json.loads((tmp_path / "c" / "run.json").read_text())["sessions"][-1]["compile"]
    assert record["seconds"] > 0 and record["auto"].endswith("compiled from here")
    for a, b in zip(eager.method.G.parameters(), comp.method.G.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


GAN_CASES = [({"n_critic": 2, "pack": 2},), ({"g_batchnorm": "pre"},), ({"g_batchnorm": "post"},),
             ({"d_spectral_norm": True, "n_critic": 2},)]


@pytest.mark.parametrize("over,backend", tiered(GAN_CASES, [f"over{i}" for i in range(4)]))
def test_compiled_gan_steps_are_the_eager_steps(over, backend):
    """GAN: six steps, the first eager (its draws listed), five through the compiled gan_core; both networks'
    parameters, Adam moments and step counts, every metric and the generator's draws equal the eager run's
    (float64 rounding), with several critic steps and packing too, and with a BatchNorm generator, whose running
    statistics (updated by each of the step's generator passes) equal the eager run's too, and with a spectrally
    normalised critic (SNGAN), whose power-iteration vectors are carried the same way."""
    from ebmlab.methods.gan import GAN, GANConfig

    def make():
        with torch.random.fork_rng():
            torch.manual_seed(0)
            m = GAN(GANConfig(z_dim=3, g_hidden=(6,), d_hidden=(7,), **over), data_dim=2,
                    device=torch.device("cpu"), generator=torch.Generator().manual_seed(1))
        for net in m.networks.values():
            net.double()
        return m

    from torch._dynamo.utils import counters

    data = batches(6)
    default = torch.get_default_dtype()
    torch.set_default_dtype(DT)  # the latents drawn in float64, as the networks are
    counters.clear()
    try:
        (eager, m_e), (comp, m_c) = [(m, run(m, data, c, backend=backend))
                                     for m, c in ((make(), False), (make(), True))]
    finally:
        torch.set_default_dtype(default)
    assert comp._pair is not None and comp._pair.core is not None and comp.compile_blocker() is None
    # traced once: a 0-d float64 input (the learning rate was one) makes dynamo trace the step twice
    traced = counters["aot_autograd"]["total"] if backend == "aot_eager" else counters["stats"]["unique_graphs"]
    assert traced == 1, dict(counters)
    for a, b in zip(state(eager), state(comp), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)
    for a, b in zip(m_e, m_c, strict=True):
        assert a.keys() == b.keys() and all(b[k] == pytest.approx(a[k], rel=1e-10, abs=1e-12) for k in a)
    assert eager.rng.get_state().equal(comp.rng.get_state())
    if over.get("g_batchnorm"):
        stats = [b for b in eager.G.buffers() if b.is_floating_point()]
        assert stats and not all(torch.equal(b, make().G.get_buffer(n)) for n, b in eager.G.named_buffers())
    if over.get("d_spectral_norm"):
        assert not all(torch.equal(b, make().D.get_buffer(n)) for n, b in eager.D.named_buffers())


PAIRS = [("vae", {"hidden": (7,)}), ("vae", {"hidden": (7,), "objective": "iwae", "train_k": 3}),
         ("vae", {"hidden": (7,), "objective": "wake_sleep"}),
         ("ebgan", {"code_dim": 3, "d_hidden": (7,), "margin_schedule": "linear", "margin_decay_steps": 4, "n_critic": 2}),
         ("ebgan_pt", {"code_dim": 3, "d_hidden": (7,)}),  # a constant margin, and the pull-away term
         ("vgan", {"e_hidden": (7,), "n_experts": 3, "k_gen": 2}),
         ("vgan_vcd", {"code_dim": 3, "t_hidden": (6,), "e_hidden": (7,), "n_experts": 3, "reservoir": 8})]


@pytest.mark.parametrize("name,over,backend", tiered(PAIRS, [f"{n}-{i}" for i, (n, _) in enumerate(PAIRS)]))
def test_compiled_pair_steps_are_the_eager_steps(name, over, backend):
    """VAE (ELBO and IWAE), EBGAN, EBGAN-PT, VGAN (the generator first, k_gen steps) and VCD (the transition first,
    its code noise drawn inside the compiled function from the tape; its BatchNorm statistics carried; the
    reservoir full after the first step): six steps, the first eager, the rest compiled from each step kind's third (a
    decaying margin enters as a tensor); parameters, buffers, Adam states, metrics and draws equal the eager run's
    (float64 rounding)."""
    from ebmlab.methods import METHODS

    cls = METHODS[name]

    kw = {"vae": {"z_dim": 3}, "vgan_vcd": {}}.get(name, {"z_dim": 3, "g_hidden": (6,)})
    out = eager_and_compiled(lambda: seeded(lambda: cls(cls.Config(**kw, **over), data_dim=2, device=torch.device(
        "cpu"), generator=torch.Generator().manual_seed(1))), batches(6), backend=backend)
    comp = out[1][0]
    core = comp._single if name == "vae" else comp._pair
    assert core is not None and core.core is not None
    assert_same_runs(out, rtol=1e-10, atol=1e-12)



# the optimizer updates the compiled steps carry beside plain Adam: VGAN's released Adadelta, and the run's gradient
# clip (run option grad_clip, through the run's Recipe) in each kind of compiled step (a pair, one optimizer, KALE's)
UPDATES = [("vgan", {"z_dim": 3, "g_hidden": (6,), "e_hidden": (7,), "n_experts": 3, "optimizer": "adadelta",
                     "lr_g": 0.1, "lr_e": 0.1}, 0.0),  # the clip is checked with Adam)
           ("vgan_vcd", {"code_dim": 3, "t_hidden": (6,), "e_hidden": (7,), "n_experts": 3, "reservoir": 8,
                         "optimizer": "adadelta"}, 0.0),  # (Adadelta's step barely depends on the gradient's scale:
           ("vgan_vcd", {"code_dim": 3, "t_hidden": (6,), "e_hidden": (7,), "n_experts": 3, "reservoir": 8}, 0.05),
           ("gan", {"z_dim": 3, "g_hidden": (6,), "d_hidden": (7,)}, 0.05),
           ("vae", {"z_dim": 3, "hidden": (7,)}, 0.05),
           ("kale", {"z_dim": 3, "g_hidden": (6,), "e_hidden": (7,), "n_critic": 1, "n_critic_burst": 3,
                     "burst_every": 2}, 0.05)]


@pytest.mark.parametrize("name,over,clip", UPDATES, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(UPDATES)])
def test_compiled_steps_carry_adadelta_and_the_runs_gradient_clip(name, over, clip):
    """Adadelta's update and the run's global-norm clip inside the compiled step (``base.UpdateRule``): eight steps
    give the eager run's parameters, optimizer states (Adadelta's two averages), metrics and draws (float64
    rounding); the clip acts (the clipped eager run ends elsewhere than an unclipped one)."""
    from ebmlab.config import RunConfig
    from ebmlab.methods import METHODS
    from ebmlab.recipe import Recipe

    cls = METHODS[name]

    def make(c: float):
        m = seeded(lambda: cls(cls.Config(**over), data_dim=2, device=torch.device("cpu"),
                               generator=torch.Generator().manual_seed(1)))
        m.recipe = Recipe(m, RunConfig(grad_clip=c))
        return m

    out = eager_and_compiled(lambda: make(clip), batches(8), backend="eager")  # the steps' aot_eager tests above
    comp = out[1][0]
    assert comp.compile_blocker() is None and out[1][1][-1].keys() == out[0][1][-1].keys()
    if over.get("optimizer") == "adadelta":
        assert all(isinstance(o, torch.optim.Adadelta) for o in comp.optimizers.values())
    assert_same_runs(out, rtol=1e-9, atol=1e-11)
    if clip:  # the clip acts: the unclipped eager run ends elsewhere
        free = make(0.0)
        default = torch.get_default_dtype()
        torch.set_default_dtype(DT)
        try:
            for i, b in enumerate(batches(8), 1):
                free.prepare_step(i)
                free.train_step(b, i)
        finally:
            torch.set_default_dtype(default)
        assert not all(torch.equal(a, b) for a, b in zip(state(free), state(out[0][0]), strict=True))


def test_compiled_vae_on_8_bit_images_dequantises_from_the_tape():
    """A Gaussian VAE on 8-bit images dequantises every batch (x + U(−w/2, w/2)): compiled, those uniforms come from
    the tape of the eager step's draws — before, the compiled step handed the tape to torch.rand and failed with a
    TypeError. Six steps equal the eager ones (float64 rounding)."""
    from ebmlab.data.base import DataSpec
    from ebmlab.methods.vae import VAE

    spec = DataSpec(kind="image", shape=(1, 3, 3), value_range=(-1.0, 1.0), levels=256)
    g = torch.Generator().manual_seed(5)
    data = [torch.randint(0, 256, (16, 1, 3, 3), generator=g).to(DT) / 255 * 2 - 1 for _ in range(6)]
    out = eager_and_compiled(lambda: seeded(lambda: VAE(VAE.Config(z_dim=2, hidden=(7,), net="mlp", decoder="gaussian"),
                                                        spec=spec, device=torch.device("cpu"),
                                                        generator=torch.Generator().manual_seed(1))), data)
    assert out[1][0]._single is not None and out[1][0]._single.core is not None
    assert_same_runs(out, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name,over,backend", tiered([("bihm", {}), ("rws", {"q_update": "wake_sleep"})],
                                                    ["bihm-over0", "rws-over1"]))
def test_compiled_helmholtz_steps_are_the_eager_steps(name, over, backend):
    """BiHM and RWS (with its sleep phase) on binary data: six steps, the first eager, five compiled; the pair's
    parameters, Adam state, metrics and draws equal the eager run's (float64 rounding)."""
    from ebmlab.data.base import DataSpec
    from ebmlab.methods import METHODS

    cls = METHODS[name]
    spec = DataSpec(kind="binary", shape=(6,))
    g = torch.Generator().manual_seed(7)
    data = [(torch.rand(16, 6, generator=g, dtype=DT) > 0.5).to(DT) for _ in range(6)]

    out = eager_and_compiled(lambda: seeded(lambda: cls(cls.Config(layers=(4, 3), n_samples=3, **over), spec=spec,
                                                        device=torch.device("cpu"),
                                                        generator=torch.Generator().manual_seed(1))), data, f64=False,
                             backend=backend)
    comp = out[1][0]
    assert comp._single is not None and comp._single.core is not None
    assert_same_runs(out, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("over,backend", tiered([({},), ({"e_spectral_norm": True},)], ["plain", "spectral-norm"]))
def test_compiled_kale_steps_are_the_eager_steps(over, backend):
    """The adversarial KALE: burst steps (3 energy updates) and plain steps (1) alternating, each kind's first two
    steps eager (the first draws the initial log-partition estimate);
    the energy updates with the gradient penalty's double backward traced by torch.func and the generator update
    give the eager run's parameters (E, A, G), Adam states, metrics and draws (float64 rounding)."""
    from ebmlab.methods.kale import KALE, KALEConfig

    out = eager_and_compiled(lambda: seeded(lambda: KALE(
        KALEConfig(z_dim=3, g_hidden=(6,), e_hidden=(7,), n_critic=1, n_critic_burst=3, burst_every=2, **over),
        data_dim=2, device=torch.device("cpu"), generator=torch.Generator().manual_seed(1))), batches(8),
        backend=backend)
    comp = out[1][0]
    assert comp._compiled is not None and comp.compile_blocker() is None
    assert_same_runs(out, rtol=1e-9, atol=1e-11)


BASES = [({"base": "gaussian", "penalty": 0.0},), ({"base": "gaussian", "penalty": 0.5},),
         ({"base": "flow", "flow_steps": 4, "flow_layers": 2, "flow_hidden": (5,)},)]


@pytest.mark.parametrize("over,backend", tiered(BASES, ["gaussian", "gaussian-penalty", "flow"]))
def test_compiled_fixed_base_kale_steps_are_the_eager_steps(over, backend):
    """KALE with a fixed base: the energy's updates against the base's draws (with and without the penalty's draw
    and input gradient) and, with a flow, its maximum-likelihood steps first (eager: zuko's transforms do not trace
    under torch.func) — eight steps; parameters, Adam states, metrics and draws equal the eager run's (float64
    rounding)."""
    from ebmlab.methods.kale import KALE, KALEConfig

    out = eager_and_compiled(lambda: seeded(lambda: KALE(KALEConfig(e_hidden=(7,), **over), data_dim=2,
                                                         device=torch.device("cpu"),
                                                         generator=torch.Generator().manual_seed(1))), batches(8),
                             backend=backend)
    comp = out[1][0]
    assert comp._compiled is not None and comp.compile_blocker() is None
    assert_same_runs(out, rtol=1e-9, atol=1e-11)


MARGINS = [({"margin": 3.0, "margin_schedule": "linear", "margin_decay_steps": 4},),
           ({"margin": 0.0, "margin_schedule": "constant"},)]


@pytest.mark.parametrize("over,backend", tiered(MARGINS, ["margin", "ladder-alone"]))
def test_compiled_ebgan_ln_steps_are_the_eager_steps(over, backend):
    """EBGAN-LN with a decaying margin (the ladder's step, then the generator's) and the ladder alone (margin 0):
    six steps on digits, the first two eager, the rest compiled; the ladder's noise drawn inside the compiled function
    from the tape, its population statistics and the generator's BatchNorm statistics carried; parameters, buffers,
    Adam states, metrics and draws equal the eager run's (float64 rounding: within 5e-13 here). λ₀ = 1, not the
    default 1000: at λ₀ = 1000 the eager step is itself chaotic at the rounding level — batches moved by 4 ulps
    change its parameters by 6e-3 after six steps (Adam normalises the combinator's near-zero, cancelling gradients)
    — and the compiled run stays within 3e-7 of it there, below that floor but above any fixed float64 tolerance."""
    from ebmlab.config import resolve_config
    from ebmlab.data import get_dataset
    from ebmlab.trainer import build_method

    small = {"hidden": (12, 8), "g_hidden": (10,), "z_dim": 3, "labels": 20, "labelled_batch": 10, "batch_size": 16,
             "lambda0": 1.0}

    def make():
        m = seeded(lambda: build_method(resolve_config("ebgan_ln", "digits", overrides={"seed": 1, **small, **over}),
                                        torch.device("cpu")))
        m.x_lab = m.x_lab.double()
        return m

    ds = get_dataset("digits")
    g = torch.Generator().manual_seed(3)
    data = [ds.train[torch.randint(0, len(ds.train), (16,), generator=g)].double() for _ in range(6)]
    out = eager_and_compiled(make, data, backend=backend)
    eager, comp = out[0][0], out[1][0]
    assert comp._compiled is not None and comp._compiled.core is not None and comp.compile_blocker() is None
    assert_same_runs(out, rtol=1e-9, atol=1e-11)
    assert not torch.equal(eager.L.enc0_mean, make().L.enc0_mean)  # the statistics moved, in both runs alike


BIB = [("bib", {}), ("bib", {"estimator": "logdet", "g_batchnorm": False}), ("bib", {"score_volume": "smin"}),
       ("bib", {"estimator": "lobpcg"}),
       ("bib", {"data_gp_weight": 0.1}), ("bib_mi_gp", {}), ("bib_jac_diff", {}), ("bib_onesided", {})]


@pytest.mark.parametrize("name,over,backend", tiered(BIB, [f"{n}-{i}" for i, (n, _) in enumerate(BIB)]))
def test_compiled_bib_steps_are_the_eager_steps(name, over, backend):
    """BiB in its pairings (i)+(iii) with the s_min, log-det and LOBPCG entropy estimates and score volumes, with and without the
    generator's BatchNorm and with the data penalty, (ii)+(iii), (i)+(iv) and the one-sided baseline: six steps,
    the first two eager, the rest compiled (the eager losses run with the parameters swapped in, every draw from the
    tape, the BatchNorm refresh between the two updates carried); parameters, buffers, Adam states, metrics and
    draws equal the eager run's (float64 rounding); the latent score's LOBPCG volume is named as what blocks it."""
    from ebmlab.methods import METHODS

    cls = METHODS[name]

    def make(**more):
        return seeded(lambda: cls(cls.Config(g_hidden=(6,), e_hidden=(7,), enc_hidden=(5,), time_emb_dim=4,
                                             **{**over, **more}),
                                  data_dim=2, device=torch.device("cpu"), generator=torch.Generator().manual_seed(1)))

    out = eager_and_compiled(make, batches(6), backend=backend)
    comp = out[1][0]
    assert comp._pair is not None and comp._pair.core is not None and comp.compile_blocker() is None
    assert_same_runs(out, rtol=1e-9, atol=1e-11)
    if name == "bib":
        assert "LOBPCG volume" in make(estimator="lobpcg", score_volume="lobpcg", share_jacobian=True).compile_blocker()


def test_auto_expects_no_gain_for_conv_networks():
    """compile=auto's expected speed-up is the method's measured one at the 2D presets, and 1 (a compile never
    repays) for a method with convolutions, whose compiled step ran 0.92-1.14x the eager one at the image presets
    (benchmarks/compile/results.md)."""
    from ebmlab.config import resolve_config
    from ebmlab.methods.gan import GAN
    from ebmlab.trainer import build_method

    for data, want in (("ring8", GAN.compile_estimate[0]), ("digits", compiled.AUTO_CONV_SPEEDUP)):
        m = build_method(resolve_config("gan", data, overrides={"seed": 0}), torch.device("cpu"))
        runner = CompiledSteps(m, m.train_step, lambda: None, None, backend="aot_eager", auto_steps=100)
        assert runner.probe is not None and runner.probe.speedup == want, data


def test_partials_compile_apart_past_dynamos_recompile_limit():
    """Each method instance compiles its own step (``functools.partial(teaching_core, method)``): a dozen of them in
    one process (a notebook training several runs, a test session) must not meet dynamo's recompile limit (8 per
    code object), which it met when every compiled partial went through dynamo's one wrapper frame."""
    import functools

    def scaled(w, x):
        return x * w

    for i in range(12):
        fn = torch.compile(compiled.own_code(functools.partial(scaled, torch.full((2,), float(i)))), fullgraph=True,
                           dynamic=False, backend="eager")
        assert fn(torch.ones(2)).tolist() == [float(i)] * 2
