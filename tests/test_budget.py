"""Compute accounting and budgets (ebmlab.budget): network evaluations counted by hand for the GAN, a budget in
evaluations that ends a run at an exact, reproducible step, resume that keeps counting, and bench tables that show
the budget each run used."""

import json

import pytest

import ebmlab
from ebmlab.cli import main
from ebmlab.runs import RunDir

FAST = dict(eval_samples=100, eval_density=False, plots=False, loggers="", batch_size=32, log_every=1)


def test_gan_evaluations_by_hand(tmp_path):
    """A GAN step passes the batch through G twice (the discriminator's fakes, the generator's step) and through D
    three times (reals, fakes, the generator's step): 2b and 3b evaluations per step."""
    res = ebmlab.train("gan", "ring8", out=tmp_path / "r", progress=False, overrides=dict(steps=5, **FAST))
    b = res.summary["budget"]
    assert b["net_evals"] == {"generator": 5 * 2 * 32, "discriminator": 5 * 3 * 32}
    assert b["net_evals_total"] == 800 and b["steps"] == 5 and b["stopped_by"] is None
    assert 0 < res.train_seconds < 60
    rec = json.loads((tmp_path / "r" / "run.json").read_text())["sessions"][-1]
    assert rec["train_seconds"] == pytest.approx(res.train_seconds, abs=1e-3)
    assert rec["train_cpu_seconds"] == pytest.approx(res.train_cpu_seconds, abs=1e-3) and res.train_cpu_seconds > 0
    assert "train_seconds" not in json.dumps(res.summary)  # the summary holds only what a rerun reproduces


@pytest.mark.parametrize("net", ["mlp", "dcgan"])
def test_a_spectrally_normalised_critic_is_counted(tmp_path, net):
    """Spectral norm moves each layer's weight into a parametrisation child, so the layer is no leaf: its rows are
    counted all the same (the discriminator was counted 0 before), and the generator's count is unchanged."""
    data = "ring8" if net == "mlp" else "stacked_digits32"
    over = dict(steps=2, d_spectral_norm=True, net=net, **FAST)
    if net == "dcgan":
        over.update(width=8, eval="none")
    res = ebmlab.train("gan", data, out=tmp_path / "r", progress=False, overrides=over)
    assert res.summary["budget"]["net_evals"] == {"generator": 2 * 2 * 32, "discriminator": 2 * 3 * 32}


def test_vae_is_counted_through_encode_and_decode(tmp_path):
    """The VAE never calls its module's forward (the ELBO calls encode and decode): one pass of the batch per step
    through the whole network is still b evaluations."""
    res = ebmlab.train("vae", "ring8", out=tmp_path / "r", progress=False,
                       overrides=dict(steps=4, iwae_ks=(1,), iwae_points=10, elbo_samples=2, **FAST))
    assert res.summary["budget"]["net_evals"] == {"vae": 4 * 32}


def test_budget_in_evaluations_ends_the_run_at_an_exact_step(tmp_path):
    out = tmp_path / "r"
    res = ebmlab.train("gan", "ring8", out=out, progress=False, overrides=dict(steps=1000, max_evals=800, **FAST))
    s = res.summary
    assert s["step"] == 5 and s["budget"]["stopped_by"] == "max_evals" and s["budget"]["net_evals_total"] == 800
    ckpt = (out / "checkpoint.pt").read_bytes()
    # the same command again: the run is finished, nothing trains
    again = ebmlab.train("gan", "ring8", out=out, progress=False, overrides=dict(steps=1000, max_evals=800, **FAST))
    assert again.summary == s and (out / "checkpoint.pt").read_bytes() == ckpt
    evals = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [5]


def test_counts_survive_a_resume(tmp_path):
    whole = ebmlab.train("gan", "ring8", out=tmp_path / "a", progress=False, overrides=dict(steps=6, **FAST))
    ebmlab.train("gan", "ring8", out=tmp_path / "b", progress=False, overrides=dict(steps=6, **FAST), stop_after=3)
    resumed = ebmlab.train("gan", "ring8", out=tmp_path / "b", progress=False, overrides=dict(steps=6, **FAST))
    assert resumed.summary == whole.summary  # the evaluations counted across sessions, nothing else differs
    sessions = json.loads((tmp_path / "b" / "run.json").read_text())["sessions"]
    assert resumed.train_seconds == pytest.approx(sum(s["train_seconds"] for s in sessions), abs=1e-3)
    assert resumed.train_cpu_seconds == pytest.approx(sum(s["train_cpu_seconds"] for s in sessions), abs=1e-3)



