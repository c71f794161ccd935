"""A run branched from another run's kept checkpoint (ebmlab.branch) is the run it stands for: the same parameters,
metrics and training-log lines as that run trained from step 0; what would make it another run is refused before
anything is written."""

import json

import pytest
import torch

import ebmlab
from ebmlab.branch import branch, branch_point
from ebmlab.config import resolve_config
from ebmlab.errors import EbmlabError
from ebmlab.runs import RunDir

OVER = {"eval_samples": 300, "plots": "false", "loggers": "", "log_every": 5, "ckpt_every": 1000,
        "eval_density": "false", "eval_every": 10, "threads": 1}


def _params(method):
    return [p.detach().clone() for net in method.networks.values() for p in net.parameters()]


def _tensors(state):
    """The tensors of a nested state, in order."""
    if isinstance(state, torch.Tensor):
        return [state]
    items = state.values() if isinstance(state, dict) else state if isinstance(state, (list, tuple)) else []
    return [t for v in items for t in _tensors(v)]


def _lines(run, kind):
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == kind]


def test_a_branch_of_a_budgeted_run_ends_as_the_run_trained_from_step_0(tmp_path):
    """The source runs under a wall budget it never reaches (a budget is what a branch may change), keeps a
    checkpoint at each evaluation, and goes past the branch's length; the branch takes its first 20 steps over and
    trains 5 more. Its parameters are bit for bit those of the 25-step run from step 0, its final metrics and every
    training-log line the same, and its record says where its first steps came from and what they cost."""
    src = ebmlab.train("gan", "ring8", out=tmp_path / "src", progress=False,
                       overrides={**OVER, "steps": 40, "keep_checkpoints": "true", "max_seconds": 10_000})
    assert RunDir(src.run_dir).kept_checkpoint_steps() == [10, 20, 30]  # each evaluation before the final one
    ckpt = torch.load(tmp_path / "src" / "checkpoints" / "step-20.pt", weights_only=True)
    assert ckpt["step"] == 20 and "stopped_by" not in ckpt
    plain = ebmlab.train("gan", "ring8", out=tmp_path / "plain", progress=False, overrides={**OVER, "steps": 25})
    assert branch_point(tmp_path / "src", 25) == 20 and branch_point(tmp_path / "src", 20) == 10
    assert branch_point(tmp_path / "plain", 25) is None  # it kept none
    over = {**OVER, "steps": 25}
    branch(tmp_path / "src", tmp_path / "br", resolve_config("gan", "ring8", overrides=over), 20)
    br = ebmlab.train("gan", "ring8", out=tmp_path / "br", progress=False, overrides=over)
    assert br.resumed_from == 20
    assert all(torch.equal(a, b) for a, b in zip(_params(plain.method), _params(br.method)))
    assert br.summary["metrics"] == plain.summary["metrics"]
    strip = ("steps_per_s",)  # the logged rate is the machine's, not the run's
    assert ([{k: v for k, v in r.items() if k not in strip} for r in _lines(tmp_path / "br", "train")]
            == [{k: v for k, v in r.items() if k not in strip} for r in _lines(tmp_path / "plain", "train")])
    assert [r["step"] for r in _lines(tmp_path / "br", "eval")] == [10, 20, 25]
    first, now = json.loads((tmp_path / "br" / "run.json").read_text())["sessions"]
    line = next(r for r in _lines(tmp_path / "src", "eval") if r["step"] == 20)
    assert first["branched_from"] == {"run": str(tmp_path / "src"), "step": 20} and "ended" not in first
    assert (first["start_step"], first["end_step"], now["start_step"], now["end_step"]) == (0, 20, 20, 25)
    assert first["train_cpu_seconds"] == line["train_cpu_seconds"]
    assert RunDir(tmp_path / "br").trained_cpu_seconds() == pytest.approx(line["train_cpu_seconds"]
                                                                          + now["train_cpu_seconds"])


