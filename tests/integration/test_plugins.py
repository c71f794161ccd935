"""Extension without forking (ebmlab.plugins): the example plugin package (examples/ebmlab-example-plugin, installed
by the README's test command) adds a method, a data set and a metric through entry points; its runs train, resume
after a kill, evaluate, sample, bench and report in new processes; ``ebmlab.testing.check_method`` passes on its
method and fails on a broken copy; and the same three can be registered from Python within one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata

import pytest
import torch

import ebmlab
from ebmlab.errors import EbmlabError
from ebmlab.methods import METHODS, SOURCES
from ebmlab.plugins import restored

INSTALLED = any(ep.name == "lsgan" for ep in metadata.entry_points(group="ebmlab.methods"))
plugin = pytest.mark.skipif(not INSTALLED, reason="the example plugin is not installed: pip install -e "
                                                  "examples/ebmlab-example-plugin (the README's test command does)")
QUICK = ["eval_samples=200", "eval_density=false", "loggers=", "plots=true", "log_every=2", "ckpt_every=2"]


def fresh(*args, env=None):
    """``python -m ebmlab ...`` in a new interpreter: nothing imported beforehand, the entry points read anew."""
    return subprocess.run([sys.executable, "-m", "ebmlab", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


@plugin
def test_list_names_the_plugin_and_where_it_comes_from():
    r = fresh("list")
    assert r.returncode == 0, r.stderr
    for name in ("lsgan", "ring4", "mean_dist"):
        line = next(ln for ln in r.stdout.splitlines() if ln.strip().startswith(name))
        assert "[from ebmlab-example-plugin 0.1.0" in line, line
    assert "[from" not in next(ln for ln in r.stdout.splitlines() if ln.strip().startswith("gan "))


@plugin
def test_a_plugin_run_in_new_processes(tmp_path, cli):
    out = tmp_path / "run"
    train = ["train", "lsgan", "--data", "ring4", "--steps", "6", "--out", out, "--no-progress", *QUICK]
    killed = fresh(*train, env={"EBMLAB_KILL_AT": "step:3"})
    assert killed.returncode == -9 and (out / "checkpoint.pt").is_file()  # killed after the step-2 checkpoint
    resumed = fresh(*train)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["step"] == 6 and {"mean_dist", "modes", "hq"} <= set(summary["metrics"])  # ring4 has modes
    uninterrupted = tmp_path / "whole"
    assert fresh(*train[:7], uninterrupted, *train[8:]).returncode == 0
    a = torch.load(out / "checkpoint.pt", weights_only=True)["method_state"]["networks"]
    b = torch.load(uninterrupted / "checkpoint.pt", weights_only=True)["method_state"]["networks"]
    assert all(torch.equal(a[n][k], b[n][k]) for n in a for k in a[n])  # resumed exactly
    ev = cli(["eval", str(out), "--json"])
    assert ev.returncode == 0 and json.loads(ev.stdout)["metrics"]["mean_dist"] >= 0
    sm = cli(["sample", str(out), "-n", "50", "--out", str(tmp_path / "s.npy")])
    assert sm.returncode == 0 and "50 samples" in sm.stdout
    rep = cli(["report", str(out), "--out", str(tmp_path / "r.html")])
    assert rep.returncode == 0 and "lsgan" in (tmp_path / "r.html").read_text()


@plugin
def test_a_bench_of_a_plugin_method_on_a_plugin_data_set(tmp_path):
    """A bench's runs go to spawned worker processes (--jobs 2): they find the plugin through its entry points."""
    b = fresh("bench", "toy", "--methods", "lsgan,gan", "--data", "ring4", "--seeds", "1", "--steps", "4",
              "--jobs", "2", "--out", tmp_path / "b", "eval_samples=100", "eval_density=false", "loggers=")
    assert b.returncode == 0, b.stderr
    rows = json.loads((tmp_path / "b" / "results.json").read_text())["rows"]
    assert {r["method"] for r in rows} == {"lsgan", "gan"} and all(r["ok"] == 1 for r in rows)


