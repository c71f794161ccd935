"""The resumable draw of a final evaluation (``metrics.evaluators.cached_draw``): whatever stops it — an error in a
chunk, a kill between chunks, a cut-short or foreign chunk file, a cache it cannot write — the samples it returns
are exactly those of an uninterrupted draw from the same seed, and chunks already drawn are not drawn again."""

import json

import pytest
import torch

from ebmlab.metrics import evaluators
from ebmlab.metrics.evaluators import CHUNK, cached_draw

N = 2 * CHUNK + 100  # three chunks, the last one short


class Sampler:
    """A stand-in for ``method.sample``: Gaussian rows from the generator; counts its calls, fails on request."""

    def __init__(self, gen: torch.Generator, fail_at: int | None = None):
        self.gen, self.calls, self.fail_at = gen, 0, fail_at

    def __call__(self, k: int) -> torch.Tensor:
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise KeyboardInterrupt("stopped in the middle of a chunk")
        return torch.randn(k, 3, generator=self.gen, dtype=torch.float64)


def plain(seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.cat([torch.randn(min(CHUNK, N - i), 3, generator=gen, dtype=torch.float64)
                      for i in range(0, N, CHUNK)])


def draw(cache, seed: int = 0, fail_at: int | None = None, model: str = "m") -> tuple[torch.Tensor, Sampler]:
    gen = torch.Generator().manual_seed(seed)
    s = Sampler(gen, fail_at)
    return cached_draw(s, N, gen, cache, model=model), s


def test_an_uninterrupted_draw_equals_the_plain_one_and_a_second_draws_nothing(tmp_path):
    x, s = draw(tmp_path / "c")
    assert s.calls == 3 and torch.equal(x, plain(0))
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["chunk-0000.pt", "chunk-0001.pt",
                                                                   "chunk-0002.pt", "draw.json"]
    y, s2 = draw(tmp_path / "c")
    assert s2.calls == 0 and torch.equal(y, x)


def test_a_draw_stopped_in_its_second_chunk_resumes_with_the_same_samples(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        draw(tmp_path / "c", fail_at=2)
    assert (tmp_path / "c" / "chunk-0000.pt").is_file() and not (tmp_path / "c" / "chunk-0001.pt").exists()
    x, s = draw(tmp_path / "c")
    assert s.calls == 2  # chunk 0 read back, the generator restored from its saved state, chunks 1 and 2 drawn
    assert torch.equal(x, plain(0))


def test_another_seed_or_model_empties_the_cache_first(tmp_path):
    draw(tmp_path / "c", seed=0)
    x, s = draw(tmp_path / "c", seed=1)
    assert s.calls == 3 and torch.equal(x, plain(1))
    y, s = draw(tmp_path / "c", seed=1, model="other weights")
    assert s.calls == 3 and torch.equal(y, plain(1))
    assert json.loads((tmp_path / "c" / "draw.json").read_text())["model"] == "other weights"


@pytest.mark.parametrize("damage", ["truncate", "foreign", "wrong length"])
def test_a_damaged_chunk_is_drawn_again_from_the_one_before(tmp_path, damage):
    draw(tmp_path / "c")
    f = tmp_path / "c" / "chunk-0001.pt"
    if damage == "truncate":
        f.write_bytes(f.read_bytes()[:100])
    elif damage == "foreign":
        torch.save({"weights": torch.zeros(3)}, f)
    else:
        saved = torch.load(f, weights_only=True)
        torch.save({"x": saved["x"][:10], "rng": saved["rng"]}, f)
    x, s = draw(tmp_path / "c")
    assert s.calls == 2 and torch.equal(x, plain(0))


def test_a_cache_that_cannot_be_written_warns_and_draws_on(tmp_path, capsys):
    (tmp_path / "file").write_text("not a directory")
    x, s = draw(tmp_path / "file" / "c")
    assert s.calls == 3 and torch.equal(x, plain(0))
    err = capsys.readouterr().err
    assert "cannot be kept" in err and err.count("warning") == 1


def test_the_weights_digest_changes_with_any_weight():
    class M:
        networks = {"g": torch.nn.Linear(2, 2), "e": torch.nn.BatchNorm1d(2)}

    m = M()
    d0 = evaluators.weights_digest(m)
    assert evaluators.weights_digest(m) == d0
    with torch.no_grad():
        m.networks["g"].weight[0, 0] += 1e-6
    d1 = evaluators.weights_digest(m)
    m.networks["e"].running_mean[1] = 0.5  # a buffer counts too
    assert len({d0, d1, evaluators.weights_digest(m)}) == 3


# eval_samples > CHUNK: the final evaluation draws two chunks
ARGS = ["train", "gan", "--data", "digits", "--steps", "2", "--no-progress", f"eval_samples={CHUNK + 100}",
        "loggers=", "plots=false"]


def test_a_final_evaluation_killed_in_its_draw_resumes_it_and_ends_as_an_uninterrupted_run(tmp_path, cli):
    """Kill the run after the first of its final evaluation's two chunks is kept, run the same command again: it
    reads that chunk back, draws the second from the saved generator state, and its final metrics equal those of a
    run never killed; the cache is gone. (Each command in a process of its own, forked from a server with the imports
    done: ``conftest.run_cli``.)"""

    def _train(out, kill_at: str = ""):
        return cli([*ARGS, "--out", str(out)], env={"EBMLAB_KILL_AT": kill_at})

    ref = tmp_path / "ref"
    assert _train(ref).returncode == 0
    out = tmp_path / "killed"
    res = _train(out, "draw:chunk")
    assert res.returncode == -9, res.stderr
    assert (out / "eval-draw" / "chunk-0000.pt").is_file() and not (out / "eval-draw" / "chunk-0001.pt").exists()
    killed = json.loads((out / "run.json").read_text())["sessions"][-1]  # the training loop's record is kept
    assert killed["status"] == "evaluating" and killed["end_step"] == 2 and killed["train_cpu_seconds"] > 0
    res = _train(out)
    assert res.returncode == 0, res.stderr
    assert not (out / "eval-draw").exists() and not (ref / "eval-draw").exists()
    final = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    expect = [json.loads(line) for line in (ref / "metrics.jsonl").read_text().splitlines()][-1]
    assert final["kind"] == "eval" and final["clf_fd"] == expect["clf_fd"]
    assert {k: v for k, v in final.items() if k != "steps_per_s"} == \
        {k: v for k, v in expect.items() if k != "steps_per_s"}
