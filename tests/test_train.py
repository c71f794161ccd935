import json

import numpy as np
import pytest
import torch

import ebmlab
from ebmlab.errors import DivergenceError, EbmlabError
from ebmlab.methods.vgan import VGAN
from ebmlab.api import load_run
from ebmlab.config import RunConfig, eval_count

FAST = {"eval_samples": 300, "plots": "false", "loggers": "", "log_every": 5, "ckpt_every": 10}


def params(method):
    return [p.detach().clone() for p in method.parameters()]


@pytest.mark.parametrize("name", ["gan", "vgan"])
def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path, name):
    over = {**FAST, "steps": 40, "eval_density": "false", "eval_every": 15}
    full = ebmlab.train(name, "grid25", out=tmp_path / "full", overrides=over, progress=False)
    part = ebmlab.train(name, "grid25", out=tmp_path / "part", overrides=over, progress=False, stop_after=23)
    assert part.summary == {}
    # the kill came after the checkpoint at step 20 and before step 30: resume re-runs steps 21..40
    resumed = ebmlab.train(name, "grid25", out=tmp_path / "part", overrides=over, progress=False)
    assert resumed.resumed_from == 23
    for a, b in zip(params(full.method), params(resumed.method)):
        assert torch.equal(a, b)
    assert full.summary["metrics"] == resumed.summary["metrics"]
    # the metrics log has each step once, identical to the uninterrupted run's
    timing = ("steps_per_s", "train_seconds", "train_cpu_seconds")  # clocks, not numbers of the run
    strip = lambda p: [{k: v for k, v in json.loads(l).items() if k not in timing} for l in (p / "metrics.jsonl").read_text().splitlines()]
    assert strip(tmp_path / "full") == strip(tmp_path / "part")


