"""The readers on files the tests write: idx (raw, .gz, truncated, wrong magic, wrong md5), CIFAR-10 pickles
(checksum before unpickling), a user's .npz/.npy and image folders."""

import gzip
import hashlib
import pickle

import numpy as np
import pytest

from ebmlab.data import get_dataset
from ebmlab.data.readers import read_cifar10, read_idx, read_image_folder, read_svhn, read_user_array
from ebmlab.errors import EbmlabError


def idx_images(x: np.ndarray) -> bytes:
    n, r, c = x.shape
    return (2051).to_bytes(4, "big") + n.to_bytes(4, "big") + r.to_bytes(4, "big") + c.to_bytes(4, "big") + x.tobytes()


def idx_labels(y: np.ndarray) -> bytes:
    return (2049).to_bytes(4, "big") + len(y).to_bytes(4, "big") + y.astype(np.uint8).tobytes()


@pytest.fixture
def imgs():
    return np.random.default_rng(0).integers(0, 256, size=(5, 4, 6), dtype=np.uint8)


def test_idx_raw_and_gz_round_trip(tmp_path, imgs):
    (tmp_path / "a-idx3-ubyte").write_bytes(idx_images(imgs))
    (tmp_path / "a-idx3-ubyte.gz").write_bytes(gzip.compress(idx_images(imgs)))
    (tmp_path / "l-idx1-ubyte").write_bytes(idx_labels(np.arange(5)))
    assert np.array_equal(read_idx(tmp_path / "a-idx3-ubyte"), imgs)
    assert np.array_equal(read_idx(tmp_path / "a-idx3-ubyte.gz"), imgs)
    assert np.array_equal(read_idx(tmp_path / "l-idx1-ubyte"), np.arange(5))


def test_idx_md5_of_decompressed_content(tmp_path, imgs):
    raw = idx_images(imgs)
    p = tmp_path / "a-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(raw))
    assert np.array_equal(read_idx(p, md5_raw=hashlib.md5(raw).hexdigest()), imgs)
    with pytest.raises(EbmlabError, match="md5"):
        read_idx(p, md5_raw="0" * 32)
    with pytest.raises(EbmlabError, match="md5"):
        read_idx(p, md5_file="0" * 32)


@pytest.mark.parametrize("cut", [3, 12, 30])
def test_idx_truncated(tmp_path, imgs, cut):
    p = tmp_path / "t-idx3-ubyte"
    p.write_bytes(idx_images(imgs)[:cut])
    with pytest.raises(EbmlabError, match="short|truncated"):
        read_idx(p)


def test_idx_wrong_magic_and_bad_gzip(tmp_path, imgs):
    p = tmp_path / "w-idx3-ubyte"
    p.write_bytes((1234).to_bytes(4, "big") + idx_images(imgs)[4:])
    with pytest.raises(EbmlabError, match="magic number 1234"):
        read_idx(p)
    q = tmp_path / "w-idx3-ubyte.gz"
    q.write_bytes(b"not gzip at all")
    with pytest.raises(EbmlabError, match="gzip"):
        read_idx(q)


def test_mnist_directory_errors_name_the_files(tmp_path, monkeypatch):
    monkeypatch.delenv("EBMLAB_DATA", raising=False)
    with pytest.raises(EbmlabError, match="--data-dir"):
        _ = get_dataset("mnist").arrays
    with pytest.raises(EbmlabError, match="train-images-idx3-ubyte"):
        _ = get_dataset("mnist", data_dir=str(tmp_path)).arrays


