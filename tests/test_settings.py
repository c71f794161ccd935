"""Named settings sets (run option ``settings``): the papers' released settings over ebmlab's presets, each value with
the release file it comes from; what a set applies, in which order, and what it refuses."""

import tomllib
from importlib import resources
from pathlib import Path

import pytest

from ebmlab.cli import main
from ebmlab.config import resolve_config, settings_names, settings_sources
from ebmlab.errors import EbmlabError


def _files():
    root = Path(str(resources.files("ebmlab") / "presets" / "paper"))
    return sorted(root.glob("*.toml"))


def test_every_value_of_a_settings_file_names_its_source_and_every_source_a_value():
    files = _files()
    assert {f.stem for f in files} >= {"lbt_toy2d", "lbt_image", "lbt_gan_toy2d", "lbt_gan_image", "bib_toy2d",
                                       "bib_image", "kale_image", "vgan_image", "vgan_vcd_image"}
    for f in files:
        d = tomllib.loads(f.read_text())
        values = set(d.get("run", {})) | set(d.get("method", {}))
        assert values and values == set(d["source"]), f.name
        assert all(isinstance(v, str) and v for v in d["source"].values()), f.name


@pytest.mark.parametrize("method, data, expect", [
    ("lbt", "stacked_fashion", {"unroll_steps": 5, "n_est": 3, "lr_est": 1e-4, "z_dim": 256, "clip_g": None}),
    ("lbt", "ring8", {"unroll_steps": 5, "n_est": 2, "lr_est": 1e-4, "est_decoder_var": 1e-3, "clip_g": 5.0}),
    ("lbt", "grid100", {"n_est": 3, "est_batch": 2048}),
    ("lbt_gan", "stacked_fashion", {"lambda_gan": 1.0, "warmup_steps": 3000, "lr_d": 1e-4}),
    ("bib", "stacked_fashion32", {"lr_g": 5e-5, "z_dim": 128, "beta1": 0.0, "data_gp_weight": 0.0,
                                  "share_jacobian": True, "net": "ebmbb32", "width": 64}),
    ("bib", "grid25", {"lr_g": 2e-4, "beta2": 0.9, "adam_eps": 1e-6}),
    ("kale", "stacked_fashion32", {"inverse_temperature": 100.0, "mcmc_steps": 1000, "mcmc_step_size": 1e-4,
                                   "sampler": "ula", "mcmc_decay_every": 200, "z_dim": 100}),
    ("vgan", "stacked_fashion", {"optimizer": "adadelta", "lr_g": 0.1, "n_experts": 128, "k_gen": 2}),
    ("vgan_vcd", "stacked_fashion", {"optimizer": "adadelta", "rho": 0.1}),
])
def test_the_papers_settings_resolve_over_the_presets(method, data, expect):
    cfg = resolve_config(method, data, overrides={"settings": "paper"})
    for k, v in expect.items():
        assert getattr(cfg.method_config, k) == v, k
        assert cfg.source(k).startswith("settings paper/"), (k, cfg.source(k))
    plain = resolve_config(method, data)
    if (method, data) not in (("lbt", "ring8"), ("lbt", "grid100")):  # LBT's toy defaults and grid preset are the release's
        assert any(getattr(plain.method_config, k) != v for k, v in expect.items())  # the presets differ
    # a key=value still wins over the set, and the sources name the release's files
    cfg = resolve_config(method, data, overrides={"settings": "paper", "seed": 3})
    assert cfg.run.seed == 3 and cfg.run.settings == "paper"
    sources = settings_sources("paper", method, data, cfg.dataset.kind)
    assert all(k in sources for k in expect) and all(".py" in s or ".yaml" in s or ".md" in s or ".sh" in s
                                                     for s in sources.values())


def test_the_toy_and_image_settings_do_not_mix():
    toy = resolve_config("lbt", "ring8", overrides={"settings": "paper"})
    img = resolve_config("lbt", "stacked_fashion", overrides={"settings": "paper"})
    assert toy.presets == ("paper/lbt_toy2d",) and "paper/lbt_toy2d" not in img.presets
    assert img.method_config.clip_g is None and toy.method_config.clip_g == 5.0


def test_unknown_or_absent_settings_are_refused():
    assert settings_names() == ["ebmlab", "paper"]
    with pytest.raises(EbmlabError, match="did you mean 'paper'"):
        resolve_config("lbt", "ring8", overrides={"settings": "papr"})
    with pytest.raises(EbmlabError, match="has nothing for gan"):
        resolve_config("gan", "ring8", overrides={"settings": "paper"})
    with pytest.raises(EbmlabError, match="settings must be"):
        resolve_config("lbt", "ring8", overrides={"settings": 3})
    assert resolve_config("gan", "ring8", overrides={"settings": "ebmlab"}).presets == ()


def test_list_shows_each_released_value_with_its_file(capsys):
    assert main(["list", "--options", "kale", "--data", "stacked_fashion32", "--settings", "paper"]) == 0
    out = capsys.readouterr().out
    assert "[settings paper/kale_image]" in out and "from the release: main.py: --temperature 100" in out
    assert main(["list", "--settings", "paper"]) == 2
    assert "--options" in capsys.readouterr().err
