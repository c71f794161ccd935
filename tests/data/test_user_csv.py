"""A user's .csv table: header and label column recognised, values read exactly, standardised like .npz vectors."""

import numpy as np
import torch

from ebmlab.data import get_dataset


def test_csv_with_header_and_labels_reads_like_the_same_npz(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, -2.0]
    y = rng.integers(0, 3, size=50)
    lines = ["a,b,label,c"] + [f"{float(r[0])!r},{float(r[1])!r},{int(t)},{float(r[2])!r}" for r, t in zip(x, y)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    np.savez(tmp_path / "t.npz", x=x, y=y)
    a, b = get_dataset(str(tmp_path / "t.csv")), get_dataset(str(tmp_path / "t.npz"))
    assert a.kind == "vectors" and a.shape == (3,)
    torch.testing.assert_close(a.train, b.train, rtol=0, atol=0)
    torch.testing.assert_close(a.test, b.test, rtol=0, atol=0)
    assert a.standardisation["log_det"] == b.standardisation["log_det"]
    assert np.array_equal(a.arrays.train_y, b.arrays.train_y)


def test_csv_without_header_and_of_zeros_and_ones_is_binary(tmp_path):
    rows = np.random.default_rng(1).integers(0, 2, size=(40, 5))
    (tmp_path / "b.csv").write_text("\n".join(",".join(map(str, r)) for r in rows))
    ds = get_dataset(str(tmp_path / "b.csv"))
    assert ds.kind == "binary" and ds.shape == (5,)