def test_mnist_gz_checked_against_published_md5(tmp_path, imgs):
    for stem in ("train", "t10k"):
        (tmp_path / f"{stem}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_images(imgs)))
        (tmp_path / f"{stem}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_labels(np.arange(5))))
    with pytest.raises(EbmlabError, match="not the\npublished|published"):
        _ = get_dataset("mnist", data_dir=str(tmp_path)).arrays


def _cifar_dir(tmp_path, n=4):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    rng = np.random.default_rng(1)
    md5 = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        blob = pickle.dumps({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(range(n))})
        (d / name).write_bytes(blob)
        md5[name] = hashlib.md5(blob).hexdigest()
    return d, md5


def test_cifar_reader(tmp_path):
    d, md5 = _cifar_dir(tmp_path)
    tx, ty, sx, sy = read_cifar10(tmp_path, md5=md5)
    assert tx.shape == (20, 3, 32, 32) and sx.shape == (4, 3, 32, 32) and list(sy) == [0, 1, 2, 3]


def test_cifar_checksum_before_unpickling(tmp_path):
    d, md5 = _cifar_dir(tmp_path)

    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled')",))

    (d / "test_batch").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(EbmlabError, match="not unpickled"):
        read_cifar10(tmp_path, md5=md5)
    (d / "data_batch_3").unlink()
    with pytest.raises(EbmlabError, match="data_batch_3"):
        read_cifar10(tmp_path, md5=md5)


def _svhn_dir(tmp_path, n=(6, 4)):
    """SVHN-format .mat files written here: X [32, 32, 3, n] uint8, y [n, 1] in 1..10 (10 = the digit 0)."""
    import scipy.io

    d = tmp_path / "svhn"
    d.mkdir()
    rng = np.random.default_rng(2)
    md5, truth = {}, {}
    for name, k in zip(("train_32x32.mat", "test_32x32.mat"), n):
        X = rng.integers(0, 256, (32, 32, 3, k), dtype=np.uint8)
        y = (np.arange(k) % 10 + 1).reshape(-1, 1)
        scipy.io.savemat(d / name, {"X": X, "y": y})
        md5[name] = hashlib.md5((d / name).read_bytes()).hexdigest()
        truth[name] = (X, y)
    return d, md5, truth


def test_svhn_reader_layout_labels_and_checksums(tmp_path):
    d, md5, truth = _svhn_dir(tmp_path)
    tx, ty, sx, sy = read_svhn(tmp_path, md5=md5)  # finds the svhn sub-folder
    assert tx.shape == (6, 3, 32, 32) and sx.shape == (4, 3, 32, 32) and tx.dtype == np.uint8
    X, y = truth["train_32x32.mat"]
    assert np.array_equal(tx[2, 1], X[:, :, 1, 2])  # image 2, channel 1: the file's X[row, col, channel, image]
    assert list(ty) == [1, 2, 3, 4, 5, 6] and list(sy) == [1, 2, 3, 4]
    X = np.zeros((32, 32, 3, 10), np.uint8)
    import scipy.io

    scipy.io.savemat(d / "test_32x32.mat", {"X": X, "y": np.arange(1, 11).reshape(-1, 1)})
    assert list(read_svhn(d, md5=None)[3]) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]  # 10 is the digit 0
    with pytest.raises(EbmlabError, match="not the published SVHN file"):
        read_svhn(d, md5=md5)
    scipy.io.savemat(d / "test_32x32.mat", {"X": X[:, :, :2], "y": np.ones((10, 1))})
    with pytest.raises(EbmlabError, match=r"expected X \[32, 32, 3, n\] uint8"):
        read_svhn(d, md5=None)
    (d / "test_32x32.mat").write_bytes(b"not a mat file")
    with pytest.raises(EbmlabError, match="not an SVHN .mat file"):
        read_svhn(d, md5=None)
    (d / "train_32x32.mat").unlink()
    with pytest.raises(EbmlabError, match="train_32x32.mat not found"):
        read_svhn(d, md5=None)


def test_svhn_data_set_checks_the_published_checksums(tmp_path, monkeypatch):
    monkeypatch.delenv("EBMLAB_DATA", raising=False)
    _svhn_dir(tmp_path)
    with pytest.raises(EbmlabError, match="not the published SVHN file"):
        _ = get_dataset("svhn", data_dir=str(tmp_path)).arrays
    with pytest.raises(EbmlabError, match="never downloaded"):
        _ = get_dataset("svhn", data_dir=None).arrays


def test_user_npz_vectors_images_binary(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "v.npz", x=rng.normal(size=(50, 5)).astype(np.float32))
    ds = get_dataset(str(tmp_path / "v.npz"))
    assert ds.kind == "vectors" and ds.shape == (5,) and ds.n_test == 5
    assert abs(float(ds.train.mean())) < 0.2  # standardised by the train split
    np.save(tmp_path / "i.npy", rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8))
    ds = get_dataset(str(tmp_path / "i.npy"))
    assert ds.kind == "image" and ds.shape == (3, 8, 8) and float(ds.train.min()) >= -1 and float(ds.train.max()) <= 1
    np.savez(tmp_path / "b.npz", train=rng.integers(0, 2, (20, 1, 4, 4)), test=rng.integers(0, 2, (6, 1, 4, 4)))
    ds = get_dataset(str(tmp_path / "b.npz"))
    assert ds.kind == "binary" and ds.n_test == 6


