"""The pieces of data-parallel training that run in one process (``ebmlab.rng``'s sharded draws,
``ebmlab.distributed``), and the run options that come with it (precision, channels_last). The multi-process
behaviour is tests/integration/test_distributed.py."""

import torch

import ebmlab
from ebmlab import distributed, rng


def test_outside_a_distributed_step_the_noise_is_torchs():
    for fn, ref in ((rng.randn, torch.randn), (rng.rand, torch.rand)):
        a = fn(5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        b = ref(5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        assert torch.equal(a, b)
        assert torch.equal(fn((5, 3), generator=torch.Generator().manual_seed(1)),
                           ref((5, 3), generator=torch.Generator().manual_seed(1)))
    assert torch.equal(rng.randint(0, 9, (7,), generator=torch.Generator().manual_seed(2)),
                       torch.randint(0, 9, (7,), generator=torch.Generator().manual_seed(2)))


def test_the_processes_noise_interleaves_into_one_processs_global_draw():
    size = 3
    parts = []
    for rank in range(size):
        g = torch.Generator().manual_seed(4)  # every process's generator has the same state
        with distributed.training_step(distributed.World(rank, size, rank, False)):
            parts.append((rng.randn(4, 2, generator=g), rng.rand((4,), generator=g),
                          rng.randint(0, 100, (4,), generator=g)))
    g = torch.Generator().manual_seed(4)
    full = (torch.randn(12, 2, generator=g), torch.rand(12, generator=g), torch.randint(0, 100, (12,), generator=g))
    for k in range(3):
        local = [p[k] for p in parts]
        assert all(t.shape[0] == 4 for t in local)
        stacked = torch.stack(local, 1).reshape(12, *local[0].shape[1:])  # global row i·size + rank
        assert torch.equal(stacked, full[k])
        assert not torch.equal(local[0], local[1])  # each process has its own noise
    with distributed.training_step(distributed.World(1, 2, 1, False)):
        scalar = rng.randn((), generator=torch.Generator().manual_seed(0))  # no per-example axis: shared
    assert torch.equal(scalar, torch.randn((), generator=torch.Generator().manual_seed(0)))
    assert distributed._STEP is None and rng._SHARD is None  # the context is left as it was found


def test_one_process_needs_no_process_group_and_metrics_are_read_in_one_transfer():
    assert distributed.init("cpu") is None  # WORLD_SIZE unset
    out = distributed.reduce_metrics({"a": torch.tensor(1.5), "b": 2, "c": torch.tensor(float("nan"))}, None)
    assert out["a"] == 1.5 and out["b"] == 2.0 and out["c"] != out["c"]
    assert all(isinstance(v, float) for v in out.values())


def test_bf16_autocast_trains_and_stays_finite(tmp_path):
    res = ebmlab.train("gan", "ring8", out=tmp_path / "r", progress=False,
                       overrides={"steps": 20, "precision": "bf16", "eval_samples": 200, "eval_density": False,
                                  "plots": False, "loggers": "", "log_every": 10})
    assert all(torch.isfinite(p).all() for p in res.method.parameters())
    assert all(p.dtype == torch.float32 for p in res.method.parameters())  # weights stay float32 under autocast


def test_channels_last_on_images_gives_the_same_run(tmp_path):
    import json

    over = {"steps": 3, "eval_samples": 100, "plots": False, "loggers": "", "batch_size": 16,
            "eval_density": False, "log_every": 1}
    a = ebmlab.train("gan", "digits", out=tmp_path / "a", progress=False, overrides=over)
    b = ebmlab.train("gan", "digits", out=tmp_path / "b", progress=False, overrides={**over, "channels_last": True})
    convs = [p for p in b.method.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    # a memory layout, not another model: the first step's losses (same initial weights, batch and noise) agree
    # to float32 rounding of a differently ordered convolution
    first = [json.loads((d / "metrics.jsonl").read_text().splitlines()[0]) for d in (tmp_path / "a", tmp_path / "b")]
    for k in ("loss_d", "loss_g", "d_real", "d_fake"):
        assert abs(first[0][k] - first[1][k]) <= 1e-5 * max(1.0, abs(first[0][k])), k
    assert all(torch.isfinite(p).all() for p in a.method.parameters())
