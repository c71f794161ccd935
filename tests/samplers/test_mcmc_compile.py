"""``mcmc.run(compile=...)``: the compiled chains give the eager chains' numbers (float64, the same draws from the
same generator), for every sampler and both step-size adaptations; ``auto`` falls back to eager on an energy that
cannot be traced into one graph, ``on`` refuses it. Most checks trace with the ``aot_eager`` backend (dynamo and
``torch.func.grad`` as in a real compile, without generating C++: seconds, not tens of seconds); one runs inductor's
generated code and checks its samples against the known answer."""

import math
import re
import warnings

import pytest
import torch

from ebmlab.samplers import hamiltonian, mcmc

DT = torch.float64
COV = torch.tensor([[2.0, 0.9], [0.9, 1.0]], dtype=DT)
PREC = torch.linalg.inv(COV)


def gaussian_energy(x):
    return 0.5 * ((x @ PREC) * x).sum(1)


def mlp_energy():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.SiLU(), torch.nn.Linear(16, 1)).double()
    return lambda x: net(x).squeeze(-1) + 0.5 * (x * x).sum(1)  # parameters require grad: only ∇_x is taken


CASES = [
    ("ula", {"step_size": 0.05}, False),
    ("mala", {"step_size": 0.5}, "per_chain"),
    ("hmc", {"step_size": 0.3, "n_leapfrog": 4, "step_size_jitter": 0.2}, True),
    ("kinetic_langevin", {"gamma": 0.01, "kappa": 1.0}, False),
]


def chains(algorithm, energy, compile, adapt, kw, n=64, steps=40):
    x0 = torch.randn(n, 2, dtype=DT, generator=torch.Generator().manual_seed(1))
    return mcmc.run(getattr(mcmc, algorithm), x0, energy, n_steps=steps, n_warmup=10 if adapt else 0, thin=10,
                    adapt_step_size=adapt, generator=torch.Generator().manual_seed(2), compile=compile, **kw)


