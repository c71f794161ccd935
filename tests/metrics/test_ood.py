"""Out-of-distribution detection by the energy (metrics.ood): the AUROC against a closed form in float64, its hard
cases (ties, infinite and NaN energies), the change of units between data sets, and `ebmlab eval --ood`."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.stats import norm

from ebmlab.cli import main
from ebmlab.data import get_dataset
from ebmlab.errors import EbmlabError
from ebmlab.metrics.ood import auroc, ood_detection, to_units_of


class LinearEnergy:
    """E(x) = x₀: lower energy to the left."""

    name = "linear"
    has_energy = True
    device = torch.device("cpu")

    def energy(self, x):
        return x[:, 0].double()

    def train(self, mode=True):
        pass


def fake_data(name, test, *, box=None, std=None):
    test = torch.as_tensor(test)
    return SimpleNamespace(name=name, test=test, shape=tuple(test.shape[1:]), standardisation=std,
                           spec=SimpleNamespace(value_range=box))


@pytest.mark.parametrize("delta", [0.0, 0.5, 1.5])
def test_auroc_of_two_gaussians_matches_the_closed_form(delta):
    # in-distribution x ~ N(0, 1), out x ~ N(δ, 1), E(x) = x: AUROC = P(X < Y) = Φ(δ/√2). With 20,000 inputs a set
    # the Hanley–McNeil standard error is at most 0.0029 (at δ = 0); 0.012 is four of them
    g = np.random.default_rng(0)
    x_in = torch.from_numpy(g.normal(size=(20_000, 1)))
    x_out = torch.from_numpy(g.normal(loc=delta, size=(20_000, 1)))
    res = ood_detection(LinearEnergy(), fake_data("in", x_in), fake_data("out", x_out), n=20_000)
    assert res["ood_auroc"] == pytest.approx(norm.cdf(delta / np.sqrt(2)), abs=0.012)
    assert res["ood_n_in"] == res["ood_n_out"] == 20_000


def test_auroc_hard_cases():
    assert auroc(np.zeros(5), np.zeros(7)) == 0.5  # every pair tied: one half each
    assert auroc(np.array([1.0, 2.0]), np.array([-np.inf, -np.inf])) == 1.0  # infinite energies out: ranked last
    assert auroc(np.array([-np.inf]), np.array([0.0, 1.0])) == 0.0
    assert auroc(np.array([0.0, 1.0, 2.0, np.inf]), np.array([-np.inf, 0.5, 3.0])) == pytest.approx(8 / 12)
    assert auroc(np.array([3.0, 1.0]), np.array([2.0])) == 0.5  # one pair above, one below
    with pytest.raises(EbmlabError, match="NaN"):
        auroc(np.array([0.0, np.nan]), np.array([1.0]))
    with pytest.raises(EbmlabError, match="both sets"):
        auroc(np.array([]), np.array([1.0]))


def test_units_are_matched_before_scoring():
    x = torch.tensor([[0.0, 0.5, 1.0]])
    # binary data in (0, 1) scored by a model of images in (−1, 1)
    out = to_units_of(x, fake_data("b", x, box=(0.0, 1.0)), fake_data("i", x, box=(-1.0, 1.0)))
    assert out.tolist() == [[-1.0, 0.0, 1.0]]
    # standardised vectors: back to raw values with their own statistics, then the run's
    src = fake_data("s", x, std={"mean": [1.0, 1.0, 1.0], "std": [2.0, 2.0, 2.0]})
    raw = to_units_of(x, src, fake_data("toy", x))
    assert raw.tolist() == [[1.0, 2.0, 3.0]]
    run = fake_data("r", x, std={"mean": [0.0, 2.0, 4.0], "std": [1.0, 0.5, 0.25]})
    assert to_units_of(x, src, run).tolist() == [[1.0, 0.0, -4.0]]
    with pytest.raises(EbmlabError, match=r"shape \(2,\).*has \(3,\)"):
        to_units_of(torch.zeros(1, 2), fake_data("a", torch.zeros(1, 2)), fake_data("b", x))
    with pytest.raises(EbmlabError, match="cannot be matched"):
        to_units_of(x, fake_data("a", x, box=(0.0, 1.0)), fake_data("b", x))


def test_a_method_without_an_energy_is_refused():
    m = SimpleNamespace(name="gan", has_energy=False)
    with pytest.raises(EbmlabError, match="has none"):
        ood_detection(m, fake_data("a", torch.zeros(2, 1)), fake_data("b", torch.zeros(2, 1)))


def test_eval_ood_from_the_command_line(tmp_path, capsys):
    run = tmp_path / "v"
    assert main(["train", "vgan", "--data", "ring8", "--steps", "3", "--out", str(run), "--no-progress",
                 "eval_samples=100", "eval_density=false", "plots=false", "loggers="]) == 0
    ring = get_dataset("ring8")
    test = ring.test.numpy()
    # the run's own test points as a user's file (standardised by the loader, un-standardised here): every input
    # has its twin on the other side, so the energy cannot tell the sets apart
    np.savez(tmp_path / "same.npz", train=test[:2000], test=test)
    capsys.readouterr()
    assert main(["eval", str(run), "--ood", str(tmp_path / "same.npz"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["metrics"]["ood_auroc"] == pytest.approx(0.5, abs=1e-3)
    assert res["metrics"]["ood_n_in"] == res["metrics"]["ood_n_out"] == len(test)
    kept = json.loads((run / "evaluation.json").read_text())
    assert kept["metrics"]["ood_auroc"] == res["metrics"]["ood_auroc"]
    assert "OOD against" in kept["evaluation"]
    # refused, one line each, exit status 2, nothing written
    before = (run / "evaluation.json").read_bytes()
    np.save(tmp_path / "img.npy", np.random.default_rng(0).random((10, 8, 8)).astype(np.float32))
    for bad, expect in ((str(tmp_path / "img.npy"), "must have the run's shape"), ("ring8", "run's own data set"),
                        ("no_such_set", "unknown data set")):
        assert main(["eval", str(run), "--ood", bad]) == 2
        err = capsys.readouterr().err
        assert expect in err and "Traceback" not in err
    assert (run / "evaluation.json").read_bytes() == before
