"""Built-in image sets (digits and its stacked/binarised variants; Fashion-MNIST when installed) and the epoch
batches: every index once per epoch, a pure function of the step, shards that add up to the global batch."""

from pathlib import Path

import pytest
import torch

from ebmlab.data import get_dataset
from ebmlab.data.batches import EpochBatches, make_batches


def test_digits_spec_and_splits():
    ds = get_dataset("digits")
    assert ds.spec.kind == "image" and ds.shape == (1, 8, 8) and ds.spec.value_range == (-1.0, 1.0)
    assert ds.n_train == 1500 and ds.n_test == 297
    assert float(ds.train.min()) == -1.0 and float(ds.train.max()) == 1.0
    assert sorted(ds.train_labels.unique().tolist()) == list(range(10))


def test_stacked_labels_are_the_channel_labels():
    base, st = get_dataset("digits"), get_dataset("stacked_digits")
    assert st.shape == (3, 8, 8) and st.n_train == 60_000 and st.n_test == 26_000 and st.base == "digits"
    # find each channel of the first stacked test images among the base test images
    tx, ty = base.test, base.test_labels
    for i in range(20):
        digits = []
        for c in range(3):
            match = (tx[:, 0] == st.test[i, c]).flatten(1).all(1).nonzero()
            digits.append(int(ty[match[0, 0]]))
        assert int(st.test_labels[i]) == digits[0] + 10 * digits[1] + 100 * digits[2]
    assert len(st.test_labels.unique()) > 900  # 26,000 uniform triples reach almost all 1000 modes


def test_the_32_pixel_stacked_set_is_the_stacked_set_with_a_border_that_is_not_scored():
    """``stacked_<base>32`` (for the papers' 32×32 networks): the same triples inside a background border; a sample's
    border does not change its scores (the classifier sees each channel without it), so the modes and feature
    metrics are those of the unpadded set."""
    from ebmlab.metrics.images import image_metrics

    st, padded = get_dataset("stacked_digits"), get_dataset("stacked_digits32")
    assert padded.shape == (3, 32, 32) and padded.border == 12 and padded.base == "digits" and padded.stacked
    inner = (slice(None), slice(None), slice(12, 20), slice(12, 20))
    assert torch.equal(padded.test[inner], st.test) and torch.equal(padded.test_labels, st.test_labels)
    frame = padded.test.clone()
    frame[inner] = -2.0  # mark the inside: what is left is the border
    assert bool((frame[frame != -2.0] == -1.0).all())  # background, the images' own 0 grey level
    x = padded.test[:300].clone()
    x[:, :, :12] = torch.rand_like(x[:, :, :12]) * 2 - 1  # noise in the border of every sample
    a, b = image_metrics(x, padded, n_features=300), image_metrics(st.test[:300], st, n_features=300)
    assert a["modes"] == b["modes"] > 100 and a["clf_fd"] == pytest.approx(b["clf_fd"], abs=1e-9)
    assert get_dataset("stacked_fashion32").shape == (3, 32, 32)  # declared without reading the files


def test_binarised_variants():
    fixed, dyn = get_dataset("digits_bin"), get_dataset("digits_dynbin")
    assert fixed.kind == "binary" and set(fixed.train.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(fixed.train, get_dataset("digits_bin").train)  # fixed seed: the same draw every time
    idx = torch.arange(10)
    a = dyn.train_batch(idx, generator=torch.Generator().manual_seed(0))
    b = dyn.train_batch(idx, generator=torch.Generator().manual_seed(1))
    assert set(a.unique().tolist()) <= {0.0, 1.0} and not torch.equal(a, b)


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="dataset-fashion-mnist not installed")
def test_fashion_md5_checked_and_shapes():
    ds = get_dataset("fashion")
    assert ds.n_train == 60_000 and ds.n_test == 10_000 and ds.shape == (1, 28, 28)


