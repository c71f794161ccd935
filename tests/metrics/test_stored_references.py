"""References kept on disk (``metrics.evaluators.stored_reference``): the same numbers as computing them, read
instead of computed, keyed by everything they depend on, and a damaged or unwritable store costs a computation,
never a wrong number or a failed evaluation."""

import json
import shutil

import pytest

from ebmlab.data import get_dataset
from ebmlab.metrics import evaluators as ev
from ebmlab.metrics.classifier import classifier_dir, get_classifier


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("EBMLAB_REFERENCES", str(tmp_path / "refs"))
    ev._real_reference.cache_clear()
    ev._reference_metrics.cache_clear()
    yield tmp_path / "refs"
    ev._real_reference.cache_clear()
    ev._reference_metrics.cache_clear()


def _all(ds, n):
    return ev.real_reference(ds, n), ev.noise_floor(ds, n), ev.collapse_reference(ds, n)


def test_kept_references_are_the_computed_ones_and_are_read_not_computed(store, monkeypatch):
    ds = get_dataset("digits")
    get_classifier(ds, progress=False)
    images = ev.EVALUATORS["image"]
    direct = (images.reference(ds, 200), {"noise_floor": images.floor(ds, 200)},
              {"collapse_floor": images.collapsed(ds, 200)})
    assert _all(ds, 200) == direct
    assert len(list(store.glob("*.json"))) == 3
    ev._real_reference.cache_clear()
    ev._reference_metrics.cache_clear()

    def refuse(*a, **k):
        raise AssertionError("computed, not read")

    for name in ("reference", "floor", "collapsed"):
        monkeypatch.setattr(type(images), name, refuse)
    assert _all(ds, 200) == direct  # read back: the same numbers, bit for bit (JSON keeps a float exactly)
    with pytest.raises(AssertionError, match="computed"):
        ev.real_reference(ds, 300)  # another count is another key


def test_the_key_follows_the_count_the_kind_the_classifier_and_the_code(store, tmp_path, monkeypatch):
    ds = get_dataset("digits")
    get_classifier(ds, progress=False)
    key = ev.reference_key(ds, 200, "real")
    assert key and len({key, ev.reference_key(ds, 201, "real"), ev.reference_key(ds, 200, "floor")}) == 3
    clf, session = tmp_path / "clf", classifier_dir()
    shutil.copytree(session, clf)
    monkeypatch.setenv("EBMLAB_CLASSIFIERS", str(clf))
    assert ev.reference_key(ds, 200, "real") == key  # the same classifier elsewhere: the same key
    rec = json.loads((clf / "digits.json").read_text())
    (clf / "digits.json").write_text(json.dumps({**rec, "sha256": "0" * 64}))  # other weights
    assert ev.reference_key(ds, 200, "real") not in (None, key)
    (clf / "digits.json").unlink()  # no classifier yet: nothing kept (computing it trains one)
    assert ev.reference_key(ds, 200, "real") is None
    monkeypatch.setenv("EBMLAB_CLASSIFIERS", str(session))  # back where the classifier was trained
    assert ev.reference_key(ds, 200, "real") == key
    monkeypatch.setattr(ev, "code_sha256", lambda: "another version of the metrics' code")
    assert ev.reference_key(ds, 200, "real") not in (None, key)
    assert ev.reference_key(get_dataset("ring8"), 200, "real") is None  # 2D references are not kept


def test_a_damaged_or_unwritable_store_recomputes_and_loses_nothing(store, tmp_path, monkeypatch):
    ds = get_dataset("digits")
    get_classifier(ds, progress=False)
    first = ev.real_reference(ds, 200)
    (kept,) = store.glob("*.json")
    for damaged in ("{not json", json.dumps({"key": "another", "metrics": {"clf_fd": 0.0}}), "[]"):
        kept.write_text(damaged)
        ev._real_reference.cache_clear()
        assert ev.real_reference(ds, 200) == first  # computed again ...
        assert json.loads(kept.read_text())["metrics"] == first  # ... and kept again
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("EBMLAB_REFERENCES", str(blocker / "refs"))  # cannot be created
    ev._real_reference.cache_clear()
    assert ev.real_reference(ds, 200) == first
