import pytest

from ebmlab.errors import EbmlabError
from ebmlab.config import resolve_config


def test_overrides_are_typed_and_routed():
    cfg = resolve_config("vgan", "ring8", overrides={"steps": "20", "lr_g": "3e-4", "g_hidden": "64,32", "optimizer": "adadelta"})
    assert cfg.run.steps == 20
    assert cfg.method_config.lr_g == 3e-4
    assert cfg.method_config.g_hidden == (64, 32)
    assert cfg.method_config.optimizer == "adadelta"


@pytest.mark.parametrize("over, msg", [
    ({"lr": "1e-3"}, r"unknown option 'lr' for method vgan; did you mean 'lr_g'\? \(every option"),
    ({"lr_g": "fast"}, "option lr_g: expected a number, got 'fast'"),
    ({"steps": "1.5"}, "option steps: expected an integer"),
    ({"optimizer": "sgd"}, "option optimizer: expected one of 'adam', 'adadelta'"),
    ({"plots": "maybe"}, "option plots: expected true or false"),
])
def test_bad_overrides_say_what_was_expected(over, msg):
    with pytest.raises(EbmlabError, match=msg):
        resolve_config("vgan", "ring8", overrides=over)


def test_config_file_tables(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[run]\nsteps = 7\n[method]\nk_gen = 3\n")
    cfg = resolve_config("vgan", "grid25", config_file=f)
    assert cfg.run.steps == 7 and cfg.method_config.k_gen == 3
    f.write_text("[model]\nk_gen = 3\n")
    with pytest.raises(EbmlabError, match=r"unknown table\(s\) \['model'\]"):
        resolve_config("vgan", "grid25", config_file=f)
    with pytest.raises(EbmlabError, match="does not exist"):
        resolve_config("vgan", "grid25", config_file=tmp_path / "missing.toml")


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(EbmlabError, match=r"unknown method 'vgann'; did you mean 'vgan'\? \(valid methods: gan, vgan"):
        resolve_config("vgann", "ring8")
