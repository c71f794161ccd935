import json
from pathlib import Path

import numpy as np
import pytest

from ebmlab.cli import main
from ebmlab.methods import METHODS

FAST = ["eval_samples=300", "plots=false", "log_every=5"]


ANY_DATA = [n for n, c in METHODS.items() if c.data_kinds is None]
BINARY_ONLY = [n for n, c in METHODS.items() if c.data_kinds == ("binary",)]


# the expensive parts of a few methods' steps and evaluations, shortened: the smoke test checks the plumbing, and
# their numbers are the methods' own tests' business
CHEAP = {"kale": ["mcmc_steps=50", "n_critic_burst=5"],
         "lbt": ["iwae_ks=1,10", "iwae_points=50", "unroll_steps=2"],
         "lbt_gan": ["iwae_ks=1,10", "iwae_points=50", "unroll_steps=2"]}


@pytest.mark.parametrize("name", ANY_DATA)
def test_cli_smoke_train_eval_sample(tmp_path, name, capsys):
    out = tmp_path / name
    # cheap evaluation: the density metrics (quadrature) are the known-answer tests' business (tests/metrics)
    assert main(["train", name, "--data", "ring8", "--steps", "20", "--out", str(out), "--no-progress",
                 "eval_samples=200", "eval_density=false", "log_every=5", *CHEAP.get(name, [])]) == 0
    for f in ("config.json", "metrics.jsonl", "checkpoint.pt", "summary.json", "plots/samples.png", "plots/curves.png"):
        assert (out / f).exists(), f
    # every method with an energy gets a density figure (KALE's from its samples, beside its energy factor)
    assert (out / "plots" / "density.png").exists() == METHODS[name].has_energy, name
    assert list((out / "tb").iterdir())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["n_modes_total"] == 8 and "real_vs_real" in summary
    capsys.readouterr()
    assert main(["eval", str(out), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["step"] == 20 and ev["metrics"]["modes"] == summary["metrics"]["modes"]
    for seed, f in ((3, "a.npy"), (3, "b.npy"), (4, "c.npy")):
        assert main(["sample", str(out), "-n", "100", "--out", str(tmp_path / f), "--seed", str(seed)]) == 0
    a, b, c = (np.load(tmp_path / f) for f in ("a.npy", "b.npy", "c.npy"))
    assert a.shape == (100, 2) and np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("name", BINARY_ONLY)
def test_cli_smoke_binary_methods(tmp_path, name, capsys):
    out = tmp_path / name
    assert main(["train", name, "--data", "digits_bin", "--steps", "10", "--out", str(out), "--no-progress",
                 "eval_samples=200", "log_every=5", "eval_ks=[1,10]", "eval_points=20", "z2_samples=500",
                 "layers=[8,4]"]) == 0
    assert (out / "plots" / "samples.png").is_file()
    m = json.loads((out / "summary.json").read_text())["metrics"]
    assert m["k10_log_p"] >= m["k1_log_p"] - 5 and np.isfinite(m["clf_fd"])
    capsys.readouterr()
    assert main(["eval", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "estimates by number of samples K" in printed and ("two_log_pt" in printed) == (name == "bihm")
    assert main(["sample", str(out), "-n", "30", "--out", str(tmp_path / "s.npy"), "--seed", "1"]) == 0
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (30, 1, 8, 8) and set(np.unique(s)) <= {0.0, 1.0}
    capsys.readouterr()
    assert main(["train", name, "--data", "ring8", "--steps", "5", "--out", str(tmp_path / "bad")]) == 2
    assert "binary" in capsys.readouterr().err and not (tmp_path / "bad" / "config.json").exists()


def test_list_shows_methods_and_data_sets(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "vgan" in out and "grid25" in out


@pytest.mark.parametrize("args, msg", [
    (["train", "vgann", "--data", "ring8"], "unknown method 'vgann'; did you mean 'vgan'? (valid methods: gan, vgan"),
    (["train", "vgan", "--data", "ring9"], "unknown data set 'ring9'; did you mean 'ring8'? (valid data sets: ring8"),
    (["train", "vgan", "--data", "ring8", "lr=3"], "unknown option 'lr' for method vgan"),
    (["train", "vgan", "--data", "ring8", "lr_g=abc"], "option lr_g: expected a number, got 'abc'"),
    (["eval", "/nonexistent/run"], "run directory /nonexistent/run does not exist"),
])
def test_bad_input_gives_one_line_error_without_traceback(args, msg, cli):
    r = cli(args)  # a process of its own (conftest.run_cli): what it prints is all the user sees
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert msg in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_checkpoint_errors_via_cli(tmp_path, cli):
    out = tmp_path / "r"
    assert main(["train", "gan", "--data", "ring8", "--steps", "5", "--out", str(out), "--no-progress", *FAST]) == 0
    r = cli(["train", "vgan", "--data", "ring8", "--steps", "5", "--out", str(out)])
    assert r.returncode == 2 and "holds a run of method 'gan'" in r.stderr and "Traceback" not in r.stderr
    ck = out / "checkpoint.pt"
    ck.write_bytes(ck.read_bytes()[:1000])
    r = cli(["eval", str(out)])
    assert r.returncode == 2 and "truncated or corrupt" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_bench_toy_writes_a_table(tmp_path, capsys):
    out = tmp_path / "b"
    recalled = Path(__file__).resolve().parents[2] / "benchmarks" / "recalled.toml"
    assert main(["bench", "toy", "--methods", "gan,vgan", "--data", "ring8", "--seeds", "2", "--steps", "10",
                 "--out", str(out), "--recalled", str(recalled), "eval_samples=300", "loggers=",
                 "eval_density=false", "plots=false"]) == 0
    md = (out / "results.md").read_text()
    assert "**real data**" in md and "*GAN (VEEGAN table, recalled)*" in md and "| ring8 | vgan | 2 | 0 |" in md
    assert "| ring8 | *uniform noise (floor)* | – | – |" in md  # the floor under the ceiling
    res = json.loads((out / "results.json").read_text())
    assert 0 < res["reference_noise"]["ring8"]["hq"] < 0.01  # ring8's 3σ discs cover 0.25 % of its box
    assert {r["method"] for r in res["rows"]} == {"gan", "vgan"}
    assert all(r["runs"] == 2 for r in res["rows"])