def test_resume_from_an_older_checkpoint_after_a_kill(tmp_path):
    over = {**FAST, "steps": 30, "eval_density": "false"}
    full = ebmlab.train("vgan", "ring8", out=tmp_path / "full", overrides=over, progress=False)
    ebmlab.train("vgan", "ring8", out=tmp_path / "k", overrides={**over, "ckpt_every": 10}, progress=False, stop_after=20)
    # simulate a kill at step 27: log lines of steps 21..27 were written but no checkpoint after 20
    with open(tmp_path / "k" / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"step": 25, "kind": "train", "loss_e": 0.0}) + "\n" + '{"step": 27, "ki')
    res = ebmlab.train("vgan", "ring8", out=tmp_path / "k", overrides={**over, "ckpt_every": 10}, progress=False)
    for a, b in zip(params(full.method), params(res.method)):
        assert torch.equal(a, b)
    steps = [json.loads(l)["step"] for l in (tmp_path / "k" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and len(steps) == len(set(zip(steps, range(len(steps)))))
    assert steps.count(25) == 1


def test_truncated_checkpoint_gives_a_clear_error(tmp_path):
    over = {**FAST, "steps": 10, "eval_density": "false"}
    ebmlab.train("gan", "ring8", out=tmp_path / "r", overrides=over, progress=False)
    ck = tmp_path / "r" / "checkpoint.pt"
    ck.write_bytes(ck.read_bytes()[: ck.stat().st_size // 2])
    with pytest.raises(EbmlabError, match="truncated or corrupt"):
        load_run(tmp_path / "r")


def test_run_dir_of_another_method_is_refused(tmp_path):
    over = {**FAST, "steps": 5, "eval_density": "false"}
    ebmlab.train("gan", "ring8", out=tmp_path / "r", overrides=over, progress=False)
    with pytest.raises(EbmlabError, match="holds a run of method 'gan', not 'vgan'"):
        ebmlab.train("vgan", "ring8", out=tmp_path / "r", overrides=over, progress=False)
    with pytest.raises(EbmlabError, match="different options"):
        ebmlab.train("gan", "ring8", out=tmp_path / "r", overrides={**over, "lr_g": "0.5"}, progress=False)


def test_divergence_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    over = {**FAST, "steps": 40, "eval_density": "false", "ckpt_every": 10}
    real_step = VGAN.train_step

    def flaky(self, batch, step):
        out = real_step(self, batch, step)
        if step >= 25:
            with torch.no_grad():
                next(self.E.parameters()).fill_(float("nan"))
            out["loss_e"] = float("nan")
        return out

    monkeypatch.setattr(VGAN, "train_step", flaky)
    with pytest.raises(DivergenceError, match="diverged by step 25"):
        ebmlab.train("vgan", "ring8", out=tmp_path / "r", overrides=over, progress=False)
    _, method, step = load_run(tmp_path / "r")
    assert step == 20
    assert all(torch.isfinite(p).all() for p in method.parameters())


def test_an_option_the_method_refuses_leaves_no_run_directory(tmp_path):
    """The method's own checks run before anything is written: the corrected command then starts afresh."""
    import ebmlab

    out = tmp_path / "v"
    with pytest.raises(ebmlab.EbmlabError, match="decoder_var"):
        ebmlab.train("vae", "ring8", out=out, overrides={"decoder_var": -1.0, "steps": 2})
    assert not out.exists()
    res = ebmlab.train("vae", "ring8", out=out, overrides={"steps": 2, "eval_samples": 100, "plots": False,
                                                          "loggers": ""})
    assert res.summary["step"] == 2


def test_a_second_process_on_the_same_run_directory_is_refused(tmp_path):
    """While one process holds RUN/.lock (it trains or finishes the run), another `ebmlab train` with that --out
    exits 2 with one line and changes nothing; once the first has ended, the same command resumes."""
    import fcntl
    import os
    import subprocess
    import sys

    kw = dict(overrides={"steps": 20, "seed": 0, "eval_samples": 100, "plots": False, "loggers": ""},
              progress=False)
    ebmlab.train("gan", "ring8", out=tmp_path / "r", stop_after=10, **kw)
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir() if p.is_file()}
    fd = os.open(tmp_path / "r" / ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as a training process holds it
    try:
        with pytest.raises(EbmlabError, match="another process is training"):
            ebmlab.train("gan", "ring8", out=tmp_path / "r", **kw)
        cli = subprocess.run([sys.executable, "-m", "ebmlab", "train", "gan", "--data", "ring8", "--out",
                              str(tmp_path / "r"), "--no-progress", "steps=20", "seed=0", "eval_samples=100",
                              "plots=false", "loggers="], capture_output=True, text=True)
        assert cli.returncode == 2 and "another process is training" in cli.stderr and "Traceback" not in cli.stderr
        after = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir() if p.is_file()}
        assert after == before
    finally:
        os.close(fd)
    res = ebmlab.train("gan", "ring8", out=tmp_path / "r", **kw)  # the holder has gone: it resumes and finishes
    assert res.resumed_from == 10 and res.summary


# --- the steps of a resumed run (run records that stay true) --------------------------------------------------------
_QUICK = {"eval_samples": 50, "plots": False, "loggers": "", "eval_density": False, "log_every": 5,
          "ckpt_every": 5}


def test_steps_below_a_runs_step_are_refused_and_nothing_changes(tmp_path):
    """--steps 10 on a finished 20-step run reported its step-20 model as step 10 in summary.json, metrics.jsonl
    and run.json; now it is refused and the run's files stay byte for byte as they were."""
    out = tmp_path / "r"
    ebmlab.train("gan", "ring8", out=out, progress=False, overrides={**_QUICK, "steps": 20})
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(EbmlabError, match="at step 20; steps=10 would end it before where it is"):
        ebmlab.train("gan", "ring8", out=out, progress=False, overrides={**_QUICK, "steps": 10})
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_a_finished_run_is_extended_only_when_asked(tmp_path, capsys):
    """Without steps, the same command on a finished run reports it (it trained on to the default 5000 before) and
    ``ebmlab train`` says the run is already at its step, not "resumed from" it; a larger steps extends it, and says
    so."""
    from ebmlab.cli import main
    out = tmp_path / "r"
    over = {**_QUICK, "steps": 10}
    first = ebmlab.train("gan", "ring8", out=out, progress=False, overrides=over)
    again = ebmlab.train("gan", "ring8", out=out, progress=False, overrides=_QUICK)  # steps left out
    assert again.summary == first.summary and again.summary["step"] == 10
    assert json.loads((out / "config.json").read_text())["run"]["steps"] == 10
    assert again.finished_before and not first.finished_before
    capsys.readouterr()
    assert main(["train", "gan", "--data", "ring8", "--out", str(out), "--no-progress",
                 *(f"{k}={v}" for k, v in _QUICK.items())]) == 0
    said = capsys.readouterr().out
    assert "the run is already at step 10: nothing to train" in said and "resumed from" not in said
    more = ebmlab.train("gan", "ring8", out=out, progress=True, overrides={**_QUICK, "steps": 15})
    assert "extending the finished run" in capsys.readouterr().out and more.summary["step"] == 15
    assert not more.finished_before
    assert json.loads((out / "config.json").read_text())["run"]["steps"] == 15


def test_the_final_evaluation_can_be_quick_or_skipped(tmp_path, capsys):
    """eval=none: summary.json records the step and compute without metrics (a smoke run skips the evaluation that
    eval_samples=0 could not); eval=quick: at most 500 samples and no density metrics, said in the summary; a
    resumed run may change it (it is not what the run computes)."""
    over = {**_QUICK, "steps": 10, "eval_samples": 1000, "eval_density": True}
    none = ebmlab.train("gan", "ring8", out=tmp_path / "n", progress=False, overrides={**over, "eval": "none"})
    assert none.summary["metrics"] == {} and none.summary["evaluation"].startswith("none")
    assert none.summary["budget"]["steps"] == 10 and "real_vs_real" not in none.summary
    assert not [r for r in (tmp_path / "n" / "metrics.jsonl").read_text().splitlines() if '"eval"' in r]
    quick = ebmlab.train("vgan", "ring8", out=tmp_path / "q", progress=False, overrides={**over, "eval": "quick"})
    assert quick.summary["protocol"]["eval_samples"] == 500 and quick.summary["evaluation"].startswith("quick")
    assert "modes" in quick.summary["metrics"] and "density_status" not in quick.summary["metrics"]  # no quadrature
    full = ebmlab.train("vgan", "ring8", out=tmp_path / "f", progress=False, overrides=over)
    assert full.summary["evaluation"] == "full" and "density_status" in full.summary["metrics"]
    assert full.summary["protocol"]["eval_samples"] == 1000


def test_keep_best_keeps_the_best_evaluations_model_resumes_exactly_and_is_read_by_sample_and_eval(tmp_path, capsys):
    """keep_best=w1 (lower is better): best.json holds the lowest w1 of the evaluations during training and its
    step, best.pt that step's model; a run stopped and resumed keeps the same; `eval|sample --checkpoint best` read
    it; a metric without a direction, keep_best without eval_every and --checkpoint best on a run without one are
    refused in one line, nothing written."""
    from ebmlab.cli import main

    over = {**_QUICK, "steps": 40, "eval_every": 10, "keep_best": "w1", "eval_samples": 100}
    ebmlab.train("gan", "ring8", out=tmp_path / "w", progress=False, overrides=over)
    evals = [json.loads(x) for x in (tmp_path / "w" / "metrics.jsonl").read_text().splitlines()]
    w1 = {e["step"]: e["w1"] for e in evals if e["kind"] == "eval" and e["step"] < 40}
    best = json.loads((tmp_path / "w" / "best.json").read_text())
    assert set(w1) == {10, 20, 30} and best["value"] == min(w1.values()) and w1[best["step"]] == best["value"]
    assert best["metric"] == "w1" and best["better"] == "lower"
    assert torch.load(tmp_path / "w" / "best.pt", weights_only=True)["step"] == best["step"]
    ebmlab.train("gan", "ring8", out=tmp_path / "r", progress=False, overrides=over, stop_after=15)
    ebmlab.train("gan", "ring8", out=tmp_path / "r", progress=False, overrides=over)
    assert json.loads((tmp_path / "r" / "best.json").read_text()) == best
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "w"), "--checkpoint", "best"]) == 0
    assert f"at step {best['step']} (the best checkpoint, best.pt)" in capsys.readouterr().out
    assert not (tmp_path / "w" / "evaluation.json").exists()  # the best model's evaluation is not the run's result
    assert main(["sample", str(tmp_path / "w"), "-n", "7", "--out", str(tmp_path / "b.npy"), "--checkpoint", "best",
                 "--no-progress"]) == 0
    assert np.load(tmp_path / "b.npy").shape == (7, 2)
    for bad, said in (({"keep_best": "log_z"}, "has no better direction"),
                      ({"keep_best": "nonsense"}, "is not a metric ebmlab knows"),
                      ({"keep_best": "w1", "eval_every": 0}, "set eval_every=N")):
        with pytest.raises(EbmlabError, match=said):
            ebmlab.train("gan", "ring8", out=tmp_path / "bad", progress=False, overrides={**over, **bad})
        assert not (tmp_path / "bad").exists()
    ebmlab.train("gan", "ring8", out=tmp_path / "n", progress=False, overrides={**_QUICK, "steps": 5})
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "n"), "--checkpoint", "best"]) == 2
    assert "no best checkpoint" in capsys.readouterr().err


