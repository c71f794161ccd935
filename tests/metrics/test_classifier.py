"""The domain classifier: trained and saved with its sha256 and test accuracy; a changed file is refused."""

import json

import pytest
import torch

from ebmlab.data import get_dataset
from ebmlab.errors import EbmlabError
from ebmlab.metrics.classifier import load_classifier, train_classifier


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("clf")
    clf = train_classifier(get_dataset("digits"), epochs=15, out_dir=d, progress=False)
    return d, clf


def test_trained_classifier_is_accurate_and_recorded(trained):
    d, clf = trained
    info = json.loads((d / "digits.json").read_text())
    assert info["sha256"] == clf.sha256 and info["test_accuracy"] == clf.test_accuracy
    assert clf.test_accuracy > 0.9  # 10 classes; chance is 0.1
    again = load_classifier("digits", d)
    x = get_dataset("digits").test[:8]
    assert torch.equal(again.run(x)[0], clf.run(x)[0])


def test_features_do_not_depend_on_the_batch_size(trained):
    """The evaluation runs the classifier in batches of 128 on the CPU (batch_rows): the features and probabilities
    of the 297 test digits (two full batches and a short one) are those of one batch of all, to float rounding (a
    batch of another size may take another convolution algorithm; 1e-6 relative leaves room for that and none for
    a row mixed with another's)."""
    _, clf = trained
    x = get_dataset("digits").test
    f, p = clf.run(x)
    f1, p1 = clf.run(x, chunk=len(x))
    assert len(x) == 297 and f.shape == (297, 128) and p.shape == (297, 10)
    torch.testing.assert_close(f, f1, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(p, p1, rtol=1e-6, atol=1e-7)


def test_the_classifier_runs_where_the_samples_are_and_returns_cpu_features(trained):
    """On the CPU ``on`` is the classifier itself; an empty set of images (every sample of a diverged run not finite)
    gives empty features, not an IndexError."""
    _, clf = trained
    assert clf.on("cpu") is clf and clf.on(torch.device("cpu")) is clf
    f, p = clf.run(torch.zeros(0, 1, 8, 8))
    assert f.shape == (0, 128) and p.shape == (0, 10)
    from ebmlab.metrics.images import image_metrics

    m = image_metrics(torch.full((20, 1, 8, 8), float("nan")), get_dataset("digits"))  # was an IndexError
    assert m["frac_finite"] == 0 and m["n_feature_samples"] == 0 and "clf_fd" not in m


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_the_features_are_the_cpus_to_float32_rounding(trained):
    """A GPU's samples are classified on that GPU (one copy, kept) in IEEE float32 — TF32, cuDNN's default for
    convolutions, would move features by ~1e-3 relative — and the precision settings are as before afterwards.
    Tolerance: float32 sums of a few thousand terms in another order, ~1e-5 relative."""
    _, clf = trained
    x = get_dataset("digits").test
    gpu = clf.on("cuda")
    assert gpu is clf.on("cuda") and gpu is not clf
    before = torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision
    f_gpu, p_gpu = gpu.run(x.cuda())
    assert f_gpu.device.type == "cpu"
    assert (torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision) == before
    f, p = clf.run(x)
    torch.testing.assert_close(f_gpu, f, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(p_gpu, p, rtol=1e-4, atol=1e-6)


def test_changed_weights_are_refused(trained, tmp_path):
    d, _ = trained
    rec = json.loads((d / "digits.json").read_text())
    (tmp_path / "digits.json").write_text(json.dumps(rec))
    blob = bytearray((d / rec["file"]).read_bytes())
    blob[-10] ^= 0xFF
    (tmp_path / rec["file"]).write_bytes(bytes(blob))
    with pytest.raises(EbmlabError, match="sha256"):
        load_classifier("digits", tmp_path)
    with pytest.raises(EbmlabError, match="classifier train"):
        load_classifier("fashion", tmp_path)


def test_stacked_set_needs_its_base_classifier():
    with pytest.raises(EbmlabError, match="digits"):
        train_classifier(get_dataset("stacked_digits"), epochs=1, progress=False)


def test_training_gives_the_same_file_whatever_the_callers_thread_count(tmp_path):
    """A bench worker (1 thread) and the CLI (torch's default) must produce the same classifier, hash included."""
    ds = get_dataset("digits")
    hashes = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        clf = train_classifier(ds, epochs=2, out_dir=tmp_path / f"t{threads}", progress=False)
        assert torch.get_num_threads() == threads  # the caller's setting is restored
        hashes.append(clf.sha256)
    torch.set_num_threads(1)
    assert hashes[0] == hashes[1]


def test_a_killed_training_leaves_nothing_for_good(tmp_path):
    """The temporaries of a classifier training killed while it wrote (its weights' and its record's) are removed by
    the next training of the same classifier; another classifier's are left alone."""
    out = tmp_path / "c"
    out.mkdir()
    left = [out / ".digits.json.abcd_123.tmp", out / ".digits.0123456789ab.pt.x1y2z3w4.tmp"]
    other = out / ".fashion.json.abcd_123.tmp"
    for p in (*left, other):
        p.write_bytes(b"partial")
    clf = train_classifier(get_dataset("digits"), epochs=1, out_dir=out, progress=False)
    assert not any(p.exists() for p in left) and other.exists()
    assert (out / clf.info["file"]).is_file() and (out / "digits.json").is_file()


def test_workers_that_find_no_classifier_train_it_once(tmp_path, monkeypatch):
    """Two workers (a bench's, ``claims run --jobs 2``'s) evaluating at once on a machine with no classifier: one
    trains it, the other waits for it and loads the same weights."""
    import threading
    import time

    from ebmlab.metrics import classifier as C

    monkeypatch.setenv("EBMLAB_CLASSIFIERS", str(tmp_path / "clf"))
    calls = []

    def slow_training(dataset, progress=True):
        calls.append(dataset.name)
        time.sleep(0.5)  # long enough for the other worker to look for the record and find none
        return train_classifier(dataset, epochs=2, progress=False)

    monkeypatch.setattr(C, "train_classifier", slow_training)
    got = []
    workers = [threading.Thread(target=lambda: got.append(C.get_classifier(get_dataset("digits"), progress=False)))
               for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert calls == ["digits"] and len(got) == 2 and got[0].sha256 == got[1].sha256