def test_a_branch_that_would_be_another_run_is_refused_and_writes_nothing(tmp_path):
    ebmlab.train("gan", "ring8", out=tmp_path / "src", progress=False,
                 overrides={**OVER, "steps": 30, "keep_checkpoints": "true"})
    dest = tmp_path / "br"
    cases = [({"steps": 25, "lr_g": 0.5}, 20, "trained with other options than the branch asks (method_config.lr_g"),
             ({"steps": 25, "lr_schedule": "cosine"}, 20, "lr_schedule=cosine decays over the run's length"),
             ({"steps": 25}, 15, "kept no checkpoint at step 15 (kept: 10, 20)"),
             ({"steps": 20}, 20, "the step must lie between 0 and the run's length")]
    for over, step, said in cases:
        with pytest.raises(EbmlabError, match=said.replace("(", r"\(").replace(")", r"\)")):
            branch(tmp_path / "src", dest, resolve_config("gan", "ring8", overrides={**OVER, **over}), step)
        assert not dest.exists() and not list(tmp_path.glob(".br*"))
    with pytest.raises(EbmlabError, match="a run of gan on ring8, not of gan on grid25"):
        branch(tmp_path / "src", dest, resolve_config("gan", "grid25", overrides={**OVER, "steps": 25}), 20)
    ok = resolve_config("gan", "ring8", overrides={**OVER, "steps": 25})
    branch(tmp_path / "src", dest, ok, 20)
    with pytest.raises(EbmlabError, match="already holds a run"):
        branch(tmp_path / "src", dest, ok, 20)


def test_the_command_line_branches_resumes_the_branch_and_refuses_in_one_line(tmp_path, capsys):
    from ebmlab.cli import main

    opts = ["eval_samples=300", "plots=false", "loggers=", "log_every=5", "eval_density=false", "eval_every=10",
            "threads=1"]
    src, br = str(tmp_path / "src"), str(tmp_path / "br")
    assert main(["train", "gan", "--data", "ring8", "--steps", "30", "--out", src, "--no-progress",
                 "keep_checkpoints=true", *opts]) == 0
    branch_cmd = ["train", "gan", "--data", "ring8", "--steps", "25", "--out", br, "--branch-from", src, *opts]
    capsys.readouterr()
    assert main(branch_cmd) == 0
    assert f"branched from {src} at its kept step 20" in capsys.readouterr().out
    assert main(branch_cmd) == 0  # the same command again: the branch, finished, is read, not branched anew
    assert "the run is already at step 25" in capsys.readouterr().out
    refusals = [(["--branch-at", "20"], "give both"),
                (["--branch-from", br, "--branch-at", "20"], "already holds a run that is not a branch of"),
                (["--branch-from", str(tmp_path / "none")], "holds no run (no config.json) to branch from")]
    for extra, said in refusals:
        out = br if "not a branch" in said else str(tmp_path / "new")
        assert main(["train", "gan", "--data", "ring8", "--steps", "25", "--out", out, *extra, *opts]) == 2
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err and not (tmp_path / "new").exists()
    assert main(["train", "gan", "--data", "ring8", "--steps", "5", "--out", str(tmp_path / "new"),
                 "--branch-from", src, *opts]) == 2
    assert "kept no checkpoint below step 5 to branch from (kept: 10, 20)" in capsys.readouterr().err


def test_a_branch_keeps_the_best_model_the_run_from_step_0_keeps(tmp_path):
    """keep_best on the branch (not on the run it branches from: a placement option): best.pt and best.json are
    those of the run trained from step 0 — the best of all its evaluations, those before the branch point
    included. With ema the evaluated weights are the averages, which no kept checkpoint holds: refused."""
    ebmlab.train("gan", "ring8", out=tmp_path / "src", progress=False,
                 overrides={**OVER, "eval_every": 5, "steps": 40, "keep_checkpoints": "true"})
    over = {**OVER, "eval_every": 5, "steps": 27, "keep_best": "w1"}
    ebmlab.train("gan", "ring8", out=tmp_path / "plain", progress=False, overrides=over)
    ebmlab.train("gan", "ring8", out=tmp_path / "br", progress=False, overrides=over, branch_from=tmp_path / "src")
    assert json.loads((tmp_path / "br" / "run.json").read_text())["sessions"][0]["branched_from"]["step"] == 25
    assert (json.loads((tmp_path / "br" / "best.json").read_text())
            == json.loads((tmp_path / "plain" / "best.json").read_text()))
    a, b = (torch.load(tmp_path / d / "best.pt", weights_only=True)["method_state"] for d in ("plain", "br"))
    assert _tensors(a) and len(_tensors(a)) == len(_tensors(b))
    assert all(torch.equal(x, y) for x, y in zip(_tensors(a), _tensors(b)))
    ebmlab.train("gan", "ring8", out=tmp_path / "ema-src", progress=False,
                 overrides={**OVER, "eval_every": 5, "steps": 12, "keep_checkpoints": "true", "ema": 0.9})
    with pytest.raises(EbmlabError, match="with ema=0.9: best.pt holds the averaged weights"):
        branch(tmp_path / "ema-src", tmp_path / "ema",
               resolve_config("gan", "ring8", overrides={**over, "ema": 0.9, "steps": 15}), 10)
    assert not (tmp_path / "ema").exists()
