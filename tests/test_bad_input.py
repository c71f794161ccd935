"""Bad input and faults, table-driven: each case must exit non-zero with one message that names the problem (no
traceback: an exception escaping ``main`` fails the test), and leave every existing run directory byte-identical."""

import errno
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import ebmlab
from ebmlab.cli import main

TINY = ["eval_samples=100", "eval_density=false", "plots=false", "loggers=", "log_every=1"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny GAN run, and one of KALE (for a checkpoint from another method)."""
    root = tmp_path_factory.mktemp("runs")
    assert main(["train", "gan", "--data", "ring8", "--steps", "3", "--out", str(root / "gan"), "--no-progress",
                 *TINY]) == 0
    assert main(["train", "kale", "--data", "ring8", "--steps", "1", "--out", str(root / "kale"), "--no-progress",
                 "mcmc_steps=2", *TINY]) == 0
    # a GAN of the same options on 3-d vectors: its checkpoint does not fit the ring8 run's networks
    np.save(root / "vec.npy", np.random.default_rng(0).normal(size=(400, 3)).astype(np.float32))
    assert main(["train", "gan", "--data", str(root / "vec.npy"), "--steps", "2", "--out", str(root / "vec"),
                 "--no-progress", *TINY]) == 0
    return root


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def copy_run(finished: Path, tmp: Path) -> Path:
    dst = tmp / "copy"
    shutil.copytree(finished / "gan", dst)
    return dst


def edit(path: Path, fn) -> None:
    path.write_text(json.dumps(fn(json.loads(path.read_text()))))


# (id, setup(tmp, finished) -> argv, words the message must contain)
def _train(*extra, data="ring8", method="gan"):
    return lambda tmp, fin: ["train", method, "--data", data, "--out", str(tmp / "new"), "--no-progress", *extra]


def _copy_then(fn, argv_fn):
    def setup(tmp, fin):
        run = copy_run(fin, tmp)
        fn(run)
        return argv_fn(run)
    return setup


def _resume(run):
    return ["train", "gan", "--data", "ring8", "--out", str(run), "--steps", "3", "--no-progress", *TINY]


def _eval(run):
    return ["eval", str(run)]


def _sample(*extra):
    return lambda tmp, fin: ["sample", str(fin / "gan"), "-n", "10", "--out", str(tmp / "s.npy"), *extra]


def _then(*effects_and_argv):
    """Run the side effects (already evaluated as arguments), return the last item: the argv."""
    return effects_and_argv[-1]


def _images(tmp, n=12, side=10):
    """A folder of n grey PNG images side x side (made once per test directory)."""
    import numpy as np
    from PIL import Image

    d = tmp / "imgs"
    if not d.is_dir():
        d.mkdir()
        rng = np.random.default_rng(0)
        for i in range(n):
            Image.fromarray((rng.random((side, side)) * 255).astype(np.uint8)).save(d / f"{i}.png")
    return d


def _file(tmp, name, data: bytes):
    p = tmp / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


CLAIM = """paper = "kale"
where = "§4"
claim = "guided beats base"
status = "measured"
networks = "2D MLPs"

[comparison]
metric = "hq"
direction = "{direction}"
budget = "same_run"
a = {{label = "guided", method = "kale", metric = "hq"}}
b = {{label = "base", method = "kale", metric = "base_hq"}}

[scale.small]
data = "ring8"
"""


def _claim_spec(tmp, name, direction="higher"):
    return _file(tmp / "specs", f"{name}.toml", CLAIM.format(direction=direction).encode())


def _sr_run(tmp):
    """A finished bicubic super-resolution run in tmp/r (made once per test directory)."""
    if not (tmp / "r" / "summary.json").is_file():
        from ebmlab.sr import api

        api.train_sr(str(_images(tmp, n=6, side=16)), "bicubic", out=tmp / "r", crop=8, progress=False, n_eval=2)
    return tmp / "r"


CASES = [
    # --- option values -----------------------------------------------------------------------------------------------
    ("steps-zero", _train("steps=0"), ["steps"]),
    ("steps-negative", _train("--steps", "-5"), ["steps"]),
    ("batch-size-one", _train("batch_size=1"), ["batch_size"]),
    ("batch-size-text", _train("batch_size=abc"), ["batch_size", "integer"]),
    ("steps-fraction", _train("steps=2.5"), ["steps", "integer"]),
    ("lr-negative", _train("lr_g=-1e-3"), ["lr_g", "> 0"]),
    ("lr-nan", _train("lr_d=nan"), ["lr_d"]),
    ("lr-inf", _train("lr_d=inf"), ["lr_d"]),
    ("lr-text", _train("lr_g=fast"), ["lr_g", "number"]),
    ("beta1-one", _train("beta1=1.0"), ["beta1"]),
    ("beta2-negative", _train("beta2=-0.1"), ["beta2"]),
    ("log-every-zero", _train("log_every=0"), ["log_every"]),
    ("ckpt-every-zero", _train("ckpt_every=0"), ["ckpt_every"]),
    ("eval-samples-zero", _train("eval_samples=0"), ["eval_samples"]),
    ("eval-every-negative", _train("eval_every=-1"), ["eval_every"]),
    ("threads-negative", _train("threads=-1"), ["threads"]),
    ("workers-negative", _train("num_workers=-2"), ["num_workers"]),
    ("image-size-negative", _train("image_size=-3"), ["image_size"]),
    ("seed-negative", _train("--seed", "-1"), ["seed"]),
    ("z-dim-zero", _train("z_dim=0"), ["z_dim"]),
    ("hidden-zero-width", _train("g_hidden=0,128"), ["g_hidden"]),
    ("hidden-text", _train("g_hidden=a,b"), ["g_hidden", "integer"]),
    ("activation-unknown", _train("act=swish"), ["act", "one of"]),
    ("device-unknown", _train("device=tpu"), ["device", "one of"]),
    ("bool-garbage", _train("plots=maybe"), ["plots", "true or false"]),
    ("n-critic-zero", _train("n_critic=0"), ["n_critic"]),
    ("kale-temperature-negative", _train("inverse_temperature=-1", method="kale"), ["inverse_temperature"]),
    ("kale-mcmc-steps-zero", _train("mcmc_steps=0", method="kale"), ["mcmc_steps"]),
    ("bib-t-min-above-one", _train("t_min=1.5", method="bib_jac_diff"), ["t_min"]),
    ("vae-iwae-ks-empty", _train("iwae_ks=", method="vae"), ["iwae_ks"]),
    ("unknown-option", _train("learning_rate=1"), ["unknown option", "learning_rate"]),
    ("unknown-method", _train(method="wgan"), ["wgan"]),
    ("method-for-other-kind", _train(method="bihm"), ["binary"]),
    # --- conflicting and malformed arguments -------------------------------------------------------------------------
    ("seed-twice", _train("--seed", "0", "seed=1"), ["seed", "once"]),
    ("steps-twice", _train("--steps", "5", "steps=6"), ["steps", "once"]),
    ("override-without-equals", _train("lr_g"), ["unrecognized", "lr_g"]),
    ("unknown-flag", _train("--speed", "3"), ["unrecognized", "--speed"]),
    ("list-data-without-options", lambda tmp, fin: ["list", "--data", "ring8"], ["--options"]),
    ("list-unknown-method", lambda tmp, fin: ["list", "--options", "wgan"], ["wgan"]),
    # --- data -------------------------------------------------------------------------------------------------------
    ("data-unknown", _train(data="ring9"), ["unknown data set", "ring9"]),
    ("data-missing-npz", lambda tmp, fin: _train(data=str(tmp / "none.npz"))(tmp, fin), ["none.npz"]),
    ("data-corrupt-npz", lambda tmp, fin: _train(data=str(_file(tmp, "bad.npz", b"PK\x03\x04garbage")))(tmp, fin),
     ["bad.npz"]),
    ("data-garbage-npy", lambda tmp, fin: _train(data=str(_file(tmp, "g.npy", b"not an array")))(tmp, fin),
     ["g.npy", "not a NumPy .npy file", "corrupt"]),
    ("data-npy-named-npz", lambda tmp, fin: np.save(tmp / "a.npy", np.zeros((9, 2))) or _train(
        data=str(_file(tmp, "a.npz", (tmp / "a.npy").read_bytes())))(tmp, fin), ["a.npz", "rename it to a.npy"]),
    ("data-empty-folder", lambda tmp, fin: (tmp / "imgs").mkdir() or _train(data=str(tmp / "imgs") + "/")(tmp, fin),
     ["imgs"]),
    ("data-dir-missing", _train("data_dir=/nonexistent-dir", data="mnist"), ["/nonexistent-dir", "does not exist"]),
    ("data-mnist-files-absent", lambda tmp, fin: (tmp / "dd").mkdir() or _train(f"data_dir={tmp / 'dd'}",
                                                                                  data="mnist")(tmp, fin),
     ["train-images-idx3-ubyte"]),
    # --- config files -----------------------------------------------------------------------------------------------
    ("config-missing", _train("--config", "/nonexistent/c.toml"), ["c.toml", "does not exist"]),
    ("config-not-utf8", lambda tmp, fin: _train("--config", str(_file(tmp, "c.toml", b"[run]\nsteps = \xff\n")))(
        tmp, fin), ["UTF-8"]),
    ("config-bad-toml", lambda tmp, fin: _train("--config", str(_file(tmp, "c.toml", b"[run\nsteps=")))(tmp, fin),
     ["TOML"]),
    ("config-unknown-table", lambda tmp, fin: _train("--config", str(_file(tmp, "c.toml", b"[model]\nx=1\n")))(
        tmp, fin), ["model", "[run] and [method]"]),
    ("config-unknown-key", lambda tmp, fin: _train("--config", str(_file(tmp, "c.toml", b"[run]\nstepz=1\n")))(
        tmp, fin), ["stepz"]),
    ("config-wrong-type", lambda tmp, fin: _train("--config", str(_file(tmp, "c.toml", b"[method]\nlr_g='x'\n")))(
        tmp, fin), ["lr_g"]),
    ("config-out-of-range", lambda tmp, fin: _train("--config", str(_file(tmp, "c.toml", b"[method]\nlr_g=-1.0\n")))(
        tmp, fin), ["lr_g"]),
    # --- output paths -----------------------------------------------------------------------------------------------
    ("out-through-file", lambda tmp, fin: ["train", "gan", "--data", "ring8", "--out",
                                           str(_file(tmp, "f", b"x") / "run"), *TINY], ["is a file"]),
    ("out-is-file", lambda tmp, fin: ["train", "gan", "--data", "ring8", "--out", str(_file(tmp, "f", b"x")), *TINY],
     ["existing file"]),
    ("out-name-too-long", lambda tmp, fin: ["train", "gan", "--data", "ring8", "--out", str(tmp / ("r" * 300)),
                                            *TINY], ["longer than"]),
    ("out-dir-of-other-files", lambda tmp, fin: _then((tmp / "d").mkdir(), (tmp / "d" / "notes.txt").write_text("x"),
                                                    ["train", "gan", "--data", "ring8", "--out", str(tmp / "d"), *TINY]),
     ["holds no ebmlab run", "notes.txt", "new or empty directory"]),
    ("out-run-without-its-config", _copy_then(lambda r: (r / "config.json").unlink(),
                                              lambda r: ["train", "gan", "--data", "ring8", "--out", str(r), *TINY]),
     ["no config.json", "checkpoint.pt", "restore that file"]),
    # --- existing runs ----------------------------------------------------------------------------------------------
    ("resume-other-method", lambda tmp, fin: ["train", "vgan", "--data", "ring8", "--out", str(fin / "gan")],
     ["method", "gan"]),
    ("resume-other-data", lambda tmp, fin: ["train", "gan", "--data", "grid25", "--out", str(fin / "gan")],
     ["ring8"]),
    ("resume-other-options", lambda tmp, fin: ["train", "gan", "--data", "ring8", "--out", str(fin / "gan"),
                                               "lr_g=0.5", *TINY], ["different options", "lr_g"]),
    ("config-json-emptied", _copy_then(lambda r: (r / "config.json").write_text(""), _resume), ["config.json"]),
    ("config-json-not-object", _copy_then(lambda r: (r / "config.json").write_text("[1, 2]"), _eval),
     ["config.json", "edited"]),
    ("config-json-bad-value", _copy_then(lambda r: edit(r / "config.json", lambda d: {**d, "run": {**d["run"],
                                                                                                    "steps": "many"}}),
                                         _eval), ["config.json", "steps"]),
    ("config-json-out-of-range", _copy_then(lambda r: edit(r / "config.json",
                                                           lambda d: {**d, "method_config": {**d["method_config"],
                                                                                             "lr_g": -1}}), _resume),
     ["config.json", "lr_g"]),
    ("config-json-not-utf8", _copy_then(lambda r: (r / "config.json").write_bytes(b"\xff\xfe{"), _eval),
     ["config.json"]),
    ("checkpoint-empty", _copy_then(lambda r: (r / "checkpoint.pt").write_bytes(b""), _eval), ["empty"]),
    ("checkpoint-truncated", _copy_then(lambda r: (r / "checkpoint.pt").write_bytes(
        (r / "checkpoint.pt").read_bytes()[:500]), _eval), ["truncated or corrupt"]),
    ("checkpoint-foreign", _copy_then(lambda r: torch.save({"weights": torch.zeros(2)}, r / "checkpoint.pt"), _eval),
     ["not an ebmlab checkpoint"]),
    ("eval-missing-dir", lambda tmp, fin: ["eval", str(tmp / "nothing")], ["does not exist"]),
    ("eval-not-a-run", lambda tmp, fin: (tmp / "d").mkdir() or ["eval", str(tmp / "d")], ["not an ebmlab run"]),
    ("eval-ais-zero", lambda tmp, fin: ["eval", str(fin / "gan"), "--ais", "0"], ["--ais"]),
    # --- sample -----------------------------------------------------------------------------------------------------
    ("sample-wrong-suffix", lambda tmp, fin: ["sample", str(fin / "gan"), "-n", "5", "--out", str(tmp / "s.txt")],
     [".npy"]),
    ("sample-out-directory", lambda tmp, fin: (tmp / "d.npy").mkdir() or ["sample", str(fin / "gan"), "-n", "5",
                                                                          "--out", str(tmp / "d.npy")],
     ["directory"]),
    ("sample-n-zero", _sample("-n", "0"), ["-n"]),
    ("sample-mcmc-steps-negative", _sample("--sampler", "kinetic", "--mcmc-steps", "-5"), ["mcmc_steps"]),
    ("sample-mcmc-steps-zero", _sample("--sampler", "kinetic", "--mcmc-steps", "0"), ["mcmc_steps"]),
    ("sample-temperature-nan", _sample("--sampler", "kinetic", "--temperature", "nan"), ["inverse_temperature"]),
    ("sample-step-size-zero", _sample("--sampler", "ula", "--mcmc-step-size", "0"), ["mcmc_step_size"]),
    ("sample-friction-negative", _sample("--sampler", "kinetic", "--mcmc-friction", "-1"), ["mcmc_friction"]),
    ("sample-mcmc-option-without-sampler", _sample("--temperature", "2"), ["--sampler"]),
    ("sample-guided-without-energy", _sample("--sampler", "kinetic"), ["energy"]),
    ("sample-no-checkpoint", _copy_then(lambda r: (r / "checkpoint.pt").unlink(),
                                        lambda r: ["sample", str(r), "-n", "5", "--out", str(r.parent / "s.npy")]),
     ["no checkpoint"]),
    ("sample-device-unknown", _sample("--device", "tpu"), ["--device", "invalid choice"]),
    ("sample-out-unknown-suffix", _sample("--out", "/tmp/x.csv"), [".npy, .npz or .png"]),
    ("sample-out-folder-not-empty", lambda tmp, fin: _then((tmp / "d").mkdir(), (tmp / "d" / "f").write_text("x"),
                                                           ["sample", str(fin / "gan"), "-n", "5", "--out",
                                                            str(tmp / "d") + "/"]), ["not empty"]),
    ("sample-folder-of-2d-points", lambda tmp, fin: ["sample", str(fin / "gan"), "-n", "5", "--out",
                                                     str(tmp / "pts") + "/"], ["image data"]),
    ("sample-png-of-vectors", lambda tmp, fin: ["sample", str(fin / "vec"), "-n", "5", "--out", str(tmp / "v.png")],
     ["picture", ".npy"]),
    ("sample-batch-size-zero", _sample("--batch-size", "0"), ["--batch-size"]),
    ("sample-seed-negative", _sample("--seed", "-2"), ["--seed"]),
    ("sample-temperature-negative", _sample("--sampler", "kinetic", "--inverse-temperature", "-1"), ["inverse_temperature"]),
    ("sample-none-with-mcmc-flags", _sample("--sampler", "none", "--mcmc-steps", "5"), ["--sampler none"]),
    ("sample-out-not-utf8", lambda tmp, fin: ["sample", str(fin / "gan"), "-n", "5", "--out",
                                              str(tmp) + "/\udcff.npy"], ["UTF-8"]),
    ("eval-device-unknown", lambda tmp, fin: ["eval", str(fin / "gan"), "--device", "gpu"], ["invalid choice"]),
    ("eval-super-resolution-run", lambda tmp, fin: _then((tmp / "sr").mkdir(), (tmp / "sr" / "config.json").write_text(
        json.dumps({"format": "ebmlab-sr-run-1", "model": "mse"})), ["eval", str(tmp / "sr")]),
     ["super-resolution run", "sr eval"]),
    ("eval-config-edited-network", _copy_then(lambda r: edit(r / "config.json", lambda d: {
        **d, "method_config": {**d["method_config"], "g_hidden": [64, 64]}}), _eval),
     ["does not fit", "config.json"]),
    ("eval-checkpoint-of-other-data", lambda tmp, fin: shutil.copy(fin / "vec" / "checkpoint.pt", copy_run(
        fin, tmp) / "checkpoint.pt") and ["eval", str(tmp / "copy")], ["does not fit"]),
    # --- score ------------------------------------------------------------------------------------------------------
    ("score-missing-file", lambda tmp, fin: ["score", str(tmp / "none.npy"), "--data", "ring8"], ["does not exist"]),
    ("score-wrong-shape", lambda tmp, fin: np.save(tmp / "s.npy", np.zeros((10, 3))) or
     ["score", str(tmp / "s.npy"), "--data", "ring8"], ["shape"]),
    ("score-text-array", lambda tmp, fin: np.save(tmp / "s.npy", np.array([["a", "b"]] * 5)) or
     ["score", str(tmp / "s.npy"), "--data", "ring8"], ["text"]),
    ("score-folder-for-points", lambda tmp, fin: (tmp / "g").mkdir() or ["score", str(tmp / "g"), "--data", "ring8"],
     ["folder of images"]),
    ("score-empty-image-folder", lambda tmp, fin: (tmp / "g").mkdir() or ["score", str(tmp / "g"), "--data",
                                                                          "digits"], ["no PNG"]),
    ("score-unknown-data", lambda tmp, fin: ["score", str(tmp / "x.npy"), "--data", "ring9"], ["did you mean 'ring8'"]),
    ("score-npz-named-npy", lambda tmp, fin: np.savez(tmp / "s.npz", samples=np.zeros((4, 2))) or
     ["score", str(_file(tmp, "s.npy", (tmp / "s.npz").read_bytes())), "--data", "ring8"], ["rename it to s.npz"]),
    ("score-npz-without-samples", lambda tmp, fin: np.savez(tmp / "s.npz", a=np.zeros((4, 2)), b=np.zeros((4, 2)))
     or ["score", str(tmp / "s.npz"), "--data", "ring8"], ["samples"]),
    # --- closest names -----------------------------------------------------------------------------------------------
    ("option-suggestion", _train("lr_gg=1e-3"), ["did you mean 'lr_g'"]),
    ("method-suggestion", _train(method="kael"), ["did you mean 'kale'"]),
    ("data-suggestion", _train(data="fahsion"), ["did you mean 'fashion'"]),
    # --- a user's data ----------------------------------------------------------------------------------------------
    ("data-npz-strings", lambda tmp, fin: np.savez(tmp / "s.npz", x=np.array([["a", "b"]] * 10)) or
     _train(data=str(tmp / "s.npz"))(tmp, fin), ["text", "real numbers"]),
    ("data-npz-complex", lambda tmp, fin: np.savez(tmp / "c.npz", x=np.ones((10, 2)) * (1 + 2j)) or
     _train(data=str(tmp / "c.npz"))(tmp, fin), ["complex"]),
    ("data-all-identical", lambda tmp, fin: np.save(tmp / "same.npy", np.ones((50, 3))) or
     _train(data=str(tmp / "same.npy"))(tmp, fin), ["identical"]),
    ("data-dir-is-a-file", lambda tmp, fin: _train(f"data_dir={_file(tmp, 'f.txt', b'x')}", data="mnist")(tmp, fin),
     ["is a file"]),
    ("batch-larger-than-data", lambda tmp, fin: np.save(tmp / "small.npy", np.random.default_rng(0).normal(
        size=(20, 3))) or _train("batch_size=64", data=str(tmp / "small.npy"))(tmp, fin), ["batch_size=64", "exceeds"]),
    ("image-size-flag-negative", _train("--image-size", "-3"), ["image_size"]),
    ("out-not-utf8", lambda tmp, fin: ["train", "gan", "--data", "ring8", "--out", str(tmp / "\udcfe"), *TINY],
     ["UTF-8"]),
    # --- super-resolution sizes --------------------------------------------------------------------------------------
    ("sr-upscale-tile-zero", lambda tmp, fin: ["sr", "upscale", str(tmp / "r"), "--in", "x.png", "--out",
                                               str(tmp / "o.png"), "--tile", "0"], ["--tile"]),
    ("sr-upscale-tile-negative", lambda tmp, fin: ["sr", "upscale", str(tmp / "r"), "--in", "x.png", "--out",
                                                   str(tmp / "o.png"), "--tile", "-2"], ["--tile"]),
    ("sr-train-out-dir-of-other-files", lambda tmp, fin: _then(
        (tmp / "d").mkdir(), (tmp / "d" / "notes.txt").write_text("x"),
        ["sr", "train", "--data", "skimage", "--model", "bicubic", "--out", str(tmp / "d")]),
     ["holds no ebmlab run", "notes.txt"]),
    ("sr-train-crop-zero", lambda tmp, fin: ["sr", "train", "--data", "skimage", "--model", "bicubic", "--out",
                                             str(tmp / "new"), "--crop", "0"], ["--crop"]),
    ("sr-train-n-eval-zero", lambda tmp, fin: ["sr", "train", "--data", "skimage", "--model", "bicubic", "--out",
                                               str(tmp / "new"), "--n-eval", "0"], ["--n-eval"]),
    ("sr-eval-n-zero", lambda tmp, fin: ["sr", "eval", str(tmp / "r"), "-n", "0"], ["-n"]),
    ("sr-model-suggestion", lambda tmp, fin: ["sr", "train", "--data", "skimage", "--model", "stat", "--out",
                                              str(tmp / "new")], ["did you mean 'stats'"]),
    # --- bench ------------------------------------------------------------------------------------------------------
    ("bench-part-not-a-part", lambda tmp, fin: _then((tmp / "b" / "parts").mkdir(parents=True), (
        tmp / "b" / "parts" / "part-0-of-1.json").write_text('{"runs": 3}'), ["bench", "collect", str(tmp / "b")]),
     ["not a bench part file"]),
    ("bench-part-not-utf8", lambda tmp, fin: _then((tmp / "b" / "parts").mkdir(parents=True), (
        tmp / "b" / "parts" / "part-0-of-1.json").write_bytes(b"\xff\xfe"), ["bench", "collect", str(tmp / "b")]),
     ["not a readable part file"]),
    ("report-not-html", lambda tmp, fin: ["report", str(fin / "gan"), "--out", str(tmp / "r.txt")], [".html"]),
    ("report-missing-run", lambda tmp, fin: ["report", str(tmp / "nothing")], ["does not exist"]),
    # --- tabular data, fixed bases, IWAE training ---------------------------------------------------------------------
    ("csv-text-field", lambda tmp, fin: _file(tmp, "t.csv", b"a,b\n1,2\n3,x\n4,5\n") and
     _train(data=str(tmp / "t.csv"))(tmp, fin), ["line 3, column 2 (b)", "finite number"]),
    ("csv-ragged", lambda tmp, fin: _file(tmp, "r.csv", b"1,2\n3,4,5\n6,7\n") and
     _train(data=str(tmp / "r.csv"))(tmp, fin), ["line 2 has 3 fields"]),
    ("csv-empty-field", lambda tmp, fin: _file(tmp, "e.csv", b"1,2\n3,\n6,7\n") and
     _train(data=str(tmp / "e.csv"))(tmp, fin), ["line 2, column 2", "missing values"]),
    ("csv-empty", lambda tmp, fin: _file(tmp, "n.csv", b"\n\n") and _train(data=str(tmp / "n.csv"))(tmp, fin),
     ["empty"]),
    ("csv-bad-label", lambda tmp, fin: _file(tmp, "l.csv", b"a,label\n1,0.5\n2,1\n3,0\n") and
     _train(data=str(tmp / "l.csv"))(tmp, fin), ["label column"]),
    ("kale-flow-base-on-images", _train("base=flow", data="stacked_digits", method="kale"), ["flat data", "base=generator"]),
    ("kale-base-unknown", _train("base=normal", method="kale"), ["base", "one of"]),
    ("vae-iwae-k-one", _train("objective=iwae", "train_k=1", method="vae"), ["train_k ≥ 2"]),
    ("vae-train-k-zero", _train("train_k=0", method="vae"), ["train_k"]),
    # --- inpaint ----------------------------------------------------------------------------------------------------
    ("inpaint-method-without-it", lambda tmp, fin: ["inpaint", str(fin / "gan"), "--out", str(tmp / "i.png")],
     ["no conditional sampler", "bihm"]),
    ("inpaint-not-png", lambda tmp, fin: ["inpaint", str(fin / "gan"), "--out", str(tmp / "i.npy")], ["NAME.png"]),
    ("inpaint-n-zero", lambda tmp, fin: ["inpaint", str(fin / "gan"), "--out", str(tmp / "i.png"), "-n", "0"], ["-n"]),
    ("inpaint-sweeps-zero", lambda tmp, fin: ["inpaint", str(fin / "gan"), "--out", str(tmp / "i.png"), "--sweeps",
                                              "0"], ["--sweeps"]),
    ("inpaint-mask-unknown", lambda tmp, fin: ["inpaint", str(fin / "gan"), "--out", str(tmp / "i.png"), "--mask",
                                               "botom"], ["did you mean 'bottom'"]),
    ("inpaint-fraction-one", lambda tmp, fin: ["inpaint", str(fin / "gan"), "--out", str(tmp / "i.png"),
                                               "--fraction", "1"], ["--fraction"]),
    ("semisup-rho-text", lambda tmp, fin: ["semisup", "--data", "digits", "--rho", "0,a"], ["--rho"]),
    ("semisup-rho-negative", lambda tmp, fin: ["semisup", "--data", "digits", "--rho", "-0.1"], ["--rho", "≥ 0"]),
    ("semisup-labels-uneven", lambda tmp, fin: ["semisup", "--data", "digits", "--rho", "0", "--labels", "15"],
     ["multiple of 10"]),
    ("semisup-rho-without-run", lambda tmp, fin: ["semisup", "--data", "digits", "--rho", "0.1"], ["needs --run"]),
    ("semisup-toy-data", lambda tmp, fin: ["semisup", "--data", "ring8", "--rho", "0"], ["labelled images"]),
    ("semisup-run-other-data", lambda tmp, fin: ["semisup", "--data", "digits", "--run", str(fin / "gan"), "--rho",
                                                 "0"], ["trained on ring8"]),
    ("semisup-out-not-json", lambda tmp, fin: ["semisup", "--data", "digits", "--out", str(tmp / "t.txt")],
     ["NAME.json"]),
    ("data-on-device-with-workers", _train("data_on_device=on", "num_workers=2", data="digits"),
     ["num_workers=0", "data_on_device"]),
    ("data-on-device-unknown", _train("data_on_device=yes"), ["data_on_device", "auto", "off"]),
    ("graphs-unknown", _train("graphs=yes"), ["graphs", "emulate"]),
    *([("graphs-on-without-cuda", _train("graphs=on", "--device", "cpu"), ["graphs=on captures CUDA graphs",
                                                                          "graphs=emulate"])]
      if not torch.cuda.is_available() else []),
    ("ebgan-ln-toy-data", lambda tmp, fin: ["train", "ebgan_ln", "--data", "ring8", "--out", str(tmp / "new")],
     ["of kind", "labelled data set"]),
    ("ebgan-ln-unlabelled-npz", lambda tmp, fin: np.savez(tmp / "u.npz", x=np.random.default_rng(0).normal(size=(400, 3)).astype(np.float32)) or
     ["train", "ebgan_ln", "--data", str(tmp / "u.npz"), "--out", str(tmp / "new")], ["no class labels"]),
    ("ebgan-ln-labels-uneven", lambda tmp, fin: ["train", "ebgan_ln", "--data", "digits", "--out", str(tmp / "new"),
                                                 "labels=15"], ["multiple of 10"]),
    ("ebgan-ln-too-many-labels", lambda tmp, fin: ["train", "ebgan_ln", "--data", "digits", "--out",
                                                   str(tmp / "new"), "labels=2000"], ["fewer than"]),
    ("inpaint-missing-run", lambda tmp, fin: ["inpaint", str(tmp / "none"), "--out", str(tmp / "i.png")],
     ["does not exist"]),
    # --- bench ------------------------------------------------------------------------------------------------------
    # --- the domain classifier -----------------------------------------------------------------------------------
    ("classifier-show-2d-data", lambda tmp, fin: ["classifier", "show", "--data", "ring8", "--out", str(tmp / "c")],
     ["labelled C×H×W images", "no labels"]),
    ("classifier-train-2d-data", lambda tmp, fin: ["classifier", "train", "--data", "grid25", "--out", str(tmp / "c")],
     ["labelled C×H×W images"]),
    ("classifier-show-unlabelled-vectors", lambda tmp, fin: ["classifier", "show", "--data", str(fin / "vec.npy"),
                                                             "--out", str(tmp / "c")], ["no labels"]),
    ("bench-unknown-suite", lambda tmp, fin: ["bench", "speed", "--out", str(tmp / "b")], ["unknown benchmark suite"]),
    ("bench-bad-shard", lambda tmp, fin: ["bench", "toy", "--shard", "3/2", "--out", str(tmp / "b")], ["--shard"]),
    ("bench-collect-no-dir", lambda tmp, fin: ["bench", "collect"], ["collect DIR"]),
    ("bench-jobs-zero", lambda tmp, fin: ["bench", "toy", "--methods", "gan", "--seeds", "1", "--steps", "2",
                                          "--jobs", "0", "--out", str(tmp / "new")], ["--jobs", "≥ 1"]),
    ("bench-jobs-negative", lambda tmp, fin: ["bench", "toy", "--methods", "gan", "--seeds", "1", "--steps", "2",
                                              "--jobs", "-2", "--out", str(tmp / "new")], ["--jobs", "≥ 1"]),
    # --- image sizes (an image folder resized: a side ≥ 1) ----------------------------------------------------------
    ("train-image-size-flag-negative", lambda tmp, fin: ["train", "gan", "--data", str(_images(tmp)), "--image-size",
                                                         "-3", "--out", str(tmp / "new")], ["--image-size", "≥ 1"]),
    ("train-image-size-flag-zero", lambda tmp, fin: ["train", "gan", "--data", str(_images(tmp)), "--image-size",
                                                     "0", "--out", str(tmp / "new")], ["--image-size", "≥ 1"]),
    ("train-image-size-option-negative-folder", lambda tmp, fin: ["train", "gan", "--data", str(_images(tmp)),
                                                                  "image_size=-3", "--out", str(tmp / "new")],
     ["image_size"]),
    ("score-image-size-negative", lambda tmp, fin: ["score", str(_images(tmp)), "--data", str(_images(tmp)),
                                                    "--image-size", "-2"], ["--image-size", "≥ 1"]),
    ("score-image-size-zero", lambda tmp, fin: ["score", str(_images(tmp)), "--data", str(_images(tmp)),
                                                "--image-size", "0"], ["--image-size", "≥ 1"]),
    # --- claims and the sr thread setting ------------------------------------------------------------------------------
    ("claims-specs-missing", lambda tmp, fin: ["claims", "list", "--specs", str(tmp / "nowhere")],
     ["does not exist", "--specs"]),
    ("claims-unknown-id", lambda tmp, fin: _then(_claim_spec(tmp, "guided-vs-base"),
                                                  ["claims", "run", "guided-vs-bse", "--specs", str(tmp / "specs")]),
     ["unknown claim", "did you mean"]),
    ("claims-spec-not-toml", lambda tmp, fin: _then(_file(tmp / "specs", "bad.toml", b"paper = [unclosed"),
                                                    ["claims", "list", "--specs", str(tmp / "specs")]),
     ["bad.toml", "toml"]),
    ("claims-spec-bad-direction", lambda tmp, fin: _then(_claim_spec(tmp, "c", direction="up"),
                                                         ["claims", "render", "--specs", str(tmp / "specs"), "--out",
                                                          str(tmp / "new" / "c.md")]),
     ["c.toml", "direction", "higher"]),
    ("claims-scale-missing", lambda tmp, fin: _then(_claim_spec(tmp, "c"), ["claims", "run", "c", "--scale",
                                                                            "medium", "--specs", str(tmp / "specs")]),
     ["no medium scale", "small"]),
    ("claims-results-damaged", lambda tmp, fin: _then(_claim_spec(tmp, "c"),
                                                      _file(tmp / "specs" / "results", "c.json", b"{not json"),
                                                      ["claims", "list", "--specs", str(tmp / "specs")]),
     ["c.json"]),
    ("bench-grid-setting-the-method-refuses", lambda tmp, fin: _then(
        _file(tmp, "grid.toml", b'"bib_onesided:r1" = [{data_gp_weight = 100.0}]\n'),
        ["bench", "toy", "--methods", "bib_onesided", "--data", "ring8", "--seeds", "1", "--steps", "2", "--grid",
         str(tmp / "grid.toml"), "--out", str(tmp / "new")]), ["refused before any run", "data_gp_weight"]),
    # --- a best checkpoint, plugin packages, an uninstallable compile setting ------------------------------------
    ("metrics-unknown", _train("metrics=modes,sharpness"), ["metrics", "'sharpness' is not a metric"]),
    ("keep-best-unknown-metric", _train("keep_best=sharpness", "eval_every=2"), ["keep_best", "not a metric"]),
    ("keep-best-without-direction", _train("keep_best=log_z", "eval_every=2"), ["keep_best", "no better direction"]),
    ("keep-best-without-evaluations", _train("keep_best=w1"), ["keep_best", "eval_every"]),
    ("checkpoint-best-missing", _copy_then(lambda r: None, lambda r: ["eval", str(r), "--checkpoint", "best"]),
     ["no best checkpoint", "keep_best"]),
    ("checkpoint-choice-unknown", _sample("--checkpoint", "newest"), ["--checkpoint"]),
    ("plugin-package-missing", _copy_then(
        lambda r: (r / "config.json").write_text((r / "config.json").read_text().replace(
            '"method": "gan"', '"method": "ghost_gan", "plugins": {"method": "ghost-pkg 1.2 (ghost:Ghost)"}', 1)),
        _eval), ["ghost-pkg 1.2", "pip install 'ghost-pkg==1.2'"]),
    ("sr-eval-threads-negative", lambda tmp, fin: _then(_sr_run(tmp), ["sr", "eval", str(tmp / "r"), "--threads",
                                                                      "-1"]), ["--threads"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, finished, tmp_path, capsys):
    name, setup, words = case
    argv = setup(tmp_path, finished)
    before = snapshot(finished)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert code not in (0, None), f"{name}: exit 0"
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("ebmlab") or ln.startswith("usage")]
    assert lines, err
    assert all(w.lower() in err.lower() for w in words), f"{name}: {err!r} lacks {words}"
    assert snapshot(finished) == before, f"{name} changed an existing run directory"
    assert not (tmp_path / "new").exists(), f"{name} left a run directory behind"


def test_new_run_in_an_empty_directory_or_beside_the_leftovers_of_a_killed_start(tmp_path):
    for leftovers in ((), (".lock", ".config.json.x1y2.tmp")):
        out = tmp_path / f"d{len(leftovers)}"
        out.mkdir()
        for name in leftovers:
            (out / name).write_text("")
        assert main(["train", "gan", "--data", "ring8", "--steps", "2", "--out", str(out), "--no-progress",
                     *TINY]) == 0
        assert (out / "config.json").is_file() and (out / "checkpoint.pt").is_file()
        assert not (out / ".config.json.x1y2.tmp").exists()  # the killed start's temporary file is cleaned


def test_table_size():
    assert len(CASES) >= 110 and len({c[0] for c in CASES}) == len(CASES)


# --- faults of the machine, simulated ---------------------------------------------------------------------------------
@pytest.mark.parametrize("err,words", [(errno.ENOSPC, "disk is full"), (errno.EROFS, "read-only"),
                                       (errno.EACCES, "permission"), (errno.ENAMETOOLONG, "too long")])
def test_file_system_errors_during_a_run(monkeypatch, finished, tmp_path, capsys, err, words):
    """A write failing mid-run (full disk, file system remounted read-only, ...) ends with one message; the
    checkpoint on disk stays the previous one (atomic writes), so the same command resumes."""
    run = copy_run(finished, tmp_path)
    before = snapshot(run)
    import ebmlab.atomic as atomic
    import ebmlab.runs as runs

    def failing(path, write_fn):
        raise OSError(err, "simulated", str(path))

    monkeypatch.setattr(atomic, "atomic_write_bytes", failing)  # JSON files
    monkeypatch.setattr(runs, "atomic_write_bytes", failing)  # checkpoints
    code = main(["train", "gan", "--data", "ring8", "--out", str(run), "--steps", "5", "--no-progress", *TINY])
    out = capsys.readouterr().err
    assert code == 2 and words in out and "Traceback" not in out
    after = snapshot(run)
    assert after["checkpoint.pt"] == before["checkpoint.pt"] and after["config.json"] == before["config.json"]


TORCH_WRITE_FAILURES = [  # what torch.save raises when the disk fills, by version and point of failure
    "[enforce fail at inline_container.cc:783] . PytorchStreamWriter failed writing file data/3: file write failed",
    "[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0",
]


@pytest.mark.parametrize("command, message", [("train", m) for m in TORCH_WRITE_FAILURES] + [
    ("bench", TORCH_WRITE_FAILURES[1])])
def test_full_disk_inside_torch_save(monkeypatch, finished, tmp_path, capsys, command, message):
    """torch.save reports a failed write as a RuntimeError, not an OSError, in words that vary: the disk being full
    is recognised by its cause (the file system's free space), and ends as 'the disk is full' with exit 2 and the
    previous checkpoint kept."""
    import os

    import ebmlab.runs as runs

    def failing_save(obj, f, *a, **k):
        f.write(b"PK\x03\x04partial")
        raise RuntimeError(message)

    class Full:
        f_bavail, f_frsize = 10, 4096

    monkeypatch.setattr(runs.torch, "save", failing_save)
    monkeypatch.setattr(os, "statvfs", lambda path: Full())
    if command == "train":
        run = copy_run(finished, tmp_path)
        before = snapshot(run)
        code = main(["train", "gan", "--data", "ring8", "--out", str(run), "--steps", "5", "--no-progress", *TINY])
        after = snapshot(run)
        assert after["checkpoint.pt"] == before["checkpoint.pt"]
        assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    else:
        code = main(["bench", "toy", "--methods", "gan", "--data", "ring8", "--seeds", "1", "--steps", "2",
                     "--out", str(tmp_path / "b"), *TINY])
    err = capsys.readouterr().err
    assert code == 2 and "disk is full" in err and "Traceback" not in err


def test_a_torch_error_on_a_disk_with_room_is_not_called_a_full_disk(monkeypatch, tmp_path):
    """The same RuntimeError with free space left is not a full disk: it is raised as it was."""
    import ebmlab.runs as runs

    def failing_save(obj, f, *a, **k):
        raise RuntimeError(TORCH_WRITE_FAILURES[1])

    monkeypatch.setattr(runs.torch, "save", failing_save)
    with pytest.raises(RuntimeError, match="unexpected pos"):
        runs.RunDir(tmp_path / "r").save_checkpoint({"a": 1})
    assert not [p for p in (tmp_path / "r").iterdir() if p.name.endswith(".tmp")]


def test_allocation_failure(monkeypatch, tmp_path, capsys):
    import ebmlab.trainer as trainer

    def huge(*a, **k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you "
                           "tried to allocate 51200000000 bytes")

    monkeypatch.setattr(trainer, "build_method", huge)
    assert main(["train", "gan", "--data", "ring8", "--out", str(tmp_path / "r"), *TINY]) == 2
    err = capsys.readouterr().err
    assert "out of memory" in err and "batch_size" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("call,words", [
    (lambda: ebmlab.train(123, "ring8"), "method"),
    (lambda: ebmlab.train("gan", 8), "data"),
    (lambda: ebmlab.train("gan", "ring8", out=5), "out"),
    (lambda: ebmlab.train("gan", "ring8", overrides=["steps=3"]), "overrides"),
    (lambda: ebmlab.train("gan", "ring8", overrides={"steps": "three"}), "steps"),
    (lambda: __import__("ebmlab.api").api.inpaint_run("x", 5), "out"),
    (lambda: __import__("ebmlab.api").api.inpaint_run("x", "i.png", mask=3), "mask"),
    (lambda: __import__("ebmlab.api").api.inpaint_run("x", "i.png", fraction="half"), "fraction"),
    (lambda: ebmlab.train("gan", "ring8", overrides={"lr_g": float("nan")}), "lr_g"),
    (lambda: ebmlab.sample_run("/nonexistent/run", 5), "does not exist"),
    (lambda: __import__("ebmlab.samplers.latent").samplers.latent.GuidedConfig(mcmc_steps=-5), "mcmc_steps"),
    (lambda: __import__("ebmlab.samplers.latent").samplers.latent.GuidedConfig(inverse_temperature=float("nan")),
     "inverse_temperature"),
])
def test_python_api_argument_errors(call, words, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ebmlab.EbmlabError, match=words):
        call()
    assert not (tmp_path / "runs").exists()


def test_a_users_data_file_changed_since_the_run_is_refused(tmp_path, capsys):
    data = tmp_path / "u.npy"
    first = np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32)
    np.save(data, first)
    run = tmp_path / "r"
    train = ["train", "gan", "--data", str(data), "--steps", "2", "--out", str(run), "--no-progress", *TINY]
    assert main(train) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert len(cfg["data_sha256"]) == 64
    np.save(data, first[::-1].copy())  # the same values in another order: another training split
    before = snapshot(run)
    for argv in (["eval", str(run)], ["sample", str(run), "-n", "5", "--out", str(tmp_path / "s.npy")],
                 train[:5] + ["4"] + train[6:]):
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "u.npy has changed since the run" in err and cfg["data_sha256"][:12] in err, err
    assert snapshot(run) == before and not (tmp_path / "s.npy").exists()
    np.save(data, first)  # restored: the run is usable again
    assert main(["eval", str(run)]) == 0
    # a run written before the hash was recorded is not checked
    del cfg["data_sha256"]
    (run / "config.json").write_text(json.dumps(cfg))
    np.save(data, first[::-1].copy())
    assert main(["eval", str(run)]) == 0
    # built-in data sets are named, not hashed
    assert main(["train", "gan", "--data", "ring8", "--steps", "2", "--out", str(tmp_path / "t"), "--no-progress",
                 *TINY]) == 0
    assert "data_sha256" not in json.loads((tmp_path / "t" / "config.json").read_text())


def test_a_run_on_a_relative_data_path_is_used_from_another_directory(tmp_path, monkeypatch, capsys):
    (tmp_path / "work").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    np.save("u.npy", np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32))
    assert main(["train", "gan", "--data", "u.npy", "--steps", "2", "--out", "r", "--no-progress", *TINY]) == 0
    assert main(["eval", "r"]) == 0  # where it was trained: the path as it is
    assert "gan on u.npy at step 2" in capsys.readouterr().out
    monkeypatch.chdir(tmp_path / "elsewhere")
    np.save("u.npy", np.zeros((50, 3), np.float32))  # another file of that name here: not the run's
    run = str(tmp_path / "work" / "r")
    capsys.readouterr()
    assert main(["eval", run]) == 0  # found where the run was trained (run.json's cwd), its hash checked
    assert f"on {tmp_path / 'work' / 'u.npy'} at step 2" in capsys.readouterr().out
    (tmp_path / "elsewhere" / "u.npy").unlink()
    (tmp_path / "work" / "u.npy").rename(tmp_path / "work" / "v.npy")
    assert main(["sample", run, "-n", "5", "--out", "s.npy"]) == 2
    err = capsys.readouterr().err
    assert f"was trained on u.npy (relative to {tmp_path / 'work'}, where it was trained)" in err
    assert not (tmp_path / "elsewhere" / "s.npy").exists()


def test_a_killed_sample_leaves_nothing_for_good(finished, tmp_path):
    """A SIGKILL while `sample` wrote left its temporary (a file, or a folder of PNGs) beside the output for good;
    the next `sample` to the same --out removes it. Another output's temporaries and other files stay."""
    folder_left = tmp_path / ".gen.npy.abcd_123.tmp"  # as tempfile.mkdtemp names one (a folder output)
    folder_left.mkdir()
    (folder_left / "000000.png").write_bytes(b"partial")
    file_left = tmp_path / ".gen.npy.x9y8z7w6.tmp"  # as atomic_write_bytes names one
    file_left.write_bytes(b"partial")
    other = tmp_path / ".gen2.npy.abcd_123.tmp"
    other.write_bytes(b"another output's")
    keep = tmp_path / ".gen.npy.notes"
    keep.write_text("mine")
    assert main(["sample", str(finished / "gan"), "-n", "4", "--out", str(tmp_path / "gen.png")]) == 0
    assert folder_left.exists() and file_left.exists()  # another output's name: not its temporaries
    assert main(["sample", str(finished / "gan"), "-n", "4", "--out", str(tmp_path / "gen.npy")]) == 0
    assert not folder_left.exists() and not file_left.exists()
    assert other.exists() and keep.read_text() == "mine" and np.load(tmp_path / "gen.npy").shape == (4, 2)


def test_a_second_writer_waits_for_the_first(tmp_path):
    """atomic.sole_writer: while one process holds an output, a second one waits (its clean-up cannot remove the
    first one's temporaries)."""
    import subprocess
    import sys
    import time

    from ebmlab.atomic import sole_writer

    code = ("import sys, time; from ebmlab.atomic import sole_writer\n"
            "with sole_writer(sys.argv[1], 'out'):\n    print('held', flush=True); time.sleep(1.5)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    live = tmp_path / ".out.abcdefgh.tmp"
    live.write_text("the holder's")
    t0 = time.perf_counter()
    with sole_writer(tmp_path, "out"):
        waited = time.perf_counter() - t0
    holder.wait(timeout=30)
    holder.stdout.close()
    assert waited > 0.5 and not live.exists()  # removed only once the holder had let go
