"""Every method's steps replayed from the CPU emulation of a captured graph leave exactly the state eager steps
leave — networks, optimizers, random-number generator, its own state, the moving average and the budget's counts
(``ebmlab.testing.check_capture``, on the settings of ``ebmlab.testing.CASES``)."""

from __future__ import annotations

import pytest

from ebmlab.methods import METHODS
from ebmlab.testing import case, check_capture, parametrize_with_checks


@parametrize_with_checks(list(METHODS), ("capture",))
def test_replayed_steps_equal_eager_steps(method, check):
    check(method)


@pytest.mark.parametrize("name, over", [("gan", {}), ("kale", {}), ("bib", {}), ("bib", {"share_jacobian": True})])
def test_replayed_steps_equal_eager_steps_on_images(name, over):
    """Conv networks (their backward passes return autograd's immutable zero tensors, which a replay leaves alone);
    BiB's shared estimate keeps a graph from the energy's optimizer step to the generator's, inside one capture."""
    assert "digits" in case(name).more_data
    check_capture(name, "digits", steps=8 if name != "kale" else 16, **over)


def test_the_check_fails_when_a_replay_differs(monkeypatch):
    """A replay that runs nothing once (after the generator checks of the first replays) leaves the state one step
    behind the eager one: the check sees it."""
    from ebmlab import graphs

    real, calls = graphs._EmulatedGraph.replay, []

    def replay_but_skip_the_fifth(self):
        calls.append(1)
        if len(calls) != 5:
            real(self)

    monkeypatch.setattr(graphs._EmulatedGraph, "replay", replay_but_skip_the_fifth)
    with pytest.raises(AssertionError, match="differs"):
        check_capture("gan")
    assert len(calls) > 5