def test_a_killed_sessions_seconds_up_to_its_checkpoint_count_when_the_run_resumes(tmp_path):
    """A session killed after a checkpoint (SIGKILL: its record never closed, no seconds in it) trained up to that
    checkpoint, from which the run resumes: its record notes the seconds up to each checkpoint (``checkpointed``),
    and the resumed run counts them — a budget in seconds is not granted again, a claim reads the run's CPU time."""
    out = tmp_path / "r"
    ebmlab.train("gan", "ring8", out=out, progress=False, overrides=dict(steps=6, ckpt_every=2, **FAST),
                 stop_after=4)
    rec = json.loads((out / "run.json").read_text())
    first = rec["sessions"][0]
    assert first["checkpointed"]["step"] == 4 and 0 < first["checkpointed"]["train_seconds"] <= first["train_seconds"]
    for k in ("ended", "end_step", "steps_per_s", "train_seconds", "train_cpu_seconds"):
        first.pop(k)  # as a SIGKILL after the checkpoint leaves the record
    first["status"] = "running"
    (out / "run.json").write_text(json.dumps(rec))
    held = first["checkpointed"]
    assert RunDir(out).trained_cpu_seconds() == held["train_cpu_seconds"] > 0
    resumed = ebmlab.train("gan", "ring8", out=out, progress=False, overrides=dict(steps=6, ckpt_every=2, **FAST))
    last = json.loads((out / "run.json").read_text())["sessions"][-1]
    assert last["start_step"] == 4
    assert resumed.train_cpu_seconds == pytest.approx(held["train_cpu_seconds"] + last["train_cpu_seconds"], abs=1e-3)
    assert resumed.train_seconds == pytest.approx(held["train_seconds"] + last["train_seconds"], abs=1e-3)
    assert RunDir(out).trained_cpu_seconds() == pytest.approx(resumed.train_cpu_seconds, abs=1e-3)
    # a record of a version whose sessions did not note their checkpoints: the killed session's seconds are unknown,
    # and the total is None, not the later sessions' part
    rec = json.loads((out / "run.json").read_text())
    del rec["sessions"][0]["checkpointed"]
    (out / "run.json").write_text(json.dumps(rec))
    assert RunDir(out).trained_cpu_seconds() is None


def _record(tmp_path, sessions):
    (tmp_path / "run.json").write_text(json.dumps({"format": "ebmlab-run-record-1", "sessions": sessions}))
    return RunDir(tmp_path)


def test_only_the_training_a_run_kept_counts(tmp_path):
    """A session whose successor started where it had (it failed before its first checkpoint: its steps were
    trained again) counts for nothing; one that trained past the checkpoint its successor resumed from counts up to
    that checkpoint; the others count whole — the seconds of the model the run holds, not of the process's life."""
    failed = {"start_step": 0, "end_step": 396, "status": "failed", "train_seconds": 900.0, "train_cpu_seconds": 388.8}
    whole = {"start_step": 0, "end_step": 2055, "status": "ended", "train_seconds": 4004.4,
             "train_cpu_seconds": 1800.3}
    past = {"start_step": 0, "end_step": 700, "status": "failed", "train_seconds": 70.0, "train_cpu_seconds": 60.0,
            "checkpointed": {"step": 500, "train_seconds": 50.0, "train_cpu_seconds": 40.0}}
    rest = {"start_step": 500, "end_step": 1000, "status": "ended", "train_seconds": 55.0, "train_cpu_seconds": 45.0}
    rd = _record(tmp_path, [failed, whole])
    assert rd.trained_cpu_seconds() == pytest.approx(1800.3) and rd.trained_seconds() == pytest.approx(4004.4)
    rd = _record(tmp_path, [past, rest])
    assert rd.trained_cpu_seconds() == pytest.approx(85.0) and rd.trained_seconds() == pytest.approx(105.0)
    # the session about to start names where it resumes: the budget it inherits is counted the same way
    rd = _record(tmp_path, [past])
    assert rd.trained_cpu_seconds(resumed_at=500) == pytest.approx(40.0)
    assert rd.trained_cpu_seconds(resumed_at=0) == 0.0 and rd.trained_seconds(resumed_at=0) == 0.0
    assert rd.trained_cpu_seconds() == pytest.approx(60.0)  # its own total, while nothing came after it
    # a discarded session that recorded no CPU time does not make the total unknown
    old = {k: v for k, v in failed.items() if k != "train_cpu_seconds"}
    assert _record(tmp_path, [old, whole]).trained_cpu_seconds() == pytest.approx(1800.3)


