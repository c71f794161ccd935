"""Every method trains on images (digits, a stacked set), on binary images and on a user's .npz, through the
same data interface; networks are chosen by the data kind."""

import numpy as np
import pytest
import torch

import ebmlab
from ebmlab.data import get_dataset
from ebmlab.data.batches import make_batches
from ebmlab.methods import METHODS
from ebmlab.trainer import build_method
from ebmlab.config import resolve_config

SMALL = {"width": 8, "z_dim": 4}
EXTRA = {"lbt": {"est_z_dim": 4}, "lbt_gan": {"est_z_dim": 4}, "kale": {"n_critic_burst": 2},
         "vae": {"z_dim": 4}, "vgan_vcd": {"z_dim": None},
         "bihm": {"width": None, "z_dim": None, "layers": (8, 4)}, "rws": {"width": None, "z_dim": None, "layers": (8, 4)},
         "ebgan_ln": {"width": None, "hidden": (16, 8), "g_hidden": (16,), "labels": 20, "labelled_batch": 16}}


def _steps(method_name: str, data: str, n: int = 2, **extra):
    over = {**SMALL, **EXTRA.get(method_name, {}), "batch_size": 16, "seed": 0, **extra}
    over = {k: v for k, v in over.items() if v is not None}
    cfg = resolve_config(method_name, data, overrides=over)
    m = build_method(cfg, torch.device("cpu"))
    ds = get_dataset(data)
    batches = make_batches(ds, "auto", 16, 0)
    for step, x in zip(range(1, n + 1), batches.stream(0, n)):
        out = m.train_step(x, step)
        assert all(np.isfinite(float(v)) for v in out.values()), out
    m.train(False)
    with torch.no_grad():
        s = m.sample(5, generator=torch.Generator().manual_seed(0))
    return m, ds, s


@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize("data", ["digits", "stacked_digits"])
def test_every_method_on_images(name, data):
    if METHODS[name].data_kinds is not None and "image" not in METHODS[name].data_kinds:
        with pytest.raises(ebmlab.EbmlabError, match="of kind 'image'"):
            _steps(name, data)
        return
    # a semi-supervised method takes one label per class of the 1000 of a stacked set
    m, ds, s = _steps(name, data, **({"labels": 1000} if METHODS[name].needs_labels and data == "stacked_digits"
                                     else {}))
    assert s.shape == (5, *ds.shape) and torch.isfinite(s).all()
    lo, hi = ds.spec.value_range
    if name not in ("vae",):  # a Gaussian decoder's means are not confined to the range
        assert float(s.min()) >= lo - 1e-6 and float(s.max()) <= hi + 1e-6
    if m.has_energy:
        e = m.energy(ds.test[:3])
        assert e.shape == (3,) and torch.isfinite(e).all()


@pytest.mark.parametrize("name", ["gan", "vae", "bib_mi_diff", "ebgan_pt", "bihm", "rws"])
def test_methods_on_binary_images(name):
    m, ds, s = _steps(name, "digits_dynbin")
    assert ds.kind == "binary" and s.shape == (5, 1, 8, 8)
    if name == "vae":
        assert m.config.decoder == "bernoulli"  # the binary preset


def test_conv_nets_chosen_by_kind_and_mlp_on_request():
    conv = build_method(resolve_config("gan", "digits"), torch.device("cpu"))
    assert any(isinstance(mod, torch.nn.Conv2d) for mod in conv.D.modules())
    mlp = build_method(resolve_config("gan", "digits", overrides={"net": "mlp"}), torch.device("cpu"))
    assert not any(isinstance(mod, torch.nn.Conv2d) for mod in mlp.D.modules())
    with pytest.raises(ebmlab.EbmlabError, match="dcgan"):
        build_method(resolve_config("gan", "digits", overrides={"net": "dcgan"}), torch.device("cpu"))


