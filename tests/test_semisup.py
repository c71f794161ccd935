"""The semi-supervised protocol: balanced label subsets by seed, the ρ-weighted augmentation actually used."""

import json

import numpy as np
import pytest
import torch

from ebmlab.data import get_dataset
from ebmlab.errors import EbmlabError
from ebmlab.semisup import augmentation_check, balanced_subset, semisup_table, train_and_test


def test_balanced_subsets_are_balanced_distinct_and_reproducible():
    y = np.repeat(np.arange(10), 50)
    a, b, c = balanced_subset(y, 100, 10, 0), balanced_subset(y, 100, 10, 0), balanced_subset(y, 100, 10, 1)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert len(set(a)) == 100 and np.all(np.bincount(y[a]) == 10)
    with pytest.raises(EbmlabError, match="multiple of 10"):
        balanced_subset(y, 105, 10, 0)
    with pytest.raises(EbmlabError, match="fewer than"):
        balanced_subset(y, 1000, 10, 0)


def test_augmentation_enters_the_loss_only_with_rho():
    ds = get_dataset("digits")
    x, y = ds.train[:200].float(), torch.as_tensor(np.asarray(ds.arrays.train_y)[:200], dtype=torch.long)
    xt, yt = ds.test[:300].float(), torch.as_tensor(np.asarray(ds.arrays.test_y)[:300], dtype=torch.long)
    calls = []

    def noise(xb, g):  # an "augmentation" that swaps images within the batch (wrong labels): with weight it hurts
        calls.append(len(xb))
        return xb.roll(1, 0)
    base = train_and_test(x, y, xt, yt, 10, steps=100, seed=0)
    assert not calls
    same = train_and_test(x, y, xt, yt, 10, steps=100, seed=0, rho=0.0, augment=noise)
    assert same == base and not calls  # ρ = 0 is exactly the baseline
    hurt = train_and_test(x, y, xt, yt, 10, steps=100, seed=0, rho=5.0, augment=noise)
    assert len(calls) == 100 and hurt > base + 0.05
    assert base < 0.3  # the baseline learns (digits, 200 labels)


def test_rho_without_an_augmenting_run_is_refused():
    with pytest.raises(EbmlabError, match="needs --run"):
        semisup_table(get_dataset("digits"), labels=100, rhos=(0.0, 0.1), seeds=1, steps=1)
    with pytest.raises(EbmlabError, match="labelled images"):
        semisup_table(get_dataset("ring8"), labels=100, rhos=(0.0,), seeds=1, steps=1)


class _FirstPixelClassifier:
    """A 'classifier' whose class is an image's first pixel (rounded): predictions known by construction."""
    sha256 = "0" * 64

    def run(self, x):
        return None, torch.nn.functional.one_hot(x[:, 0, 0, 0].round().long(), 4).double()


def test_augmentation_check_counts_kept_classes_on_a_hand_computed_case():
    # 12 images; first pixels 0,1,2,3,0,1,...; labels agree with them except images 0 and 5 (accuracy on x 10/12);
    # images 0, 3, 6, 9 carry a marker (pixel (0, 1) = 1) that the augmentation acts on
    x = torch.zeros(12, 1, 2, 2)
    x[:, 0, 0, 0] = torch.arange(12) % 4
    x[0::3, 0, 0, 1] = 1.0
    y = (torch.arange(12) % 4).clone()
    y[0], y[5] = 3, 3

    def shift_marked(xb, g):  # T moves marked images to the next class and adds 0.5 to their pixel (1, 1)
        t = xb.clone()
        m = xb[:, 0, 0, 1] == 1
        t[m, 0, 0, 0] = (t[m, 0, 0, 0] + 1) % 4
        t[m, 0, 1, 1] += 0.5
        return t
    c = augmentation_check(x, y, shift_marked, _FirstPixelClassifier(), chunk=5)  # chunks of 5, 5, 2
    assert c["images"] == 12
    assert c["accuracy_real"] == 10 / 12
    assert c["class_kept"] == 8 / 12
    # on T(x): images 0 (0 → 1, label 3), 3 (3 → 0, label 3), 5 (unchanged, label 3, pixel 1), 6 (2 → 3, label 2)
    # and 9 (1 → 2, label 1) are wrong: 7 of 12 right
    assert c["accuracy_augmented"] == 7 / 12
    # per image the mean |T(x) - x| over 4 pixels; image 3 moves 3 → 0, the others by 1, each also by 0.5
    assert c["mean_abs_change"] == pytest.approx(((1 + 0.5) + (3 + 0.5) + (1 + 0.5) + (1 + 0.5)) / 4 / 12)
    assert augmentation_check(x, y, lambda xb, g: xb, _FirstPixelClassifier())["class_kept"] == 1.0


def test_semisup_command_with_a_transition_run_reports_the_table_and_the_label_check(tmp_path, capsys):
    from ebmlab.cli import main

    run, out = tmp_path / "vcd", tmp_path / "table.json"
    assert main(["train", "vgan_vcd", "--data", "digits", "--steps", "2", "--out", str(run), "--no-progress",
                 "eval_samples=100", "eval_density=false", "plots=false", "loggers="]) == 0
    capsys.readouterr()
    assert main(["semisup", "--data", "digits", "--run", str(run), "--rho", "0,1", "--labels", "100", "--seeds", "1",
                 "--steps", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    res = json.loads(out.read_text())
    assert [r["rho"] for r in res["rows"]] == [0.0, 1.0] and res["run"] == str(run)
    c = res["augmentation_check"]
    assert c["images"] == res["test_points"] == len(get_dataset("digits").test)
    assert 0.8 < c["accuracy_real"] <= 1.0  # the digits classifier on its own test split
    assert 0.0 <= c["accuracy_augmented"] <= 1.0 and 0.0 <= c["class_kept"] <= 1.0 and c["mean_abs_change"] > 0
    assert f"{100 * c['class_kept']:.2f} %" in printed
    # ρ = 0 is the supervised baseline whatever the run: the same error as training without it
    ds = get_dataset("digits")
    y_all = np.asarray(ds.arrays.train_y)
    idx = balanced_subset(y_all, 100, 10, 0)
    base = train_and_test(ds.train[torch.as_tensor(idx)].float(), torch.as_tensor(y_all[idx], dtype=torch.long),
                          ds.test.float(), torch.as_tensor(np.asarray(ds.arrays.test_y), dtype=torch.long), 10,
                          steps=3, seed=0)
    assert res["rows"][0]["errors"] == [base]