def test_the_metrics_option_reports_only_the_named_metrics_and_computes_density_only_when_named(tmp_path):
    """metrics=modes,hq: the evaluation reports those (with its bookkeeping) and skips the 2D quadrature; naming
    a density metric computes it; an unknown metric, or a keep_best metric left out, is refused before writing."""
    over = {**_QUICK, "steps": 5, "eval_samples": 200, "eval_density": True}
    some = ebmlab.train("vgan", "ring8", out=tmp_path / "a", progress=False, overrides={**over, "metrics": "modes,hq"})
    from ebmlab.metrics import registry

    shown = {k for k, v in some.summary["metrics"].items() if not registry.is_bookkeeping(k, v)
             and not k.endswith("_note")}
    assert shown == {"modes", "hq"}
    assert not any(getattr(registry.spec(k), "group", "") == "density" for k in some.summary["metrics"])
    dens = ebmlab.train("ebgan", "ring8", out=tmp_path / "b", progress=False, overrides={**over, "metrics": "modes,nll"})
    assert "nll" in dens.summary["metrics"] and "hq" not in dens.summary["metrics"]
    for bad, said in (({"metrics": "modes,sharpness"}, "'sharpness' is not a metric"),
                      ({"metrics": "modes", "keep_best": "w1", "eval_every": 2}, "leaves out")):
        with pytest.raises(EbmlabError, match=said):
            ebmlab.train("vgan", "ring8", out=tmp_path / "bad", progress=False, overrides={**over, **bad})
        assert not (tmp_path / "bad").exists()


