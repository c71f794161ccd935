"""The user's second hour: runs that move between devices, samples written as files and pictures and scored,
the run's own sampler by default, records that say how a session ended, default run directories, the domain
classifier's cache keyed by content."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import ebmlab
from ebmlab.cli import main
from ebmlab.data import content_sha256

TINY = ["eval_samples=100", "eval_density=false", "plots=false", "loggers=", "log_every=1"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("wf")
    assert main(["train", "gan", "--data", "ring8", "--steps", "3", "--out", str(root / "gan"), "--no-progress",
                 *TINY]) == 0
    assert main(["train", "kale", "--data", "ring8", "--steps", "2", "--out", str(root / "kale"), "--no-progress",
                 "mcmc_steps=3", *TINY]) == 0
    assert main(["train", "gan", "--data", "digits", "--steps", "2", "--out", str(root / "img"), "--no-progress",
                 *TINY]) == 0
    return root


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_a_cuda_run_samples_and_evaluates_on_the_cpu(runs, tmp_path, capsys):
    """A run whose config says device=cuda, with a generator state of another device type in its checkpoint (a
    CUDA generator's state is 16 bytes), samples and evaluates here with --device cpu and with the default."""
    run = _copy(runs / "gan", tmp_path / "cuda-run")
    cfg = json.loads((run / "config.json").read_text())
    cfg["run"]["device"] = "cuda"
    (run / "config.json").write_text(json.dumps(cfg))
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    ck["method_state"]["rng"] = torch.zeros(16, dtype=torch.uint8)
    torch.save(ck, run / "checkpoint.pt")
    assert main(["sample", str(run), "-n", "20", "--out", str(tmp_path / "s.npy"), "--device", "cpu"]) == 0
    assert np.load(tmp_path / "s.npy").shape == (20, 2)
    assert main(["eval", str(run), "--device", "cpu", "--json"]) == 0
    assert main(["sample", str(run), "-n", "5", "--out", str(tmp_path / "t.npy")]) == 0  # auto
    x = ebmlab.sample_run(run, 7, device="cpu")
    assert x.shape == (7, 2) and x.device.type == "cpu"
    assert "metrics" in ebmlab.evaluate_run(run, device="cpu")
    if not torch.cuda.is_available():
        capsys.readouterr()
        assert main(["sample", str(run), "-n", "5", "--out", str(tmp_path / "u.npy"), "--device", "cuda"]) == 2
        assert "--device cpu" in capsys.readouterr().err


def test_resuming_on_another_device_type_is_refused_clearly(runs, tmp_path, capsys):
    run = _copy(runs / "gan", tmp_path / "r")
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    ck["method_state"]["rng"] = torch.zeros(16, dtype=torch.uint8)
    torch.save(ck, run / "checkpoint.pt")
    before = (run / "checkpoint.pt").read_bytes()
    assert main(["train", "gan", "--data", "ring8", "--out", str(run), "--steps", "5", "--no-progress", *TINY]) == 2
    assert "device it was trained on" in capsys.readouterr().err
    assert (run / "checkpoint.pt").read_bytes() == before


def test_sample_formats_and_score_of_a_folder(runs, tmp_path, capsys):
    img = runs / "img"
    assert main(["sample", str(img), "-n", "30", "--out", str(tmp_path / "grid.png")]) == 0
    from PIL import Image

    with Image.open(tmp_path / "grid.png") as im:
        assert im.size[0] > 100
    assert main(["sample", str(img), "-n", "30", "--out", str(tmp_path / "gen") + "/", "--batch-size", "7"]) == 0
    files = sorted((tmp_path / "gen").glob("*.png"))
    assert len(files) == 30 and not list(tmp_path.glob(".gen.*"))  # complete, no temporary folder left
    with Image.open(files[0]) as im:
        assert im.size == (8, 8) and im.mode == "L"
    assert main(["sample", str(img), "-n", "30", "--out", str(tmp_path / "s.npz"), "--batch-size", "7"]) == 0
    with np.load(tmp_path / "s.npz") as z:
        arr, info = z["samples"], json.loads(str(z["info"]))
    assert arr.shape == (30, 1, 8, 8) and info["n"] == 30 and info["seed"] == 0
    # the folder holds the same images as the array, to 8-bit rounding
    from ebmlab.export import read_samples
    from ebmlab.data import get_dataset

    back = read_samples(tmp_path / "gen", get_dataset("digits").spec)
    assert back.shape == (30, 1, 8, 8)
    assert float((back - torch.as_tensor(arr).clamp(-1, 1)).abs().max()) <= 1 / 255 + 1e-6
    capsys.readouterr()
    assert main(["score", str(tmp_path / "gen"), "--data", "digits", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n_samples"] == 30 and "clf_fd" in res["metrics"] and "clf_fd" in res["real_vs_real"]
    assert res["metrics"]["n_feature_samples"] == 30
    # scoring real test images against the data set: at the real-vs-real level, far better than the samples
    real = get_dataset("digits").test[:30].numpy()
    np.save(tmp_path / "real.npy", real)
    good = ebmlab.score_samples(tmp_path / "real.npy", "digits")
    assert good["metrics"]["clf_fd"] < res["metrics"]["clf_fd"]


def test_sample_uses_the_runs_own_sampler_and_settings(runs, tmp_path):
    from ebmlab.api import draw_samples, load_run, run_sampler

    cfg, method, step = load_run(runs / "kale")
    _, info = draw_samples(runs / "kale", 20, loaded=(cfg, method, step))
    mc = cfg.method_config
    assert info["sampler"]["mcmc_steps"] == mc.mcmc_steps == 3
    assert info["sampler"]["inverse_temperature"] == mc.inverse_temperature
    assert info["sampler"]["mcmc_step_size"] == mc.mcmc_step_size
    # another algorithm keeps the run's other settings
    g = run_sampler(method, "mala")
    assert (g.sampler, g.mcmc_steps, g.mcmc_step_size) == ("mala", 3, mc.mcmc_step_size)
    # batches: the same seed and batch size give the same samples, and n is what is returned
    a = ebmlab.sample_run(runs / "kale", 20, seed=3, batch_size=7)
    b = ebmlab.sample_run(runs / "kale", 20, seed=3, batch_size=7)
    assert a.shape == (20, 2) and torch.equal(a, b)


def test_sample_batches_fill_one_array_and_too_many_are_refused_before_sampling(runs, tmp_path, monkeypatch,
                                                                                  capsys):
    from types import SimpleNamespace

    from ebmlab import export
    from ebmlab.api import draw_samples, load_run
    from ebmlab.errors import EbmlabError

    cfg, method, step = load_run(runs / "gan")
    # the batches land in order in one array: the same numbers as the method's own batches joined
    x, _ = draw_samples(runs / "gan", 20, seed=3, batch_size=7, loaded=(cfg, method, step))
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        expect = torch.cat([method.sample(b, generator=gen) for b in (7, 7, 6)])
    assert x.shape == (20, 2) and torch.equal(x, expect)
    if export.available_memory() is not None:  # 10^15 2D samples, 7.3 PB: refused by the CLI at once, rc 2
        assert main(["sample", str(runs / "gan"), "-n", str(10**15), "--out", str(tmp_path / "big.npy")]) == 2
        assert "of memory available — draw at most about" in capsys.readouterr().err
    # more samples than memory holds: refused before the first batch is drawn (the method is never asked)
    monkeypatch.setattr(export, "available_memory", lambda: 12_000)  # bytes: 1000 float32 2D samples need 8000
    monkeypatch.setattr(method, "sample", lambda *a, **k: pytest.fail("sampling started"))
    with pytest.raises(EbmlabError, match=r"take 7.46e-06 GiB as float32; this machine has 1.12e-05 GiB .* at most "
                                          r"about 1000 at a time"):
        draw_samples(runs / "gan", 1001, loaded=(cfg, method, step))
    export.check_sample_room(1000, (2,))  # 1.5 × 8000 bytes = 12,000: just fits
    # a .npy the output's file system cannot take (the free space of an existing ancestor of a new folder)
    monkeypatch.setattr(export, "available_memory", lambda: None)  # unknown: not checked
    monkeypatch.setattr(export.shutil, "disk_usage", lambda p: SimpleNamespace(free=799))
    with pytest.raises(EbmlabError, match=r"make a .* GiB file; its file system has .* free — draw at most about 99"):
        export.check_sample_room(100, (2,), tmp_path / "new" / "deeper" / "s.npz", "npz")
    export.check_sample_room(100, (2,), tmp_path / "s.png", "png")  # compressed PNGs: size not known, not checked
    assert main(["sample", str(runs / "gan"), "-n", "100", "--out", str(tmp_path / "s.npy")]) == 2
    assert not (tmp_path / "s.npy").exists()


@pytest.mark.parametrize("call,words", [
    (lambda r: ebmlab.sample_run(r, "10"), "n must be an integer"),
    (lambda r: ebmlab.sample_run(r, 10.5), "n must be an integer"),
    (lambda r: ebmlab.sample_run(r, 10, seed="a"), "seed"),
    (lambda r: ebmlab.sample_run(r, 10, device="tpu"), "device"),
    (lambda r: ebmlab.sample_run(r, 10, batch_size=0), "batch_size"),
    (lambda r: ebmlab.sample_run(5, 10), "run_dir"),
    (lambda r: ebmlab.evaluate_run(r, ais_steps=-1), "ais_steps"),
    (lambda r: ebmlab.score_samples(5, "ring8"), "generated must be a path or an array"),
    (lambda r: ebmlab.score_samples([[0.0, 1.0]] * 5, "ring8"), "got list"),
    (lambda r: ebmlab.score_samples(np.zeros((5, 3)), "ring8"), r"expected \[n, 2\]"),
    (lambda r: ebmlab.score_samples(np.zeros(5), "ring8"), r"an array of shape \(5,\)"),
    (lambda r: ebmlab.score_samples(torch.zeros(1, 2), "ring8"), "at least 2"),
    (lambda r: ebmlab.score_samples(torch.zeros(4, 2, dtype=torch.complex64), "ring8"), "complex64 values"),
    (lambda r: ebmlab.score_samples("x.npy", 3), "data"),
    (lambda r: ebmlab.score_samples(np.zeros((5, 2)), "ring8", data_dir=3), "data_dir"),
])
def test_python_api_argument_errors(runs, call, words):
    with pytest.raises(ebmlab.EbmlabError, match=words):
        call(runs / "gan")


def test_ais_is_refused_for_a_non_normalisable_energy(runs, monkeypatch):
    import ebmlab.api as api

    monkeypatch.setattr(api, "evaluate", lambda *a, **k: {"density_status": "non_normalisable",
                                                         "density_note": "flat towards infinity"})
    with pytest.raises(ebmlab.EbmlabError, match="not normalisable"):
        ebmlab.evaluate_run(runs / "kale", ais_steps=5)


def test_ctrl_c_marks_the_session_interrupted_and_lr_is_logged(tmp_path, monkeypatch, capsys):
    from ebmlab.methods.gan import GAN

    real = GAN.train_step

    def step(self, batch, i):
        if i == 3:
            raise KeyboardInterrupt
        return real(self, batch, i)

    monkeypatch.setattr(GAN, "train_step", step)
    out = tmp_path / "r"
    assert main(["train", "gan", "--data", "ring8", "--steps", "10", "--out", str(out), "--no-progress",
                 "ckpt_every=2", *TINY]) == 130
    rec = json.loads((out / "run.json").read_text())["sessions"][-1]
    assert rec["status"] == "interrupted" and rec["end_step"] == 3
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["lr_generator"] == 1e-3 and lines[0]["lr_discriminator"] == 1e-3


def test_default_run_directory_of_path_data_is_named_by_its_stem(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "deep" / "my data.npy"
    data.parent.mkdir()
    np.save(data, np.random.default_rng(0).normal(size=(400, 3)).astype(np.float32))
    res = ebmlab.train("gan", str(data), progress=False, overrides=dict(steps=2, eval_samples=50, plots=False,
                                                                        loggers="", eval_density=False))
    assert res.run_dir == Path("runs") / "gan-my_data-s0" and (tmp_path / "runs" / "gan-my_data-s0").is_dir()


def test_toy_batches_are_sharded_across_processes_as_one_process_draws_them():
    """The default (iid) and balanced toy batches under several processes: each process draws the global batch's
    indices from the same generator and keeps every world-th row, so the processes' batches are disjoint, their
    union is exactly the one-process batch, step after step, and their generators stay equal (a checkpoint of any
    process resumes them all); a batch the processes cannot share is refused."""
    import torch

    from ebmlab.data import get_dataset
    from ebmlab.data.batches import make_batches
    from ebmlab.errors import EbmlabError

    ds = get_dataset("grid25")
    for scheme in ("iid", "balanced"):
        one = make_batches(ds, scheme, 50, 3)
        parts = [make_batches(ds, scheme, 50, 3, rank=r, world=2) for r in range(2)]
        streams = [list(p.stream(0, 4)) for p in parts]
        for k, whole in enumerate(one.stream(0, 4)):
            a, b = streams[0][k], streams[1][k]
            assert a.shape == b.shape == (25, 2)
            assert torch.equal(whole[0::2], a) and torch.equal(whole[1::2], b)
        assert torch.equal(parts[0].state_dict()["data_generator"], parts[1].state_dict()["data_generator"])
        assert torch.equal(parts[0].state_dict()["data_generator"], one.state_dict()["data_generator"])
    with pytest.raises(EbmlabError, match="not divisible by the 2 processes"):
        make_batches(ds, "iid", 51, 3, rank=0, world=2)


def test_user_vectors_state_their_standardisation_and_binary_vectors_are_binary(tmp_path):
    from ebmlab.data import get_dataset
    from ebmlab.evaluation import protocol
    from ebmlab.config import RunConfig

    rng = np.random.default_rng(0)
    np.save(tmp_path / "v.npy", rng.normal(size=(200, 3)) * [1.0, 2.0, 4.0])
    ds = get_dataset(str(tmp_path / "v.npy"))
    std = ds.arrays.train_x.astype(np.float64).std(0)
    assert ds.standardisation["log_det"] == pytest.approx(float(np.log(std).sum()), rel=1e-12)
    p = protocol(ds, RunConfig())
    assert "standardised" in p["units"]
    assert p["samples_drawn"] == ds.n_test < RunConfig().eval_samples  # no draw the metrics would leave unused
    res = ebmlab.train("gan", str(tmp_path / "v.npy"), out=tmp_path / "gan", progress=False,
                       overrides=dict(steps=2, eval_samples=500, plots=False, loggers="", batch_size=32))
    from ebmlab.cli import _format_metrics

    assert "units — the data were standardised" in _format_metrics(res.summary)
    np.save(tmp_path / "b.npy", (rng.random((200, 12)) > 0.5).astype(np.float32))
    ds = get_dataset(str(tmp_path / "b.npy"))
    assert ds.kind == "binary" and ds.shape == (12,)
    res = ebmlab.train("bihm", str(tmp_path / "b.npy"), out=tmp_path / "bihm", progress=False,
                       overrides=dict(steps=2, eval_samples=50, plots=False, loggers="", batch_size=32))
    assert res.summary["metrics"]


def test_16_bit_png_is_read_at_its_level(tmp_path):
    """A 16-bit grey PNG of level 32768 is mid-grey, not white (PIL's own conversion to 8 bits clips at 255)."""
    from PIL import Image

    from ebmlab.data.readers import image_values, open_image, read_image_folder

    a = np.full((6, 6), 32768, dtype=np.uint16)
    a[0, 0] = 65535
    a[0, 1] = 0
    (tmp_path / "f").mkdir()
    Image.fromarray(a).save(tmp_path / "f" / "x.png")
    v = image_values(open_image(tmp_path / "f" / "x.png"), True)
    assert v[0, 0] == 1.0 and v[0, 1] == 0.0 and v[3, 3] == pytest.approx(32768 / 65535)
    u8 = read_image_folder(tmp_path / "f", size=None)
    assert u8.shape == (1, 1, 6, 6) and u8[0, 0, 3, 3] == 128 and u8[0, 0, 0, 0] == 255


# --- the domain classifier's cache ---------------------------------------------------------------------------------
def _labelled(path: Path, seed: int) -> Path:
    from ebmlab.data import get_dataset

    ds = get_dataset("digits")
    a = ds.arrays
    idx = np.random.default_rng(seed).permutation(len(a.train_x))[:400]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=a.train_x[idx], y_train=a.train_y[idx], x_test=a.test_x[:100], y_test=a.test_y[:100])
    return path


def test_classifier_cache_is_keyed_by_content(tmp_path, monkeypatch):
    """Two paths that a name-mangling scheme maps to one name (a/b_c.npz, a_b/c.npz) get their own classifiers;
    a file rewritten in place gets a new one; the record is switched only after its weights are written."""
    from ebmlab.data import get_dataset
    from ebmlab.metrics import classifier as C

    monkeypatch.setenv("EBMLAB_CLASSIFIERS", str(tmp_path / "clf"))
    p1 = _labelled(tmp_path / "a" / "b_c.npz", 1)
    p2 = _labelled(tmp_path / "a_b" / "c.npz", 2)
    d1, d2 = get_dataset(str(p1)), get_dataset(str(p2))
    n1, n2 = C.classifier_name(d1), C.classifier_name(d2)
    assert n1 != n2 and n1.startswith("b_c-") and n2.startswith("c-")
    c1 = C.get_classifier(d1, progress=False)
    assert C.load_classifier(n1, data_sha256=content_sha256(d1)).sha256 == c1.sha256
    with pytest.raises(ebmlab.EbmlabError, match="other data"):
        C.load_classifier(n1, data_sha256=content_sha256(d2))
    # rewritten in place: new content, new name, so the old classifier is not reused
    _labelled(p1, 3)
    d1b = get_dataset(str(p1))
    assert C.classifier_name(d1b) != n1 and not C.has_classifier(d1b)
    # a kill between the weights and the record: the old record and its weights still load
    import ebmlab.atomic as atomic

    real = atomic.atomic_write_bytes

    def dies_on_record(path, fn):
        if str(path).endswith(".json"):
            raise KeyboardInterrupt
        return real(path, fn)

    monkeypatch.setattr(atomic, "atomic_write_bytes", dies_on_record)
    with pytest.raises(KeyboardInterrupt):
        C.train_classifier(d1, epochs=1, seed=5, progress=False)
    monkeypatch.setattr(atomic, "atomic_write_bytes", real)
    assert C.load_classifier(n1).sha256 == c1.sha256


def test_score_says_when_some_samples_are_not_finite(tmp_path, capsys):
    """Ring8 points, 1 in 4 NaN: the distances are over the finite three quarters, the HQ share counts the NaNs as
    misses — and the table says so, instead of showing numbers that read as taken on every sample."""
    from ebmlab.data import get_dataset

    x = get_dataset("ring8").test[:400].numpy().astype(np.float64)
    x[::4] = np.nan
    np.save(tmp_path / "s.npy", x)
    capsys.readouterr()
    assert main(["score", str(tmp_path / "s.npy"), "--data", "ring8"]) == 0
    out = capsys.readouterr().out
    assert "25.0% of the samples are not finite" in out
    res = ebmlab.score_samples(tmp_path / "s.npy", "ring8")
    m = res["metrics"]
    assert m["frac_finite"] == 0.75 and m["modes"] == 8
    assert 0.70 < m["hq"] <= 0.75  # test points: ~98.9 % of the finite ones are within 3σ, none of the NaN rows
    # the same samples as an array and as a tensor: the same scores as from the file
    for given in (x, torch.as_tensor(x)):
        res_a = ebmlab.score_samples(given, "ring8")
        assert res_a["metrics"] == m and res_a["n_samples"] == 400 and res_a["method"] == "samples an array of 400"
    np.save(tmp_path / "c.npy", get_dataset("ring8").test[:400].numpy())
    assert main(["score", str(tmp_path / "c.npy"), "--data", "ring8"]) == 0
    assert "not finite" not in capsys.readouterr().out


def test_available_memory_is_the_smaller_of_the_machines_and_the_containers(tmp_path, monkeypatch):
    from ebmlab import export

    limit, usage = tmp_path / "memory.max", tmp_path / "memory.current"
    usage.write_text("400\n")
    meminfo = tmp_path / "meminfo"  # a fixed machine figure: the real one moves while other tests run
    meminfo.write_text("MemTotal:       24683656 kB\nMemAvailable:   20000000 kB\n")
    monkeypatch.setattr(export, "MEMINFO", str(meminfo))
    monkeypatch.setattr(export, "CGROUP_MEMORY", ((str(limit), str(usage)),))
    limit.write_text("max\n")  # no container limit: the machine's MemAvailable, as written above
    machine = export.available_memory()
    limit.write_text("1000\n")
    assert export.available_memory() == 600  # limit − usage, far below any machine's available memory
    limit.write_text("300\n")
    assert export.available_memory() == 0  # over its limit already
    monkeypatch.setattr(export, "CGROUP_MEMORY", ((str(tmp_path / "absent"), str(usage)),))
    assert export.available_memory() == machine