def test_epoch_batches_cover_each_epoch_and_are_pure():
    ds = get_dataset("digits")
    b = EpochBatches(ds, 100, seed=3)
    per_epoch = 1500 // 100
    seen = torch.cat([b.indices(s) for s in range(1, per_epoch + 1)])
    assert sorted(seen.tolist()) == list(range(1500))
    nxt = torch.cat([b.indices(s) for s in range(per_epoch + 1, 2 * per_epoch + 1)])
    assert not torch.equal(seen, nxt)  # a new permutation each epoch
    again = EpochBatches(ds, 100, seed=3)
    assert torch.equal(again.indices(17), b.indices(17))  # a fresh object gives the same batch for a step
    shards = [EpochBatches(ds, 100, seed=3, rank=r, world=2).indices(5) for r in range(2)]
    assert sorted(torch.cat(shards).tolist()) == sorted(b.indices(5).tolist())
    streamed = list(b.stream(3, 6))
    assert all(torch.equal(x, b.batch(s)) for x, s in zip(streamed, range(4, 7)))


def test_auto_scheme_iid_for_toys_epochs_otherwise():
    assert type(make_batches(get_dataset("ring8"), "auto", 10, 0)).__name__ == "IIDBatches"
    assert type(make_batches(get_dataset("digits"), "auto", 10, 0)).__name__ == "EpochBatches"


def test_dataloader_stream_equals_memory_stream():
    b = EpochBatches(get_dataset("digits_dynbin"), 32, seed=5)
    mem = list(b.stream(10, 14))
    dl = list(b.stream(10, 14, num_workers=1))
    assert len(dl) == 4 and all(torch.equal(a, c) for a, c in zip(mem, dl))


def test_image_run_resumes_exactly(tmp_path, monkeypatch):
    import ebmlab
    from ebmlab.metrics.classifier import train_classifier
    from ebmlab.api import load_run

    monkeypatch.setenv("EBMLAB_CLASSIFIERS", str(tmp_path / "clf"))
    train_classifier(get_dataset("digits"), epochs=2, progress=False)
    over = {"steps": 6, "batch_size": 16, "width": 8, "eval_samples": 50, "loggers": "", "plots": False,
            "ckpt_every": 100}
    ebmlab.train("gan", "digits", out=tmp_path / "a", overrides=over, progress=False)
    ebmlab.train("gan", "digits", out=tmp_path / "b", overrides=over, progress=False, stop_after=3)
    ebmlab.train("gan", "digits", out=tmp_path / "b", overrides=over, progress=False)
    _, ma, _ = load_run(tmp_path / "a")
    _, mb, _ = load_run(tmp_path / "b")
    for (k, p), (_, q) in zip(ma.G.state_dict().items(), mb.G.state_dict().items()):
        assert torch.equal(p, q), k
    for p, q in zip(ma.D.parameters(), mb.D.parameters()):
        assert torch.equal(p, q)


def test_balanced_batches_hold_equal_counts_per_mode_and_resume_exactly():
    """grid25, b = 200: exactly 8 points of every mode in every batch; b = 203: 8 of every mode and 1 more of
    three distinct modes; the stream restarted from a saved generator state repeats the same batches; data without
    modes are refused with one message."""
    import pytest
    import torch

    from ebmlab.data import get_dataset
    from ebmlab.data.batches import make_batches
    from ebmlab.errors import EbmlabError

    ds = get_dataset("grid25")
    owner = lambda x: torch.cdist(x.double(), ds.modes.double()).argmin(1)  # noqa: E731
    bb = make_batches(ds, "balanced", 200, seed=3)
    for x in bb.stream(0, 5):
        assert x.shape == (200, 2) and torch.equal(torch.bincount(owner(x), minlength=25), torch.full((25,), 8))
    odd = make_batches(ds, "balanced", 203, seed=3)
    counts = torch.bincount(owner(next(odd.stream(0, 1))), minlength=25)
    assert sorted(counts.tolist()) == [8] * 22 + [9] * 3
    state = bb.state_dict()
    first = list(bb.stream(5, 8))
    bb.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(first, bb.stream(5, 8)))
    with pytest.raises(EbmlabError, match="balanced needs a mixture"):
        make_batches(get_dataset("banana"), "balanced", 10, seed=0)