def test_evaluation_points_leave_the_run_unchanged_and_record_what_was_trained(tmp_path):
    """Evaluations every 10 steps (a learning curve) change no number of the run: the parameters and the final
    metrics are those of the run evaluated only at its end. Each evaluation record carries the training-loop
    seconds (wall and CPU) trained up to its step, rising, and the time spent evaluating is left out of them."""
    over = {**FAST, "steps": 30, "eval_density": "false"}
    plain = ebmlab.train("gan", "ring8", out=tmp_path / "plain", overrides=over, progress=False)
    curve = ebmlab.train("gan", "ring8", out=tmp_path / "curve", overrides={**over, "eval_every": 10}, progress=False)
    for a, b in zip(params(plain.method), params(curve.method)):
        assert torch.equal(a, b)
    assert plain.summary["metrics"] == curve.summary["metrics"]
    evals = [r for r in map(json.loads, (tmp_path / "curve" / "metrics.jsonl").read_text().splitlines())
             if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [10, 20, 30]  # the last is the final evaluation, the summary's metrics
    walls = [r["train_seconds"] for r in evals[:2]]  # the run's whole time is the TrainResult's (and run.json's)
    assert 0 < walls[0] < walls[1] <= curve.train_seconds and all(r["train_cpu_seconds"] > 0 for r in evals[:2])
    assert "train_seconds" not in evals[2] and "train_seconds" not in curve.summary["metrics"]
    # eval_spacing=log: at eval_every × 1, 2, 4 (then the final evaluation), again without changing a number
    log = ebmlab.train("gan", "ring8", out=tmp_path / "log", overrides={**over, "eval_every": 5, "eval_spacing": "log"},
                       progress=False)
    assert all(torch.equal(a, b) for a, b in zip(params(plain.method), params(log.method)))
    steps = [r["step"] for r in map(json.loads, (tmp_path / "log" / "metrics.jsonl").read_text().splitlines())
             if r["kind"] == "eval"]
    assert steps == [5, 10, 20, 30] and eval_count(30, 5, "log") == 3 and eval_count(30, 10) == 2


def test_eval_count_matches_the_steps_the_trainer_evaluates_at():
    """The count the paper-scale cost probe multiplies by is the number of steps ``is_eval_step`` accepts."""
    from dataclasses import replace

    for steps, every, spacing in [(40, 4, "log"), (40, 4, "even"), (41, 4, "log"), (1000, 1, "log"), (7, 10, "log"),
                                  (64, 8, "log"), (65, 8, "log"), (5, 0, "even")]:
        rc = replace(RunConfig(), steps=steps, eval_every=every, eval_spacing=spacing)
        assert eval_count(steps, every, spacing) == sum(map(rc.is_eval_step, range(1, steps + 1))), (steps, every)
    assert [s for s in range(1, 41) if replace(RunConfig(), steps=40, eval_every=4, eval_spacing="log")
            .is_eval_step(s)] == [4, 8, 16, 32]


def test_time_set_aside_in_the_training_loop_is_not_counted():
    import time

    from ebmlab.sessions import Session

    s = Session(None, None, 0)
    s.clock()
    with s.set_aside():
        time.sleep(0.3)
        t_end = time.process_time() + 0.2
        while time.process_time() < t_end:  # CPU time spent aside
            pass
    wall, cpu = s.times()
    assert wall < 0.1 and cpu < 0.1, (wall, cpu)


def test_a_stacked_set_draws_its_26000_samples_only_for_the_mode_count(monkeypatch):
    """The stacked sets' mode counting needs 26,000 samples; an evaluation whose metrics option names no mode-count
    metric (a claim judged on clf_fd) draws eval_samples instead — for an energy-guided sampler, 26 times less
    MCMC. base_modes (an extra sample set's mode count) still draws them all."""
    from dataclasses import replace

    from ebmlab import evaluation
    from ebmlab.config import resolve_config
    from ebmlab.metrics.evaluators import Images
    from ebmlab.placement import build_method

    class Drawn(Exception):
        pass

    def draw(self, method, n, gen, cache, progress):
        raise Drawn(n)

    monkeypatch.setattr(Images, "draw", draw)
    cfg = resolve_config("gan", "stacked_digits", overrides={"eval_samples": 300})
    method = build_method(cfg, torch.device("cpu"))
    drawn = {}
    for metrics in (("all",), ("clf_fd",), ("clf_fd", "modes"), ("base_modes",)):
        rc = replace(cfg.run, metrics=metrics)
        with pytest.raises(Drawn) as got:
            evaluation.evaluate(method, cfg.dataset, rc, 1)
        drawn[metrics] = got.value.args[0]
        assert evaluation.sample_count(cfg.dataset, rc).startswith(f"{drawn[metrics]} samples")
    assert drawn == {("all",): 26000, ("clf_fd",): 300, ("clf_fd", "modes"): 26000, ("base_modes",): 26000}