@plugin
def test_check_method_passes_on_the_plugin_and_fails_on_a_broken_copy(monkeypatch):
    from ebmlab.testing import check_method

    assert SOURCES["lsgan"].startswith("ebmlab-example-plugin")
    check_method("lsgan")
    cls = METHODS["lsgan"]

    class Broken(cls):  # its metrics leave the device as Python numbers read on the host: a sync every step
        name = "lsgan_broken"

        def train_step(self, batch, step):
            return {k: float(v) for k, v in super().train_step(batch, step).items()}

    ebmlab.register_method(Broken)  # forgotten after the test (tests/conftest.py)
    with pytest.raises(AssertionError, match="lsgan_broken"):
        check_method("lsgan_broken")


def test_register_from_python(tmp_path, monkeypatch):
    """register_method / register_dataset / register_metric within one process: a run trains and reports the
    metric; a taken name is refused."""
    from ebmlab import data
    from ebmlab.data.toy import TOY_DATASETS
    from ebmlab.metadata import Metric
    from ebmlab.methods.gan import GAN
    from ebmlab.metrics import registry

    class MyGAN(GAN):
        name = "my_gan"

    with restored():
        ebmlab.register_method(MyGAN)
        ebmlab.register_dataset("my_ring", lambda: TOY_DATASETS["ring8"])
        ebmlab.register_metric("spread", Metric("samples", "", "", "mean norm of the samples"),
                               lambda x, test: float(x.norm(dim=1).mean()))
        res = ebmlab.train("my_gan", "my_ring", out=tmp_path / "r", progress=False,
                           overrides={"steps": 3, "eval_samples": 100, "plots": False, "loggers": "",
                                      "eval_density": False})
        assert res.summary["metrics"]["spread"] > 0
        assert "registered in Python" in ebmlab.methods.SOURCES["my_gan"]
        with pytest.raises(EbmlabError, match="taken by ebmlab"):
            ebmlab.register_method(type("Gan2", (GAN,), {"name": "gan"}))
        with pytest.raises(EbmlabError, match="taken"):
            ebmlab.register_dataset("ring8", lambda: TOY_DATASETS["ring8"])
        with pytest.raises(EbmlabError, match="_err"):
            ebmlab.register_metric("spread_err", Metric("samples", "", "", "x"), lambda x, t: 0.0)
    assert "my_gan" not in ebmlab.methods.METHODS and "my_ring" not in data.DATASETS  # restored
    assert "spread" not in registry.PLUGINS and "spread" not in registry.catalogue()


def test_a_plugin_that_fails_to_load_is_named_when_asked_for(monkeypatch):
    from ebmlab import methods

    monkeypatch.setitem(methods.FAILED, "ghost", "ghost-pkg 1.0 (ghost:Ghost) could not be loaded: ImportError: no")
    with pytest.raises(EbmlabError, match="ghost-pkg 1.0 .* could not be loaded"):
        methods.get_method("ghost")


