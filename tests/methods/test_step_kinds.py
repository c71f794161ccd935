"""The step kinds each method declares (``Method.step_kind``) against what its steps actually run: every operation,
the shapes and dtypes of its tensors and its Python numbers, recorded on the CPU by a TorchDispatchMode. Steps of one
declared kind must run identical operation sequences (what one captured CUDA graph would replay); a method that
declares its steps uncapturable must say why, and its steps must indeed differ (a stale declaration fails). The
check is ``ebmlab.testing.check_step_kinds`` on the settings of ``ebmlab.testing.CASES``."""

from __future__ import annotations

import pytest

from ebmlab.methods import METHODS
from ebmlab.testing import case, check_step_kinds, step_traces


def traces(name, data, steps=8, **over):
    return step_traces(name, data, steps, **over)


@pytest.mark.parametrize("name", list(METHODS))
def test_steps_of_one_declared_kind_run_the_same_operations(name):
    check_step_kinds(name)


@pytest.mark.parametrize("name", ["gan", "kale", "bib", "bib_mi_diff", "vgan_vcd"])
def test_step_kinds_on_images(name):
    check_step_kinds(name, "digits", steps=6)


def test_the_kinds_that_occur_are_the_declared_ones():
    _, kale = traces("kale", "ring8")
    assert [k for k, _ in kale] == ["step", "step", "burst", "step", "step", "burst", "step"]
    _, vcd = traces("vgan_vcd", "ring8")  # the reservoir takes 8 transition inputs a step
    assert [k for k, _ in vcd] == ["filling:8", "filling:16", "filling:24", "filling:32", "step", "step", "step"]
    # a constant margin and EBGAN-LN's default decay (a device tensor filled before each step) are both one kind
    for schedule in ("constant", "linear"):
        check_step_kinds("ebgan_ln", "digits", steps=4, margin_schedule=schedule)
        m, rec = traces("ebgan_ln", "digits", steps=4, margin_schedule=schedule)
        assert {k for k, _ in rec} == {"step"} and m.capture_blocker() is None


def test_the_check_fails_on_a_stale_declaration(monkeypatch):
    """KALE declaring all its steps one kind, though its bursts run more energy updates: the check sees it."""
    from ebmlab.methods.kale import KALE

    monkeypatch.setattr(KALE, "step_kind", lambda self, step: "step")
    with pytest.raises(AssertionError, match="kind 'step' run different operations"):
        check_step_kinds("kale")
    assert case("kale").settings["burst_every"] == 3  # bursts occur within the checked steps
