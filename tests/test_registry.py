"""ebmlab.plugins.Registry: one registry type for methods, data sets and metrics — entry points loaded on the first
look-up (not at import), each instance's own admission check, names held outside the mapping, a failed plugin named
when asked for, the closest name offered, and every registry restored after a block."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest

from ebmlab import plugins
from ebmlab.errors import EbmlabError
from ebmlab.plugins import Registry, restored


def _positive(name: str, obj: object) -> int:
    if not isinstance(obj, int) or obj <= 0:
        raise EbmlabError(f"{name}: a positive integer, got {obj!r}")
    return obj


def test_entry_points_load_on_the_first_look_up_and_once(monkeypatch):
    calls = []
    eps = [metadata.EntryPoint("three", "operator:index", "test.group"),
           metadata.EntryPoint("broken", "no_such_module_here:x", "test.group")]

    def entry_points(group):
        calls.append(group)
        return eps if group == "test.group" else []

    monkeypatch.setattr(plugins.metadata, "entry_points", entry_points)
    reg = Registry("number", "test.group", _positive, own={"one": 1}, entry=lambda name, obj: 3)
    assert calls == []  # made, not loaded
    assert reg["one"] == 1 and calls == ["test.group"]
    assert list(reg) == ["one", "three"] and calls == ["test.group"]  # loaded once
    assert reg.sources["one"] == "ebmlab" and "operator:index" in reg.sources["three"]
    assert reg.own() == {"one": 1} and reg.plugins() == {"three": 3}
    with pytest.raises(EbmlabError, match="number 'broken': .*could not be loaded: ModuleNotFoundError"):
        reg.lookup("broken")
    with pytest.raises(EbmlabError, match=r"unknown number 'thre'; did you mean 'three'\? \(valid numbers: one, "
                                          r"three; ask\)"):
        Registry("number", "test.group", _positive, own={"one": 1, "three": 3}, hint="ask").lookup("thre")
    assert reg.get("nine") is None  # the mapping's get: None for a missing name


def test_admission_reserved_names_and_taken_names():
    reg = Registry("number", "test.none", _positive, own={"one": 1}, reserved=lambda: ["seven"])
    with pytest.raises(EbmlabError, match="a positive integer, got -2"):
        reg.register("two", -2)
    with pytest.raises(EbmlabError, match="number name 'one' is taken by ebmlab; choose another"):
        reg.register("one", 11)
    with pytest.raises(EbmlabError, match="'seven' is taken"):
        reg.register("seven", 7)
    assert reg.register("two", 2, source="pkg 1.0 (pkg:two)") == 2 and reg.sources["two"] == "pkg 1.0 (pkg:two)"
    assert reg.register("two", 2) == 2  # the same object again: allowed
    reg.failed["five"] = "pkg could not be loaded"
    reg.register("five", 5)
    assert "five" not in reg.failed  # registered now: the earlier failure forgotten


def test_restored_forgets_what_a_block_registered_and_unregistered():
    from ebmlab.data import DATASETS, register_dataset
    from ebmlab.methods import METHODS, register_method
    from ebmlab.methods.gan import GAN

    class Scratch(GAN):
        name = "scratch_gan"

    before = set(METHODS), set(DATASETS)
    with restored():
        register_method(Scratch)
        register_dataset("scratch_ring", DATASETS["ring8"])
        METHODS.unregister("gan")
        assert "scratch_gan" in METHODS and "gan" not in METHODS and "scratch_ring" in DATASETS
    assert (set(METHODS), set(DATASETS)) == before and METHODS["gan"] is GAN


def test_a_metric_plugin_joins_and_leaves_the_catalogue():
    """The metric tables are rebuilt when any registry changes (plugins.generation), so a metric registered after
    the tables were first read appears in them, and leaves them once forgotten."""
    from ebmlab.metadata import Metric
    from ebmlab.metrics import registry

    assert "scratch_spread" not in registry.catalogue()
    with restored():
        registry.register_metric("scratch_spread", Metric("samples", "", "", "spread"), lambda x, t: 0.0)
        assert registry.catalogue()["scratch_spread"].meaning == "spread"
        with pytest.raises(EbmlabError, match="metric name 'modes' is taken by ebmlab"):
            registry.register_metric("modes", Metric("samples", "", "", "x"), lambda x, t: 0.0)
    assert "scratch_spread" not in registry.catalogue()


def test_importing_the_registries_reads_no_entry_points():
    """``import ebmlab.methods, ebmlab.data, ebmlab.metrics.registry`` leaves the entry points unread; the first
    look-up reads them."""
    code = ("import importlib.metadata as m\n"
            "seen = []\n"
            "real = m.entry_points\n"
            "def spy(**kw):\n"
            "    if str(kw.get('group')).startswith('ebmlab.'):\n"
            "        seen.append(kw['group'])\n"
            "    return real(**kw)\n"
            "m.entry_points = spy\n"
            "import ebmlab.methods, ebmlab.data, ebmlab.metrics.registry\n"
            "assert seen == [], seen\n"
            "ebmlab.methods.get_method('gan')\n"
            "assert seen == ['ebmlab.methods'], seen\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