@plugin
def test_a_run_names_its_plugin_package_and_is_refused_clearly_where_it_is_missing(tmp_path, monkeypatch, capsys):
    """A plugin run records the packages of its method and data set (config.json ``plugins``); opened where the
    package is not installed it is refused naming the package and the pip command, not as a damaged file."""
    from ebmlab import data, methods
    from ebmlab.cli import main

    out = tmp_path / "r"
    ebmlab.train("lsgan", "ring4", out=out, progress=False,
                 overrides={"steps": 2, "eval_samples": 100, "eval_density": False, "plots": False,
                            "loggers": ""})
    recorded = json.loads((out / "config.json").read_text())["plugins"]
    version = metadata.version("ebmlab-example-plugin")
    assert recorded["method"].startswith(f"ebmlab-example-plugin {version} (") and "ring4" in recorded["data"]
    methods.METHODS.unregister("lsgan")  # as if the package were uninstalled (restored after the test)
    capsys.readouterr()
    assert main(["sample", str(out), "-n", "5", "--out", str(tmp_path / "x.npy")]) == 2
    err = capsys.readouterr().err
    assert f"pip install 'ebmlab-example-plugin=={version}'" in err and "edited by hand" not in err
    assert "method 'lsgan'" in err and "Traceback" not in err
    monkeypatch.setitem(methods.FAILED, "lsgan", "ebmlab-example-plugin (x) could not be loaded: ImportError: no")
    assert main(["eval", str(out)]) == 2
    assert "installed here but failed to load" in capsys.readouterr().err
    from ebmlab.config import resolve_config

    assert "plugins" not in resolve_config("gan", "ring8").to_dict()  # ebmlab's own: nothing to record
    assert data.SOURCES["ring4"] == recorded["data"]


def test_a_function_entry_point_and_a_raising_constructor_are_named_in_one_line(tmp_path, monkeypatch):
    """An entry point naming a function rather than a Method class, and a plugin method whose constructor raises,
    are each refused in one line that names the plugin (no traceback, no "the class's name is None")."""
    from ebmlab import methods, plugins
    from ebmlab.methods.gan import GAN

    failed: dict[str, str] = {}
    ep = metadata.EntryPoint("notaclass", "json:dumps", "ebmlab.methods")
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: [ep] if group == "ebmlab.methods" else [])
    plugins.load("ebmlab.methods", lambda n, o, s: methods.METHODS.register(n, methods._entry(n, o), source=s), failed)
    assert "names a function ('dumps')" in failed["notaclass"] and "not a subclass" in failed["notaclass"]

    class Broken(GAN):
        name = "broken_gan"

        def __init__(self, config, **kw):
            raise RuntimeError("needs a GPU it does not ask for")

    methods.register_method(Broken, source="broken-pkg 0.1 (broken:Broken)")  # forgotten after the test
    with pytest.raises(EbmlabError, match=r"method 'broken_gan' of broken-pkg 0\.1 \(broken:Broken\) could not "
                                          r"be built on ring8: its constructor raised RuntimeError: needs a GPU"):
        ebmlab.train("broken_gan", "ring8", out=tmp_path / "b", progress=False, overrides={"steps": 1})
    assert not (tmp_path / "b").exists()


def test_a_module_declaring_a_method_and_a_data_set_loads_both(tmp_path, monkeypatch):
    """One plugin module declaring a method and a data set: importing it for the methods loads ebmlab's data module,
    which loads the data sets while the plugin's module is half made (what a fresh process meets); the data set's
    entry is tried again once the module is complete, so both are registered and nothing is left failed."""
    from ebmlab import plugins

    (tmp_path / "both_plugin.py").write_text(
        "from ebmlab import plugins\n"
        "from ebmlab.methods.gan import GAN\n"
        "REGISTERED = {}\n"
        "plugins.load('ebmlab.datasets', lambda n, o, s: REGISTERED.__setitem__(n, o), FAILED := {})\n"
        "class Both(GAN):\n"
        "    name = 'both_gan'\n"
        "def ring_both():\n"
        "    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = {"ebmlab.methods": [metadata.EntryPoint("both_gan", "both_plugin:Both", "ebmlab.methods")],
           "ebmlab.datasets": [metadata.EntryPoint("ring_both", "both_plugin:ring_both", "ebmlab.datasets")]}
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: eps.get(group, []))
    seen: dict[str, object] = {}
    failed: dict[str, str] = {}
    try:
        plugins.load("ebmlab.methods", lambda n, o, s: seen.__setitem__(n, o), failed)
        import both_plugin

        assert seen["both_gan"] is both_plugin.Both and not failed
        assert both_plugin.REGISTERED["ring_both"] is both_plugin.ring_both and not both_plugin.FAILED
    finally:
        sys.modules.pop("both_plugin", None)