def test_a_failed_attempt_before_any_checkpoint_does_not_spend_a_resumed_runs_budget(tmp_path):
    """A run whose first attempt failed before its first checkpoint started again from step 0: when that second
    attempt is stopped and resumed, its budget in CPU seconds and its reported seconds leave the failed attempt's out."""
    out = tmp_path / "r"
    over = dict(steps=6, ckpt_every=2, max_cpu_seconds=1000, **FAST)
    ebmlab.train("gan", "ring8", out=out, progress=False, overrides=over, stop_after=4)
    rec = json.loads((out / "run.json").read_text())
    failed = {**rec["sessions"][0], "end_step": 1, "status": "failed", "train_seconds": 5000.0,
              "train_cpu_seconds": 5000.0}
    failed.pop("checkpointed", None)
    rec["sessions"].insert(0, failed)
    (out / "run.json").write_text(json.dumps(rec))
    resumed = ebmlab.train("gan", "ring8", out=out, progress=False, overrides=over)
    kept = json.loads((out / "run.json").read_text())["sessions"][1:]
    assert resumed.summary["step"] == 6  # not stopped at once by the failed attempt's 5000 s
    assert resumed.train_cpu_seconds == pytest.approx(sum(s["train_cpu_seconds"] for s in kept), abs=1e-3)
    assert resumed.train_seconds == pytest.approx(sum(s["train_seconds"] for s in kept), abs=1e-3)


def test_cpu_seconds_are_unknown_when_an_earlier_session_did_not_record_them(tmp_path):
    """A run begun before CPU time was recorded: its total is unknown (None), not the later sessions' part."""
    out = tmp_path / "r"
    ebmlab.train("gan", "ring8", out=out, progress=False, overrides=dict(steps=6, **FAST), stop_after=3)
    rec = json.loads((out / "run.json").read_text())
    del rec["sessions"][0]["train_cpu_seconds"]
    (out / "run.json").write_text(json.dumps(rec))
    resumed = ebmlab.train("gan", "ring8", out=out, progress=False, overrides=dict(steps=6, **FAST))
    assert resumed.train_cpu_seconds is None and resumed.train_seconds > 0


def test_evaluation_is_not_counted(tmp_path):
    """The final evaluation draws eval_samples through G; the count is the training's only."""
    a = ebmlab.train("gan", "ring8", out=tmp_path / "a", progress=False, overrides=dict(steps=2, **FAST))
    b = ebmlab.train("gan", "ring8", out=tmp_path / "b", progress=False,
                     overrides=dict(steps=2, **{**FAST, "eval_samples": 1000}))
    assert a.summary["budget"]["net_evals"] == b.summary["budget"]["net_evals"]


def test_bench_with_a_budget_shows_what_each_run_used(tmp_path, capsys):
    assert main(["bench", "toy", "--methods", "gan", "--data", "ring8", "--seeds", "1", "--budget-evals", "800",
                 "--out", str(tmp_path / "b"), *[f"{k}={v}" for k, v in FAST.items()]]) == 0
    md = (tmp_path / "b" / "results.md").read_text()
    head = next(ln for ln in md.splitlines() if ln.startswith("| data"))
    assert "steps" in head and "net evals" in head and "train s" in head
    row = next(ln for ln in md.splitlines() if ln.startswith("| ring8 | gan"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    cols = [c.strip() for c in head.strip("|").split("|")]
    assert cells[cols.index("steps")] == "5" and cells[cols.index("net evals")] == "800"


@pytest.mark.parametrize("flag,value", [("--budget-seconds", "0"), ("--budget-evals", "-5")])
def test_bad_budgets(tmp_path, capsys, flag, value):
    assert main(["bench", "toy", "--methods", "gan", "--seeds", "1", flag, value, "--out", str(tmp_path / "b")]) == 2
    assert flag in capsys.readouterr().err


@pytest.mark.parametrize("key,record", [("max_seconds", "train_seconds"), ("max_cpu_seconds", "train_cpu_seconds")])
def test_a_budget_in_seconds_ends_the_run_once_used_up(tmp_path, key, record):
    """Wall or CPU seconds of the training loop: the run stops at the first step past the budget (a GAN step on ring8
    takes milliseconds, so within 1 s of it), is finished there, and the same command reports it."""
    out = tmp_path / "r"
    over = dict(steps=10**7, **{key: 1.5}, **{**FAST, "log_every": 100})
    res = ebmlab.train("gan", "ring8", out=out, progress=False, overrides=over)
    assert res.summary["budget"]["stopped_by"] == key and 0 < res.summary["step"] < 10**7
    used = json.loads((out / "run.json").read_text())["sessions"][-1][record]
    assert 1.5 <= used < 2.5
    again = ebmlab.train("gan", "ring8", out=out, progress=False, overrides=over)
    assert again.summary == res.summary


def test_a_cpu_seconds_budget_is_refused_on_a_gpu(tmp_path, monkeypatch):
    import torch

    from ebmlab import placement
    from ebmlab.errors import EbmlabError

    monkeypatch.setattr(placement, "pick_device", lambda name, world=None: torch.device("cuda"))
    with pytest.raises(EbmlabError, match="max_cpu_seconds counts CPU time"):
        ebmlab.train("gan", "ring8", out=tmp_path / "r", progress=False, overrides=dict(max_cpu_seconds=10, **FAST))
    assert not (tmp_path / "r").exists()  # refused before anything was written