@pytest.mark.parametrize("arrays,match", [
    ({"y": np.arange(3)}, "no training array"),
    ({"x": np.full((4, 3), np.nan)}, "NaN"),
    ({"x": np.ones((4, 2, 2)) * 3.0}, r"floats in \[0, 1\]"),
    ({"x": np.ones((4, 3)), "x_test": np.ones((2, 4))}, "must agree"),
    ({"x": np.ones((4, 5, 2, 2))}, "C = 1 or 3"),
])
def test_user_npz_errors(tmp_path, arrays, match):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(EbmlabError, match=match):
        get_dataset(str(p))


def test_user_file_corrupt_or_object_arrays(tmp_path):
    p = tmp_path / "trunc.npz"
    np.savez(p, x=np.ones((100, 3)))
    p.write_bytes(p.read_bytes()[:50])
    with pytest.raises(EbmlabError, match="truncated|corrupt|readable"):
        read_user_array(p)
    q = tmp_path / "obj.npy"
    np.save(q, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(EbmlabError, match="pickl"):
        read_user_array(q)
    with pytest.raises(EbmlabError, match="does not exist"):
        read_user_array(tmp_path / "none.npz")


def test_user_file_checked_by_its_first_bytes(tmp_path):
    """Garbage, an empty file, and each format under the other's name: one message each, before NumPy reads it
    (np.load goes by content, so a .npy named .npz came back as an array where an archive was expected)."""
    from ebmlab.export import read_samples
    from ebmlab.data import get_dataset

    arr = np.random.default_rng(0).normal(size=(20, 2))
    np.save(tmp_path / "a.npy", arr)
    np.savez(tmp_path / "b.npz", train=arr)
    (tmp_path / "a_as.npz").write_bytes((tmp_path / "a.npy").read_bytes())
    (tmp_path / "b_as.npy").write_bytes((tmp_path / "b.npz").read_bytes())
    (tmp_path / "junk.npy").write_bytes(b"garbage, not an array")
    (tmp_path / "junk.npz").write_bytes(b"garbage, not an archive")
    (tmp_path / "empty.npy").write_bytes(b"")
    cases = {"a_as.npz": r"holds a \.npy file \(one array\) under a \.npz name; rename it to a_as\.npy",
             "b_as.npy": r"holds a \.npz file .* under a \.npy name; rename it to b_as\.npz",
             "junk.npy": r"not a NumPy \.npy file .*NumPy array header; the file is corrupt",
             "junk.npz": r"not a NumPy \.npz file .*zip archive header; the file is corrupt",
             "empty.npy": r"not a NumPy \.npy file .*it is empty"}
    spec = get_dataset("ring8").spec
    for name, match in cases.items():
        with pytest.raises(EbmlabError, match=match):
            read_user_array(tmp_path / name)
        with pytest.raises(EbmlabError, match=match):  # the samples reader of `ebmlab score`
            read_samples(tmp_path / name, spec)
    # the well-named files read as before, by both readers
    np.testing.assert_array_equal(read_user_array(tmp_path / "a.npy")["train"], arr)
    np.testing.assert_array_equal(read_user_array(tmp_path / "b.npz")["train"], arr)
    np.testing.assert_allclose(read_samples(tmp_path / "b.npz", spec).numpy(), arr, rtol=1e-6)
    # `score` reads only the samples of an archive: another member that would need unpickling is left unread
    np.savez(tmp_path / "s.npz", samples=arr, info=np.array([{"run": "elsewhere"}], dtype=object))
    np.testing.assert_allclose(read_samples(tmp_path / "s.npz", spec).numpy(), arr, rtol=1e-6)
    np.savez(tmp_path / "two.npz", x=arr, y=arr)
    with pytest.raises(EbmlabError, match="expected an array named samples .*found x, y"):
        read_samples(tmp_path / "two.npz", spec)


def test_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    x = read_image_folder(tmp_path, size=8)
    assert x.shape == (4, 3, 8, 8) and x.dtype == np.uint8
    ds = get_dataset(str(tmp_path), image_size=8)
    assert ds.kind == "image" and ds.shape == (3, 8, 8)
    Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(EbmlabError, match="different sizes"):
        read_image_folder(tmp_path, size=None)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(EbmlabError, match="broken.jpg"):
        read_image_folder(tmp_path, size=8)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EbmlabError, match="no PNG or JPEG"):
        read_image_folder(empty, size=8)
