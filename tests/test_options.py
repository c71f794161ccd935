"""The option catalogue, the option listing, the echoed configuration, run records and the light CLI start-up."""

import dataclasses
import json
import os
import stat
import subprocess
import sys
from importlib import resources

import pytest

import ebmlab
from ebmlab.cli import main, options_listing
from ebmlab.methods import METHODS
from ebmlab.config import RunConfig, load_toml, resolve_config
from ebmlab.errors import EbmlabError
from ebmlab.options import RUN, SHARED, entry, problems

DATA_FOR = {n: ("digits" if c.needs_labels else "digits_bin" if c.data_kinds == ("binary",) else "ring8")
            for n, c in METHODS.items()}


def test_every_option_has_a_range_and_meaning_and_every_entry_an_option():
    run_names = {f.name for f in dataclasses.fields(RunConfig)}
    assert set(RUN) == run_names
    method_names: set[str] = set()
    for cls in METHODS.values():
        names = {f.name for f in dataclasses.fields(cls.Config)}
        for name in names:
            kind, desc = entry(name, cls)
            assert desc and kind, f"{cls.name}.{name}"
        own = cls.__dict__.get("options", {})
        assert set(own) <= names, f"{cls.name}: entries of no option {set(own) - names}"
        method_names |= names
    assert set(SHARED) <= method_names, f"shared entries of no option: {set(SHARED) - method_names}"


def test_an_option_without_metadata_is_refused_with_where_to_add_it(monkeypatch):
    """A new method whose Config has an option nobody described: a clear message, not a KeyError traceback."""
    from ebmlab.methods.gan import GAN, GANConfig

    @dataclasses.dataclass(frozen=True)
    class Cfg(GANConfig):
        brand_new: int = 3

    class New(GAN):
        name = "new_gan"
        Config = Cfg

    METHODS.register("new_gan", New, source="a test")  # forgotten after the test
    with pytest.raises(EbmlabError, match="brand_new.*OPTIONS table of Cfg"):
        resolve_config("new_gan", "ring8")
    assert main(["train", "new_gan", "--data", "ring8", "--out", "/nonexistent/never"]) == 2


def test_defaults_and_every_preset_are_in_range():
    assert problems(RunConfig()) == []
    for cls in METHODS.values():
        assert problems(cls.Config(), cls) == [], cls.name
    root = resources.files("ebmlab") / "presets"
    files = [f for f in root.iterdir() if f.is_file()] + [f for d in root.iterdir() if d.is_dir()
                                                           for f in d.iterdir() if f.name.endswith(".toml")]
    for f in files:  # the presets and every settings set's files (presets/<settings>/)
        method = next(n for n in sorted(METHODS, key=len, reverse=True) if f.name.startswith(n))
        table = load_toml(str(f))
        cls = METHODS[method]
        from ebmlab.config import apply_overrides

        assert problems(apply_overrides(cls.Config(), table.get("method", {})), cls) == [], f.name
        assert problems(apply_overrides(RunConfig(), table.get("run", {}))) == [], f.name


def _parse_listing(text: str) -> dict[str, tuple[str, str]]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if line.startswith("  ") and len(parts) >= 3 and parts[2].startswith("["):
            source = line[line.index("[") + 1:line.index("]")]
            out[parts[0]] = (parts[1], source)
    return out


@pytest.mark.parametrize("method", ["vgan", "kale", "bib_onesided", "lbt", "vae", "bihm"])
def test_listing_equals_the_resolved_configuration(method):
    data = DATA_FOR[method] if method != "vgan" else "ring8"
    cfg = resolve_config(method, data)
    listed = _parse_listing(options_listing(method, data))
    for section in (cfg.run, cfg.method_config):
        for f in dataclasses.fields(section):
            v = getattr(section, f.name)
            shown = ",".join(map(str, v)) if isinstance(v, tuple) else repr(v) if isinstance(v, str) else str(v)
            assert listed[f.name] == (shown, cfg.source(f.name)), f.name
    if method == "vgan":  # the values once misreported: the presets', not the class defaults
        assert listed["act"] == ("'elu'", "preset vgan") and listed["n_experts"][0] == "32"