@pytest.mark.parametrize("algorithm,kw,adapt", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("energy", [gaussian_energy, mlp_energy()], ids=["gaussian", "mlp"])
def test_compiled_chains_are_the_eager_chains(monkeypatch, algorithm, kw, adapt, energy):
    monkeypatch.setattr(mcmc, "COMPILE_BACKEND", "aot_eager")
    eager = chains(algorithm, energy, "off", adapt, kw)
    comp = chains(algorithm, energy, "on", adapt, kw)
    assert eager.compile_seconds is None and comp.compile_seconds > 0
    torch.testing.assert_close(comp.samples, eager.samples, rtol=0, atol=1e-10)
    torch.testing.assert_close(comp.acceptance_rate, eager.acceptance_rate, rtol=0, atol=1e-12)
    if adapt:
        torch.testing.assert_close(torch.as_tensor(comp.step_size), torch.as_tensor(eager.step_size), rtol=1e-12,
                                   atol=0)


@pytest.mark.skipif(not mcmc.compiler_available(torch.device("cpu")), reason="no C/C++ compiler for inductor")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inductor's own use of torch.jit internals
def test_inductor_mala_matches_eager_and_the_known_answer():
    """Inductor's generated code: the eager chains' states to float64 rounding over 300 steps, and the Gaussian's
    covariance from the final states of 2000 independent chains within 4 standard errors."""
    n, steps = 2000, 300
    x0 = torch.randn(n, 2, dtype=DT, generator=torch.Generator().manual_seed(3))
    runs = [mcmc.run(mcmc.mala, x0, gaussian_energy, n_steps=steps, step_size=0.6, compile=c,
                     generator=torch.Generator().manual_seed(4)) for c in ("off", "on")]
    eager, comp = (r.final_state.x for r in runs)
    assert float((comp - eager).abs().max()) < 1e-8
    assert runs[1].compile_seconds > 0
    c_hat = torch.cov(comp.T)
    var = torch.diagonal(COV)
    se = ((var[:, None] * var[None, :] + COV**2) / n).sqrt()
    assert ((c_hat - COV).abs() <= 4 * se).all(), (c_hat, COV)


def untraceable(x):
    torch._dynamo.graph_break()  # what an energy dynamo cannot trace meets (a C extension, data-dependent control)
    return 0.5 * (x * x).sum(1)


def test_auto_falls_back_to_eager_on_an_untraceable_energy_and_on_refuses_it(monkeypatch):
    monkeypatch.setattr(mcmc, "COMPILE_BACKEND", "aot_eager")
    monkeypatch.setattr(mcmc, "AUTO_COMPILE_SECONDS", -1.0)  # auto decides to compile whatever the chain's length
    monkeypatch.setattr(mcmc, "compiler_available", lambda device: True)  # aot_eager generates no code
    kw = {"step_size": 0.3}
    eager = chains("mala", untraceable, "off", False, kw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        auto = chains("mala", untraceable, "auto", False, kw)
    assert any("could not be compiled" in str(w.message) for w in caught)
    assert torch.equal(auto.samples, eager.samples) and auto.compile_seconds is None
    with pytest.raises(ValueError, match="cannot be compiled into one graph"):
        chains("mala", untraceable, "on", False, kw)


def test_auto_compiles_where_the_timed_eager_steps_say_it_repays_and_bad_values_are_refused(monkeypatch):
    """compile=auto times its first steps eagerly and compiles the rest only when the estimated saving exceeds a
    compile's cost: with the cost set below any saving it compiles (the eager chain to float rounding, the switch
    included), with the measured cold cost a 50-step chain of this size runs eagerly; either way the note says
    what was measured and decided."""
    monkeypatch.setattr(mcmc, "COMPILE_BACKEND", "aot_eager")
    monkeypatch.setattr(mcmc, "compiler_available", lambda device: True)  # aot_eager generates no code
    kw = {"step_size": 0.1}
    eager = chains("ula", gaussian_energy, "off", False, kw, steps=50)
    short = chains("ula", gaussian_energy, "auto", False, kw, steps=50)
    assert short.compile_seconds is None and torch.equal(short.samples, eager.samples)
    assert re.search(r"compile=auto: 42 steps left at [\d.]+ ms an eager step; .* the chain ran eagerly",
                     short.compile_note)
    monkeypatch.setattr(mcmc, "AUTO_COMPILE_SECONDS", -1.0)
    comp = chains("ula", gaussian_energy, "auto", False, kw, steps=50)
    assert comp.compile_seconds > 0 and comp.compile_note.endswith("compiled from here")
    torch.testing.assert_close(comp.samples, eager.samples, rtol=0, atol=1e-10)
    assert chains("ula", gaussian_energy, "off", False, kw).compile_note is None
    with pytest.raises(ValueError, match="compile must be off, on or auto"):
        chains("ula", gaussian_energy, "sometimes", False, kw)
    assert math.isfinite(short.mean_acceptance)


def test_the_guided_sampler_passes_compile_through_and_checks_it(monkeypatch, tmp_path):
    """KALE's ``mcmc_compile`` option / ``ebmlab sample --mcmc-compile``: checked when set, and the latent chains
    compiled give the eager latent samples."""
    from ebmlab.errors import EbmlabError
    from ebmlab.samplers.latent import GuidedConfig, latent_samples

    with pytest.raises(EbmlabError, match="mcmc_compile='sometimes'"):
        GuidedConfig(mcmc_compile="sometimes")
    monkeypatch.setattr(mcmc, "compiler_available", lambda device: False)
    from ebmlab.methods.kale import KALEConfig

    # the settings stay valid on a machine without a compiler (a run trained elsewhere opens here) ...
    assert GuidedConfig(mcmc_compile="on").mcmc_compile == KALEConfig(mcmc_compile="on").mcmc_compile == "on"
    # ... the compiled draw is what is refused, and a KALE run is refused before it trains, not at its evaluation
    with pytest.raises(EbmlabError, match="needs a compiler for torch.compile .* --mcmc-compile off"):
        latent_samples(torch.nn.Linear(3, 2), lambda x: (x * x).sum(1), 3, 4, GuidedConfig(mcmc_compile="on"),
                       generator=torch.Generator().manual_seed(5))
    import ebmlab

    with pytest.raises(EbmlabError, match="needs a compiler for torch.compile"):
        ebmlab.train("kale", "ring8", out=tmp_path / "k", progress=False, overrides={"steps": 1, "mcmc_compile": "on"})
    assert not (tmp_path / "k").exists()
    with pytest.raises(ValueError, match="needs a compiler for torch.compile"):
        chains("ula", gaussian_energy, "on", False, {"step_size": 0.1})
    assert GuidedConfig(mcmc_compile="auto").mcmc_compile == "auto"  # auto runs eagerly there
    monkeypatch.setattr(mcmc, "compiler_available", lambda device: True)  # aot_eager generates no code
    monkeypatch.setattr(mcmc, "COMPILE_BACKEND", "aot_eager")
    torch.manual_seed(0)
    g = torch.nn.Linear(3, 2)  # latent draws are float32
    out = [latent_samples(g, lambda x: (x * x).sum(1), 3, 32, GuidedConfig(mcmc_steps=20, mcmc_compile=c),
                          generator=torch.Generator().manual_seed(5))[0] for c in ("off", "on")]
    torch.testing.assert_close(out[1], out[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("algorithm,kw", [("ula", {"step_size": 0.05}), ("mala", {"step_size": 0.5}),
                                          ("kinetic_langevin", {"gamma": 0.01, "kappa": 1.0}),
                                          ("hmc", {"step_size": 0.3, "n_leapfrog": 3}),
                                          ("hmc", {"step_size": 0.3, "n_leapfrog": 1})])
def test_blocks_of_compiled_steps_are_the_single_steps(monkeypatch, algorithm, kw):
    """After warm-up the compiled chains run COMPILE_BLOCK steps a call (their draws made first, in the steps'
    order), the rest one at a time: 3 warm-up steps, two blocks of 8, 5 single steps give the eager chains."""
    monkeypatch.setattr(mcmc, "COMPILE_BACKEND", "aot_eager")
    calls = []
    block = mcmc._Stepper.block
    monkeypatch.setattr(mcmc._Stepper, "block", lambda self, *a: calls.append(a[-1]) or block(self, *a))
    x0 = torch.randn(32, 2, dtype=DT, generator=torch.Generator().manual_seed(1))
    out = [mcmc.run(getattr(mcmc, algorithm), x0, gaussian_energy, n_steps=21, n_warmup=3, compile=c,
                    generator=torch.Generator().manual_seed(2), **kw) for c in ("off", "on")]
    assert calls == [mcmc.COMPILE_BLOCK, mcmc.COMPILE_BLOCK] == [8, 8]
    torch.testing.assert_close(out[1].final_state.x, out[0].final_state.x, rtol=0, atol=1e-10)
    torch.testing.assert_close(out[1].acceptance_rate, out[0].acceptance_rate, rtol=0, atol=1e-12)
    assert out[1].compile_seconds > 0


def test_many_compiled_runs_in_one_process_each_compile_apart(monkeypatch):
    """Each run compiles its own copy of the step's code (compiled.own_code): nine runs with nine energies in one
    process, past dynamo's limit of 8 recompiles of one code object, all compile and give their eager chains."""
    monkeypatch.setattr(mcmc, "COMPILE_BACKEND", "eager")  # one copy of the code per run: dynamo's, any back-end
    x0 = torch.randn(8, 2, dtype=DT, generator=torch.Generator().manual_seed(1))
    for k in range(9):
        energy = (lambda s: lambda x: 0.5 * s * (x * x).sum(1))(1.0 + k)  # a new closure: new guards
        out = [mcmc.run(mcmc.ula, x0, energy, n_steps=8, compile=c, step_size=0.01,
                        generator=torch.Generator().manual_seed(k)) for c in ("off", "on")]
        torch.testing.assert_close(out[1].final_state.x, out[0].final_state.x, rtol=0, atol=1e-12)


def test_a_run_trained_with_mcmc_compile_on_opens_on_a_machine_without_a_compiler(monkeypatch, tmp_path, capsys):
    """Trained where a compiler exists, sampled where none does: ``--mcmc-compile off`` samples it, and without it
    the refusal names the compiler and the way out — not a damaged or hand-edited configuration."""
    import ebmlab
    from ebmlab.cli import main

    monkeypatch.setattr(mcmc, "compiler_available", lambda device: True)
    monkeypatch.setattr(mcmc, "COMPILE_BACKEND", "aot_eager")
    run = tmp_path / "k"
    ebmlab.train("kale", "ring8", out=run, progress=False,
                 overrides={"steps": 2, "mcmc_compile": "on", "mcmc_steps": 3, "eval": "none", "plots": False,
                            "loggers": ""})
    monkeypatch.setattr(mcmc, "compiler_available", lambda device: False)
    assert main(["sample", str(run), "-n", "4", "--out", str(tmp_path / "x.npy"), "--mcmc-compile", "off",
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["sample", str(run), "-n", "4", "--out", str(tmp_path / "y.npy"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--mcmc-compile off" in err and "edited by hand" not in err and "Traceback" not in err


def test_a_compile_that_cannot_write_its_cache_is_named_by_its_cause_not_blamed_on_the_energy(monkeypatch):
    """A back-end failing on the file system (a read-only or full cache directory): the OSError is found behind
    dynamo's wrapper, by its errno, and said as the cache's fault with the way out, under on and auto alike."""
    import errno

    from ebmlab.compiled import cache_message, os_error_in
    from ebmlab.errors import EbmlabError
    from ebmlab.samplers.latent import GuidedConfig, latent_samples

    def read_only(gm, inputs):
        raise PermissionError(errno.EACCES, "Permission denied", "/ro/inductor-cache")

    monkeypatch.setattr(mcmc, "COMPILE_BACKEND", read_only)
    monkeypatch.setattr(mcmc, "compiler_available", lambda device: True)
    for mode in ("on", "auto"):
        monkeypatch.setattr(mcmc, "AUTO_COMPILE_SECONDS", -1.0)
        with pytest.raises(ValueError, match=r"could not write its cache: Permission denied \(/ro/inductor-cache\)"):
            chains("mala", gaussian_energy, mode, False, {"step_size": 0.3})
    with pytest.raises(EbmlabError, match="mcmc_compile=on: the compile could not write its cache"):
        latent_samples(torch.nn.Linear(3, 2), lambda x: (x * x).sum(1), 3, 4, GuidedConfig(mcmc_compile="on"),
                       generator=torch.Generator().manual_seed(5))
    full = OSError(errno.ENOSPC, "No space left on device")
    wrapped = RuntimeError("backend failed")
    wrapped.inner_exception = full
    assert os_error_in(wrapped) is full and os_error_in(ValueError("untraceable")) is None
    assert "free some space" in cache_message(full)


W = torch.tensor([[1.0, 0.5], [0.0, 2.0], [-1.0, 0.3]], dtype=DT)


def closure_energy(x):
    return 0.5 * ((x @ W.T) ** 2).sum(1)  # a closure's transposed plain tensor: torch's scan cannot trace it


def test_hmc_whose_leapfrog_loop_cannot_be_traced_compiles_its_leapfrog_step_and_says_so(monkeypatch):
    """HMC compiled whole runs its leapfrog as torch's scan; an energy scan cannot trace (a closure's transposed
    plain tensor in a matrix product) falls back to the leapfrog step compiled alone, under on as under auto, with
    a note — not to eager chains nor a refusal — and gives the eager chains; an energy nothing can trace is still
    refused under on."""
    monkeypatch.setattr(mcmc, "COMPILE_BACKEND", "aot_eager")
    parts = []
    part = hamiltonian._CompiledDriftKick  # HMC's compiled part lives with its kernel
    monkeypatch.setattr(hamiltonian, "_CompiledDriftKick", lambda *a, **k: parts.append(1) or part(*a, **k))
    kw = {"step_size": 0.2, "n_leapfrog": 4}
    eager = chains("hmc", closure_energy, "off", False, kw, steps=20)
    comp = chains("hmc", closure_energy, "on", False, kw, steps=20)
    assert parts and comp.compile_seconds > 0
    assert re.fullmatch(r"compile=on: hmc's step could not be traced whole \(\w+\); its compiled part runs, the "
                        r"rest eagerly", comp.compile_note)
    torch.testing.assert_close(comp.samples, eager.samples, rtol=0, atol=1e-10)
    parts.clear()
    whole = chains("hmc", gaussian_energy, "on", False, kw, steps=20)
    assert not parts and whole.compile_note is None  # traced whole: no part compiled
    with pytest.raises(ValueError, match="cannot be compiled into one graph"):
        chains("hmc", untraceable, "on", False, kw)


def test_the_latent_samplers_table_is_what_every_other_place_reads(monkeypatch):
    """One table (samplers.latent.SAMPLERS) names the latent samplers: the option's names, the accept/reject set,
    GuidedConfig's refusal and the draw all come from it — a row added there (here: MALA under another name) is a
    sampler the chains run, once metadata.SamplerName names it."""
    from typing import Literal, get_args

    from ebmlab import metadata
    from ebmlab.errors import EbmlabError
    from ebmlab.samplers import latent

    assert set(get_args(metadata.SamplerName)) == set(latent.SAMPLERS)
    assert latent.ACCEPT_REJECT == ("mala", "hmc")
    with pytest.raises(EbmlabError, match="sampler='nuts' \\(expected one of kinetic, ula, mala, hmc\\)"):
        latent.GuidedConfig(sampler="nuts")
    monkeypatch.setitem(latent.SAMPLERS, "mala2", latent.SAMPLERS["mala"])
    monkeypatch.setattr(metadata, "SamplerName", Literal["kinetic", "ula", "mala", "hmc", "mala2"])
    g = torch.nn.Linear(3, 2)
    draw = [latent.latent_samples(g, lambda x: (x * x).sum(1), 3, 16, latent.GuidedConfig(sampler=s, mcmc_steps=5),
                                  generator=torch.Generator().manual_seed(5)) for s in ("mala", "mala2")]
    assert torch.equal(draw[0][0], draw[1][0]) and draw[1][1]["acceptance"] is not None
