"""The method contract, checked for every registered method through the public checks (``ebmlab.testing``) on the
small settings of ``ebmlab.testing.CASES``; and the checks themselves, which must fail on a method that breaks
the contract."""

import dataclasses

import pytest
import torch

from ebmlab.methods import METHODS, SOURCES
from ebmlab.testing import (CASES, check_declarations, check_method, check_round_trip, check_sampling,
                            check_step, parametrize_with_checks)


def test_every_method_of_ebmlab_has_a_row_of_test_settings():
    """(A plugin's method gets the row its data kinds imply, unless its tests add one.)"""
    own = {n for n in METHODS if SOURCES[n] == "ebmlab"}
    assert set(CASES) == own, f"no row in ebmlab.testing.CASES: {sorted(own - set(CASES))}"


@parametrize_with_checks(list(METHODS), ("declarations", "step", "round_trip", "sampling"))
def test_contract(method, check):
    """Declarations agree with the class; a step is finite and moves exactly the trained networks; save and load
    round-trip bit-exactly; sampling is deterministic given a generator (tests/methods/test_capture.py runs the
    capture check; tests/methods/test_images.py the host-read and step-kind checks on images)."""
    check(method)


def test_parametrize_with_checks_makes_a_test_per_method_and_check():
    from ebmlab.methods.gan import GAN

    class Another(GAN):
        name = "another_gan"

    mark = parametrize_with_checks(["gan", Another], ("step", "sampling"))
    assert mark.args[0] == "method, check" and METHODS["another_gan"] is Another  # the class registered
    assert [p.id for p in mark.args[1]] == ["gan-step", "gan-sampling", "another_gan-step", "another_gan-sampling"]
    assert mark.args[1][0].values == ("gan", check_step)
    with pytest.raises(ValueError, match="unknown checks"):
        parametrize_with_checks(["gan"], ("stepp",))


# --- the checks fail where the contract is broken ------------------------------------------------------------
def _register(monkeypatch, cls):
    METHODS.register(cls.name, cls, source="a test")  # forgotten after the test (tests/conftest.py)


def test_a_flag_without_its_ability_is_caught(monkeypatch):
    from ebmlab.methods.gan import GAN

    class Claims(GAN):
        name = "claims_gan"
        can_inpaint = True  # declared, not given

    _register(monkeypatch, Claims)
    with pytest.raises(AssertionError, match="can_inpaint=True but the class does not give inpaint"):
        check_declarations("claims_gan")


def test_an_ability_without_its_flag_is_caught(monkeypatch):
    from ebmlab.methods.gan import GAN

    class Augments(GAN):
        name = "augments_gan"

        def augment(self, x, *, generator):
            return x

    _register(monkeypatch, Augments)
    with pytest.raises(AssertionError, match="can_augment=False but the class gives augment"):
        check_declarations("augments_gan")


def test_a_step_that_leaves_a_network_still_is_caught(monkeypatch):
    from ebmlab.methods.gan import GAN

    class Lazy(GAN):
        name = "lazy_gan"

        def train_step(self, batch, step):
            g = self.networks["generator"]
            kept = [p.detach().clone() for p in g.parameters()]
            out = super().train_step(batch, step)
            with torch.no_grad():  # the generator's update undone
                for p, k in zip(g.parameters(), kept):
                    p.copy_(k)
            return out

    _register(monkeypatch, Lazy)
    with pytest.raises(AssertionError, match="network generator did not move"):
        check_step("lazy_gan")


def test_state_kept_outside_the_state_dict_is_caught(monkeypatch):
    """A method whose step reads a counter it does not save: the step after a load differs."""
    from ebmlab.methods.gan import GAN

    class Forgets(GAN):
        name = "forgets_gan"

        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.calls = 0

        def train_step(self, batch, step):
            self.calls += 1
            out = super().train_step(batch * (1 + 0.1 * self.calls), step)
            return out

    _register(monkeypatch, Forgets)
    with pytest.raises(AssertionError, match="forgets_gan"):
        check_round_trip("forgets_gan")


def test_sampling_that_ignores_the_generator_is_caught(monkeypatch):
    from ebmlab.methods.gan import GAN

    class Unseeded(GAN):
        name = "unseeded_gan"

        def sample(self, n, *, generator=None):
            return super().sample(n, generator=None)  # the method's own stream: moves between calls

    _register(monkeypatch, Unseeded)
    with pytest.raises(AssertionError, match="differ"):
        check_sampling("unseeded_gan")


def test_check_method_runs_every_check_on_a_new_method(monkeypatch):
    """A method added by subclassing (new name, same contract) passes every check — what ``check_method`` offers a
    method written outside the project."""
    from ebmlab.methods.gan import GAN, GANConfig

    @dataclasses.dataclass(frozen=True)
    class Cfg(GANConfig):
        OPTIONS = {**GANConfig.OPTIONS}

    class Renamed(GAN):
        name = "renamed_gan"
        Config = Cfg

    _register(monkeypatch, Renamed)
    check_method("renamed_gan")


def test_check_method_takes_a_class_and_registers_it(monkeypatch):
    from ebmlab.methods.gan import GAN

    class AsClass(GAN):
        name = "as_class_gan"

    import ebmlab.methods as methods

    check_method(AsClass)
    assert methods.METHODS["as_class_gan"] is AsClass


def test_evaluate_extra_gets_the_main_sets_count_and_an_old_override_still_works():
    """The evaluator passes the count it scored the main sample set at (evaluate_extra(dataset, count)); a plugin's
    override written before, without count, is called as written, the count on the method as eval_count."""
    from ebmlab.config import resolve_config
    from ebmlab.data import get_dataset
    from ebmlab.metrics import evaluate_method
    from ebmlab.methods.gan import GAN
    from ebmlab.placement import build_method

    seen = {}

    class New(GAN):
        name = "new_extra_gan"

        def evaluate_extra(self, dataset, count=2500):
            seen["new"] = count
            return {}

    class Old(GAN):
        name = "old_extra_gan"

        def evaluate_extra(self, dataset):
            seen["old"] = self.eval_count
            return {}

    for cls in (New, Old):
        METHODS.register(cls.name, cls, source="a test")  # forgotten after the test (tests/conftest.py)
        m = build_method(resolve_config(cls.name, "ring8"), torch.device("cpu"))
        evaluate_method(m, get_dataset("ring8"), n_samples=300, density=False)
    assert seen == {"new": 300, "old": 300}