def test_train_echoes_the_resolved_configuration(tmp_path, capsys):
    assert main(["train", "kale", "--data", "ring8", "--steps", "1", "--out", str(tmp_path / "k"), "--no-progress",
                 "mcmc_steps=2", "eval_samples=100", "eval_density=false", "plots=false", "loggers="]) == 0
    out = capsys.readouterr().out
    assert "presets applied: kale" in out and "mcmc_steps=2 [cli]" in out and "steps=1 [cli]" in out


def test_run_record(tmp_path):
    old = os.umask(0o022)
    try:
        ebmlab.train("gan", "ring8", out=tmp_path / "r", progress=False,
                     overrides={"steps": 2, "eval_samples": 100, "plots": False, "loggers": "",
                                "eval_density": False})
    finally:
        os.umask(old)
    rec = json.loads((tmp_path / "r" / "run.json").read_text())["sessions"][-1]
    for key in ("command", "ebmlab_version", "git_commit", "torch_version", "python", "device", "threads", "started",
                "ended", "steps_per_s", "start_step", "end_step"):
        assert key in rec, key
    assert rec["end_step"] == 2 and rec["steps_per_s"] > 0 and rec["status"] == "ended"
    for f in ("config.json", "checkpoint.pt", "summary.json", "run.json", "metrics.jsonl"):
        assert (tmp_path / "r" / f).stat().st_mode & stat.S_IRGRP, f"{f} is not group-readable"


def test_progress_bar_metrics_are_logged_by_each_method():
    import torch

    from ebmlab.data import get_dataset
    from ebmlab.trainer import build_method

    for name, cls in METHODS.items():
        assert cls.progress_keys, name
        cfg = resolve_config(name, DATA_FOR[name], overrides={"batch_size": 8})
        m = build_method(cfg)
        out = m.train_step(get_dataset(DATA_FOR[name]).train[:8].to(torch.get_default_dtype()), 1)
        assert set(cls.progress_keys) <= set(out), name


def test_import_and_help_do_not_import_torch():
    code = "import sys, ebmlab, ebmlab.cli; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    code = ("import sys; from ebmlab.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules, file=sys.stderr)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stderr.strip() == "False"
    assert callable(ebmlab.train) and ebmlab.RunConfig is RunConfig  # the lazy names resolve to the real objects


def test_run_directories_with_a_renamed_option_still_load(tmp_path):
    """BiB's eval_samples (shared with the run option of that name) became bound_samples; old runs resume."""
    from ebmlab.config import config_from_dict

    d = resolve_config("bib_onesided", "ring8", overrides={"steps": 1}).to_dict()
    d["method_config"]["eval_samples"] = d["method_config"].pop("bound_samples") + 1
    assert config_from_dict(d).method_config.bound_samples == 2001


def test_no_option_name_is_both_a_run_and_a_method_option():
    run = {f.name for f in dataclasses.fields(RunConfig)}
    for cls in METHODS.values():
        assert not run & {f.name for f in dataclasses.fields(cls.Config)}, cls.name


def test_choice_options_are_exactly_the_literal_fields_and_list_their_choices():
    """An option's range kind is ``choice`` exactly where its field is typed ``Literal[...]`` (or a tuple of one),
    for the run options and every registered method's; its described meaning ends with the field's choices, read
    from the type, so a new choice is one edit of the Literal."""
    import dataclasses
    import typing

    from ebmlab import options
    from ebmlab.config import RunConfig
    from ebmlab.methods import METHODS

    seen = 0
    for cls, method in [(RunConfig, None)] + [(m.Config, m) for m in METHODS.values()]:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            kind = options.entry(f.name, method)[0]
            allowed = options.literal_choices(hints[f.name])
            assert (kind == "choice") == (allowed is not None), (cls.__name__, f.name, kind)
            if allowed:
                seen += 1
                assert options.describe(f.name, method, cls).endswith("[" + " | ".join(map(str, allowed)) + "]")
    assert seen >= 40
    assert options.choices("sampler", METHODS["kale"].Config) == ("kinetic", "ula", "mala", "hmc", "none")
    assert options.choices("loggers", RunConfig) == ("tensorboard", "mlflow", "wandb")
    assert options.choices("lr_g", METHODS["gan"].Config) is None