@pytest.fixture
def user_npz(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "mine.npz"
    np.savez(p, x=rng.normal(size=(200, 6)).astype(np.float32) @ rng.normal(size=(6, 6)).astype(np.float32))
    return str(p)


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_on_user_vectors(name, user_npz):
    if METHODS[name].data_kinds is not None and "vectors" not in METHODS[name].data_kinds:
        with pytest.raises(ebmlab.EbmlabError, match="of kind 'vectors'"):
            _steps(name, user_npz)
        return
    if METHODS[name].needs_labels:  # the file has no y_train
        with pytest.raises(ebmlab.EbmlabError, match="no class labels"):
            _steps(name, user_npz, width=None)
        return
    m, ds, s = _steps(name, user_npz, **({"width": None} if name != "vgan_vcd" else {"width": None}))
    assert ds.kind == "vectors" and s.shape == (5, 6)


def test_full_run_on_images_writes_grid_and_image_metrics(tmp_path, monkeypatch):
    from ebmlab.metrics.classifier import train_classifier

    monkeypatch.setenv("EBMLAB_CLASSIFIERS", str(tmp_path / "clf"))
    train_classifier(get_dataset("digits"), epochs=10, progress=False)  # (the evaluation would train a longer one)
    res = ebmlab.train("gan", "digits", out=tmp_path / "run",
                       overrides={"steps": 4, "batch_size": 16, "eval_samples": 60, "width": 8, "loggers": ""})
    m = res.summary["metrics"]
    for k in ("clf_fd", "clf_kid", "clf_precision", "clf_recall", "clf_density", "clf_coverage", "clf_score"):
        assert np.isfinite(m[k]) and k in res.summary["real_vs_real"]
    assert res.summary["real_vs_real"]["clf_fd"] < m["clf_fd"]  # 4 steps of training are far from real data
    assert (tmp_path / "run" / "plots" / "samples.png").is_file()
    assert "domain classifier" in res.summary["protocol"]["features"]
    again = ebmlab.evaluate_run(tmp_path / "run")
    assert again["metrics"]["clf_fd"] == pytest.approx(m["clf_fd"])


def test_full_run_on_user_vectors(tmp_path, user_npz):
    res = ebmlab.train("vae", user_npz, out=tmp_path / "v", overrides={"steps": 5, "eval_samples": 40, "batch_size": 32,
                                                                        "loggers": ""})
    for k in ("mmd2", "sw1", "w1", "nll_iwae"):
        assert np.isfinite(res.summary["metrics"][k])


@pytest.mark.parametrize("name,net", [("gan", "conv"), ("gan", "mlp"), ("vgan", "conv"), ("kale", "mlp"),
                                      ("bib", "conv"), ("ebgan", "conv"), ("vae", "conv"), ("vgan_vcd", "conv")])
def test_features_for_the_probe(name, net):
    over = {"net": net, "width": 8}
    if name != "vgan_vcd":
        over["z_dim"] = 4
    m = build_method(resolve_config(name, "digits", overrides=over), torch.device("cpu"))
    f = m.features(get_dataset("digits").test[:7])
    assert f.dim() == 2 and f.shape[0] == 7 and torch.isfinite(f).all()


@pytest.mark.parametrize("name", ["gan", "bib", "kale"])
def test_dcgan_pair_on_32x32_images(name, tmp_path):
    p = tmp_path / "rgb32.npy"
    np.save(p, np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8))
    m, ds, s = _steps(name, str(p), net="dcgan", width=8)
    assert ds.shape == (3, 32, 32) and s.shape == (5, 3, 32, 32)
    assert type(m.G).__name__ == "DCGANGenerator"


@pytest.mark.parametrize("name", ["gan", "vgan"])
def test_generator_samples_in_blocks_equal_one_call(name, tmp_path):
    """On the CPU a generator method draws all of the noise, then runs G on blocks of 128 images of 28×28 or more
    (``forward_rows``): the samples are those of one call on the same noise."""
    path = tmp_path / "imgs.npy"
    np.save(path, np.random.default_rng(0).integers(0, 256, (64, 28, 28), dtype=np.uint8))
    m = build_method(resolve_config(name, str(path), overrides={"width": 8}), torch.device("cpu"))
    assert m.forward_rows == 128
    for net in m.networks.values():
        net.eval()
    x = m.sample(300, generator=torch.Generator().manual_seed(2))  # blocks of 128, 128, 44
    with torch.no_grad():
        y = m.G(m.noise(300, m.config.z_dim, torch.Generator().manual_seed(2)))
    assert x.shape == (300, 1, 28, 28) and float(x.std()) > 0
    torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-7)
