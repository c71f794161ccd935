"""A run's configuration: the run options, presets, and their resolution into one :class:`ResolvedConfig`.

Each method's ``Config`` dataclass lives beside the method; the run options are :class:`RunConfig` here. Options
arrive as ``key=value`` strings (CLI), a dict (Python API) or TOML tables; all go through :func:`apply_overrides`,
which rejects unknown keys (listing the valid ones) and values of the wrong type, and
``ebmlab.options.validate`` checks ranges. Nothing is written before the whole configuration is accepted.

Resolution order: the method's Config defaults → ``presets/<method>.toml`` → ``presets/<method>_<kind>.toml`` →
``presets/<method>_<data>.toml`` → a named settings set (run option ``settings``, e.g. ``paper``: the files
``presets/<settings>/`` holds under the same names, in the same order) → ``--config FILE`` → ``key=value``
overrides. A file has ``[run]`` and ``[method]`` tables (a settings file also ``[source]``: where each value comes
from); a flat override goes to whichever of the two has that key.

The presets are ebmlab's settings for the budgets its benchmarks afford; a settings set is another coherent set,
``paper`` being each paper's released code (its file and argument named for every value), so that a comparison can
run at the authors' settings at any scale (:func:`settings_names`, :func:`settings_sources`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field, fields
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from .errors import EbmlabError, did_you_mean
from .metadata import Device
from .atomic import read_json
from .runs import RunDir


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert ``value`` (a string from the command line, or a TOML/JSON value) to the field type ``tp``."""
    origin = get_origin(tp)
    if origin is Literal:
        allowed = get_args(tp)
        if value in allowed:
            return value
        raise EbmlabError(f"option {key}: expected one of {', '.join(map(repr, allowed))}, got {value!r}")
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        if len(args) == 1:
            return coerce(value, args[0], key)
        literal_first = sorted(args, key=lambda a: not _type_name(a).startswith("one of"))  # exact words, then the rest
        for tp_ in literal_first:
            with contextlib.suppress(EbmlabError):
                return coerce(value, tp_, key)
        raise EbmlabError(f"option {key}: expected {' or '.join(_type_name(a) for a in args)}, got {value!r}")
    if origin is tuple:
        return _coerce_tuple(value, get_args(tp), key)
    if tp in _SCALARS:
        return _SCALARS[tp](value, key)
    raise TypeError(f"unsupported config field type {tp!r} for {key}")


def _coerce_tuple(value: Any, args: tuple[Any, ...], key: str) -> tuple[Any, ...]:
    items = [v for v in value.strip("()[] ").split(",") if v.strip()] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise EbmlabError(f"option {key}: expected a comma-separated list, got {value!r}")
    elem = args[0] if args else str
    return tuple(coerce(v.strip() if isinstance(v, str) else v, elem, key) for v in items)


def _coerce_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
        return False
    raise EbmlabError(f"option {key}: expected true or false, got {value!r}")


def _coerce_int(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise EbmlabError(f"option {key}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise EbmlabError(f"option {key}: expected an integer, got {value!r}") from None
    if not f.is_integer():
        raise EbmlabError(f"option {key}: expected an integer, got {value!r}")
    return int(f)


def _coerce_float(value: Any, key: str) -> float:
    if isinstance(value, bool):
        raise EbmlabError(f"option {key}: expected a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise EbmlabError(f"option {key}: expected a number, got {value!r}") from None


def _coerce_str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise EbmlabError(f"option {key}: expected a string, got {value!r}")
    return value


_SCALARS: dict[Any, Any] = {bool: _coerce_bool, int: _coerce_int, float: _coerce_float, str: _coerce_str}


def field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def apply_overrides(cfg: Any, overrides: dict[str, Any], *, what: str = "config") -> Any:
    """Return a copy of the dataclass ``cfg`` with ``overrides`` applied, type-checked."""
    types_ = field_types(type(cfg))
    changes = {}
    for key, value in overrides.items():
        if key not in types_:
            valid = ", ".join(sorted(types_))
            raise EbmlabError(f"unknown option {key!r} for {what}{did_you_mean(key, types_)} (valid options: {valid})")
        changes[key] = coerce(value, types_[key], key)
    return dataclasses.replace(cfg, **changes)


def parse_override_strings(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise EbmlabError(f"override {item!r} is not of the form key=value (e.g. lr=1e-3)")
        key, value = item.split("=", 1)
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise EbmlabError(f"config file {path} does not exist; pass the path of a TOML file")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise EbmlabError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise EbmlabError(f"config file {path} is not UTF-8 text; save it as UTF-8 TOML") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def describe(cls: type) -> list[tuple[str, str, Any]]:
    """(name, type, default) for each field: used by ``ebmlab list --options``."""
    return [(f.name, _type_name(t), getattr(cls(), f.name)) for f, t in zip(dataclasses.fields(cls), field_types(cls).values())]


# --- the run options and their resolution ------------------------------------------------------------------------
@dataclass(frozen=True)
class RunConfig:
    """Options of a run that every method shares; their meanings and ranges: ``ebmlab.options.RUN``."""
    steps: int = 5000
    batch_size: int = 256
    seed: int = 0
    log_every: int = 50
    eval_every: int = 0  # 0: evaluate only at the end
    eval_spacing: Literal["even", "log"] = "even"  # log: at eval_every × 1, 2, 4, 8, … (is_eval_step)
    keep_best: str = ""  # a metric: the evaluation's model that scored best on it is kept as best.pt ('' none)
    metrics: tuple[str, ...] = ("all",)  # the metrics to report (all: every one); density computed only if named
    ckpt_every: int = 1000
    keep_checkpoints: bool = False  # a checkpoint kept at every evaluation during training: RUN_DIR/checkpoints
    eval_samples: int = 2500
    eval_density: bool = True
    eval: Literal["full", "quick", "none"] = "full"
    device: Device = "auto"  # auto: CUDA when this machine has it
    threads: int = 0  # torch CPU threads; 0: torch's setting (all cores unless the caller set it), 1 on 2D toys
    tensorboard: bool = True
    loggers: tuple[Literal["tensorboard", "mlflow", "wandb"], ...] = ("tensorboard",)
    plots: bool = True
    data_dir: str = ""  # where local copies of MNIST/CIFAR-10 live (else the EBMLAB_DATA environment variable)
    image_size: int = 0  # a user's image folder is resized to this side (0: keep the images' own size)
    batches: Literal["auto", "epochs", "iid", "balanced"] = "auto"  # auto: iid for toy2d (as always), else epochs
    num_workers: int = 0  # > 0: batches are prepared by a DataLoader with this many worker processes
    # the training split held on the training device, batches drawn there (ebmlab.data.batches); auto: on CUDA when
    # it fits in a quarter of the free device memory
    data_on_device: Literal["auto", "on", "off"] = "auto"
    # the training recipe shared by all methods (ebmlab.recipe)
    lr_schedule: Literal["constant", "linear", "cosine", "step"] = "constant"
    lr_decay_start: int = 0
    lr_end_factor: float = 0.0
    lr_step_every: int = 0
    lr_step_factor: float = 0.1
    grad_clip: float = 0.0  # 0: off
    ema: float = 0.0  # 0: off
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: autocast of each training step (ebmlab.placement.Placement.autocast)
    channels_last: bool = False  # image data: networks and batches in channels-last memory format
    # CPU: subnormal floats flushed to zero during the run (ebmlab.placement.Placement.resolve)
    flush_denormal: bool = True
    # whole training steps replayed from captured graphs (ebmlab.graphs); auto: on CUDA when the method allows
    graphs: Literal["auto", "on", "off", "emulate"] = "auto"
    # the method's step compiled with torch.compile on the CPU (ebmlab.compiled); auto: where it can, for long runs
    compile: Literal["auto", "on", "off"] = "off"
    # budgets that end training before ``steps`` (ebmlab.budget); 0: off
    max_seconds: float = 0.0
    max_cpu_seconds: float = 0.0
    max_evals: int = 0
    # the machine's speed timed during training into run.json (ebmlab.machine); the claims runs set it on the CPU
    speed_probe: bool = False
    # a named settings set applied over the presets ("ebmlab": none; "paper": the paper's released settings)
    settings: str = "ebmlab"

    def is_eval_step(self, step: int) -> bool:
        """Whether an evaluation during training falls at ``step`` (before the final one): every ``eval_every``
        steps, or with ``eval_spacing = "log"`` at ``eval_every`` × 1, 2, 4, 8, … — the same grid for every arm and
        seed, so that curves still meet at shared steps, with about log2(steps / eval_every) points however fast
        the machine runs (a wall-time budget on a GPU made 60 evenly spaced evaluations of a fast arm)."""
        if not self.eval_every or step % self.eval_every or step >= self.steps:
            return False
        k = step // self.eval_every
        return self.eval_spacing == "even" or k & (k - 1) == 0


def eval_count(steps: int, every: int, spacing: str = "even") -> int:
    """How many evaluations during training a run of ``steps`` steps makes (:meth:`RunConfig.is_eval_step`)."""
    if every <= 0 or steps <= every:
        return 0
    k = (steps - 1) // every  # the multiples of ``every`` below ``steps``
    return k if spacing == "even" else k.bit_length()


@dataclass(frozen=True)
class ResolvedConfig:
    """Everything a run is made from: method and data names, run options, the method's options, the presets
    applied and where each value came from. The method class and the data set are resolved once, here."""
    method: str
    data: str
    run: RunConfig
    method_config: Any
    presets: tuple[str, ...] = ()  # the preset files applied, in order
    sources: dict[str, str] = field(default_factory=dict, compare=False)  # option -> where its value came from

    @cached_property
    def method_class(self) -> type:
        from .methods import get_method

        return get_method(self.method)

    @cached_property
    def dataset(self) -> Any:
        """The data set of the run (built once per configuration)."""
        return dataset_of(self.data, self.run)

    def to_dict(self) -> dict[str, Any]:
        from . import __version__

        return {"method": self.method, "data": self.data, "run": to_dict(self.run),
                "method_config": to_dict(self.method_config), "presets": list(self.presets),
                "ebmlab_version": __version__, **({"plugins": p} if (p := self.plugins()) else {})}

    def plugins(self) -> dict[str, str]:
        """The packages the run's method and data set come from, where a plugin package declares them ({} for
        ebmlab's own): recorded in config.json, so that a run opened where the package is missing names it."""
        from .data import SOURCES as DATA_SOURCES
        from .methods import SOURCES as METHOD_SOURCES
        from .plugins import package_of

        found = {"method": METHOD_SOURCES.get(self.method, "ebmlab"), "data": DATA_SOURCES.get(self.data, "ebmlab")}
        return {k: v for k, v in found.items() if package_of(v)}

    def source(self, name: str) -> str:
        return self.sources.get(name, "default")

    def default_out(self) -> Path:
        """The run directory of ``train`` without ``--out``: runs/METHOD-DATA-sSEED, DATA a built-in name or a user
        file's or folder's stem (a path would nest directories, and an absolute one would leave runs/)."""
        from .data import file_label, is_path

        return Path("runs") / f"{self.method}-{file_label(self.data) if is_path(self.data) else self.data}-s{self.run.seed}"

    def echo(self) -> str:
        """The resolved configuration in one compact block: non-default values marked with their source."""
        lines = [f"{self.method} on {self.data}; presets applied: {', '.join(self.presets) or 'none'}"]
        for title, cfg in (("run", self.run), (self.method, self.method_config)):
            items = []
            for f in fields(cfg):
                v = getattr(cfg, f.name)
                v = ",".join(map(str, v)) if isinstance(v, tuple) else v
                src = self.source(f.name)
                items.append(f"{f.name}={v}" + ("" if src == "default" else f" [{_short(src)}]"))
            lines.append(f"  {title}: " + "  ".join(items))
        return "\n".join(lines)


def _short(source: str) -> str:
    return {"command line": "cli"}.get(source, source.removeprefix("preset ").removeprefix("settings "))


def _preset(name: str) -> dict[str, Any]:
    f = resources.files("ebmlab") / "presets" / f"{name}.toml"
    if not f.is_file():
        return {}
    return load_toml(Path(str(f)))


def _apply_file(run: RunConfig, mcfg: Any, table: dict[str, Any], source: str, method: str,
                sources: dict[str, str]) -> tuple[RunConfig, Any]:
    unknown = set(table) - {"run", "method"} - ({"source"} if source.startswith("settings ") else set())
    if unknown:
        raise EbmlabError(f"{source}: unknown table(s) {sorted(unknown)}; expected [run] and [method]")
    run = apply_overrides(run, table.get("run", {}), what=f"[run] in {source}")
    mcfg = apply_overrides(mcfg, table.get("method", {}), what=f"[method] of {method} in {source}")
    sources.update({k: source for k in table.get("run", {})})
    sources.update({k: source for k in table.get("method", {})})
    return run, mcfg


SETTINGS_DIR = "presets"  # settings sets are folders of it: presets/<name>/<preset name>.toml


def _settings_file(settings: str, name: str) -> Path | None:
    f = resources.files("ebmlab") / SETTINGS_DIR / settings / f"{name}.toml"
    return Path(str(f)) if f.is_file() else None


def settings_names() -> list[str]:
    """The named settings sets (``ebmlab`` — the presets alone — first)."""
    root = resources.files("ebmlab") / SETTINGS_DIR
    return ["ebmlab"] + sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("_"))


def settings_files(settings: str, method: str, data: str, kind: str) -> list[str]:
    """The files of settings set ``settings`` that apply to ``method`` on ``data`` (of ``kind``), in order."""
    if settings == "ebmlab":
        return []
    return [n for n in _settings_names(method, data, kind) if _settings_file(settings, n) is not None]


def _settings_names(method: str, data: str, kind: str) -> list[str]:
    """The names a settings set's files may have, in order: the presets' (:func:`preset_names`), with the 2D
    data's own kind file after the method's (``<method>_toy2d``: a paper's toy settings are not its image ones)."""
    names = preset_names(method, data, kind)
    return names[:1] + [f"{method}_toy2d"] + names[1:] if kind == "toy2d" else names


def settings_sources(settings: str, method: str, data: str, kind: str) -> dict[str, str]:
    """{option: where its value comes from} of settings set ``settings`` for ``method`` on ``data`` (the
    ``[source]`` tables of its files, later files winning)."""
    out: dict[str, str] = {}
    for n in settings_files(settings, method, data, kind):
        f = _settings_file(settings, n)
        assert f is not None
        out.update({k: str(v) for k, v in load_toml(f).get("source", {}).items()})
    return out


def _apply_settings(settings: str, method: str, data: str, kind: str, run: RunConfig, mcfg: Any,
                    sources: dict[str, str], applied: list[str]) -> tuple[RunConfig, Any]:
    names = settings_names()
    if settings not in names:
        raise EbmlabError(f"unknown settings {settings!r}{did_you_mean(settings, names)}; valid: {', '.join(names)}")
    files = settings_files(settings, method, data, kind)
    if settings != "ebmlab" and not files:
        raise EbmlabError(f"settings={settings} has nothing for {method} on {kind} data {data!r} (no "
                          f"presets/{settings}/<{'|'.join(_settings_names(method, data, kind))}>.toml); leave settings "
                          f"out (ebmlab's presets), or give the options yourself")
    for n in files:
        f = _settings_file(settings, n)
        assert f is not None
        applied.append(f"{settings}/{n}")
        run, mcfg = _apply_file(run, mcfg, load_toml(f), f"settings {settings}/{n}", method, sources)
    return run, mcfg


def dataset_of(data: str, run: RunConfig) -> Any:
    from .data import get_dataset

    return get_dataset(data, data_dir=run.data_dir or None, image_size=run.image_size)


def preset_names(method: str, data: str, kind: str) -> list[str]:
    """The presets applied, in order: the method's, its data kind's (binary data take the image presets, then
    their own), its data set's."""
    kinds = {"toy2d": [], "image": ["image"], "binary": ["image", "binary"], "vectors": ["vectors"]}[kind]
    names = [method] + [f"{method}_{k}" for k in kinds]
    if "/" not in data and not data.endswith((".npz", ".npy")):
        names.append(f"{method}_{data}")
    return names


def check_arguments(method: Any, data: Any, out: Any, config_file: Any, overrides: Any) -> None:
    """The arguments of ``ebmlab.train``, checked before any work (the CLI always passes these types)."""
    if not isinstance(method, str):
        raise EbmlabError(f"method must be a method name (str), got {type(method).__name__} {method!r}")
    if not isinstance(data, (str, Path)):
        raise EbmlabError(f"data must be a data set name or path (str), got {type(data).__name__} {data!r}")
    for name, v in (("out", out), ("config_file", config_file)):
        if v is not None and not isinstance(v, (str, Path)):
            raise EbmlabError(f"{name} must be a path (str or Path), got {type(v).__name__} {v!r}")
    if overrides is not None and (not isinstance(overrides, dict) or not all(isinstance(k, str) for k in overrides)):
        raise EbmlabError(f"overrides must be a dict of option name -> value, got {type(overrides).__name__}")


def check_resumable(run: RunDir, cfg: ResolvedConfig, placement: tuple[str, ...]) -> tuple[str | None, int | None]:
    """Refuse to train ``cfg`` into a run directory that holds another method, data set or options (the run options
    named in ``placement`` aside: ``ebmlab.placement.RESUMABLE``), or a new run into a directory of other files;
    (the content hash of the user's data the run recorded, the steps it was last asked to train), both None for a
    new run (the hash also for built-in data)."""
    if not run.exists():
        run.check_new()
        return None, None
    raw = read_json(run.config_path)
    saved = config_from_dict(raw, run.config_path).to_dict()
    for key, what in (("method", "method"), ("data", "data set")):
        if saved.get(key) != getattr(cfg, key):
            raise EbmlabError(f"{run.path} holds a run of {what} {saved.get(key)!r}, not {getattr(cfg, key)!r}; "
                              f"choose another --out for a new run")
    diffs = option_differences(saved, cfg, placement)
    if diffs:
        raise EbmlabError(f"{run.path} was created with different options ("
                          + "; ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in diffs.items())
                          + "); resume with the same options or choose another --out")
    return raw.get("data_sha256"), int(saved["run"]["steps"])


def saved_config(run: RunDir) -> dict[str, Any]:
    """A run directory's configuration as training reads it to resume (options it predates take their defaults)."""
    return config_from_dict(read_json(run.config_path), run.config_path).to_dict()


def option_differences(saved: dict[str, Any], cfg: ResolvedConfig, placement: tuple[str, ...]
                       ) -> dict[str, tuple[Any, Any]]:
    """{dotted key: (saved, now)} of the method, data set, run and method options where ``cfg`` differs from a
    saved configuration (:func:`saved_config`), the run options named in ``placement`` aside (those a resumed run
    may change: ``ebmlab.placement.RESUMABLE``)."""
    from .runs import _differences

    now = cfg.to_dict()
    keys = ("method", "data", "run", "method_config")
    skip = {f"run.{k}" for k in placement}
    return {k: v for k, v in _differences({k: saved.get(k) for k in keys}, {k: now[k] for k in keys}).items()
            if k not in skip}


def resume_steps(cfg: ResolvedConfig, run: RunDir, saved_steps: int | None, at: int) -> tuple[ResolvedConfig, str]:
    """The steps a run resumed at step ``at`` trains to, and what to say about it. Without ``steps`` asked for (the
    command line, overrides or a --config file: not a default or preset), the run's own ``saved_steps``: running
    the same command again never extends a finished run. Asked for, at least ``at`` (below it the run would report
    its step-``at`` model as an earlier one: refused, nothing written); above a finished run's steps it is
    extended, and said so."""
    if saved_steps is None:
        return cfg, ""
    src = cfg.source("steps")
    if src == "default" or src.startswith("preset "):
        return dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, steps=saved_steps)), ""
    if cfg.run.steps < at:
        raise EbmlabError(f"{run.path} holds a run at step {at}; steps={cfg.run.steps} would end it before where it "
                          f"is (its model would be reported as a step-{cfg.run.steps} one) — give steps ≥ {at} to "
                          f"go on, leave steps out to finish it as it was asked ({saved_steps}), or train a new run "
                          f"with another --out")
    if at >= saved_steps and cfg.run.steps > at:
        return cfg, f"extending the finished run {run.path} from step {at} to {cfg.run.steps} (steps={cfg.run.steps})"
    return cfg, ""


def resolve_config(method: str, data: str, *, config_file: str | Path | None = None,
                   overrides: dict[str, Any] | None = None) -> ResolvedConfig:
    from .methods import get_method
    from .options import validate

    cls = get_method(method)
    run_keys, m_keys = field_types(RunConfig), field_types(cls.Config)
    # the data set (and so its kind, which picks the presets) may depend on the run's data_dir / image_size
    file_table = load_toml(config_file) if config_file is not None else {}
    located = ("data_dir", "image_size")
    run0 = apply_overrides(RunConfig(), {k: v for k, v in file_table.get("run", {}).items() if k in located},
                           what="run")
    run0 = apply_overrides(run0, {k: v for k, v in (overrides or {}).items() if k in located}, what="run")
    ds0 = dataset_of(data, run0)
    settings = (overrides or {}).get("settings", file_table.get("run", {}).get("settings", "ebmlab"))
    if not isinstance(settings, str):
        raise EbmlabError(f"settings must be the name of a settings set ({', '.join(settings_names())}), got "
                          f"{settings!r}")
    kind = ds0.kind
    sources: dict[str, str] = {}
    applied: list[str] = []
    run, mcfg = RunConfig(), cls.Config()
    for name in preset_names(method, data, kind):
        table = _preset(name)
        if table:
            applied.append(name)
            run, mcfg = _apply_file(run, mcfg, table, f"preset {name}", method, sources)
    run, mcfg = _apply_settings(settings, method, data, kind, run, mcfg, sources, applied)
    if config_file is not None:
        run, mcfg = _apply_file(run, mcfg, file_table, str(config_file), method, sources)
    r_over, m_over = {}, {}
    for k, v in (overrides or {}).items():
        if k in run_keys:
            r_over[k] = v
        elif k in m_keys:
            m_over[k] = v
        else:
            raise EbmlabError(
                f"unknown option {k!r} for method {method}{did_you_mean(k, [*run_keys, *m_keys])} (every option, "
                f"its value and meaning: `ebmlab list --options {method}`)"
            )
    run = apply_overrides(run, r_over, what="run")
    mcfg = apply_overrides(mcfg, m_over, what=method)
    sources.update({k: "command line" for k in (overrides or {})})
    validate(run, what="run options")
    validate(mcfg, method=cls, what=f"{method} options")
    run = tensorboard_alias(run, said=sources.get("tensorboard"))
    resolved = ResolvedConfig(method, data, run, mcfg, tuple(applied), sources)
    if (run.data_dir, run.image_size) == (run0.data_dir, run0.image_size):
        resolved.__dict__["dataset"] = ds0  # the data set is built once (cached_property's own slot)
    return resolved


def _check_plugins_here(d: Any, where: str | Path) -> None:
    """A run whose method or data set came from a plugin package (config.json's ``plugins``) that is not installed,
    or fails to load, here: refused naming the package and how to install it (not as a damaged file)."""
    from . import data, methods
    from .plugins import install_hint

    recorded = d.get("plugins") if isinstance(d, dict) else None
    if not isinstance(recorded, dict):
        return
    for kind, known, failed in (("method", methods.METHODS, methods.FAILED), ("data", data.DATASETS, data.FAILED)):
        name, source = d.get(kind), recorded.get(kind)
        if not isinstance(name, str) or not isinstance(source, str) or name in known:
            continue
        what = "method" if kind == "method" else "data set"
        if name in failed:
            raise EbmlabError(f"{where}: the run's {what} {name!r} comes from {source}, which is installed here but "
                              f"failed to load: {failed[name]}")
        raise EbmlabError(f"{where}: the run's {what} {name!r} comes from {source}, which is not installed here: "
                          f"{install_hint(source)}, then run the command again")


def tensorboard_alias(run: RunConfig, said: str | None = None) -> RunConfig:
    """The run option ``tensorboard``, an alias kept for old commands and runs: ``tensorboard=false`` is ``loggers``
    without ``tensorboard`` (``ebmlab.trackers``: one switch for every tracker). ``said``: where the value came
    from, when a user set it (a preset, a file, the command line): then the deprecation is said once on stderr."""
    if run.tensorboard:
        return run
    loggers = tuple(n for n in run.loggers if n != "tensorboard")
    if said:
        import sys

        print(f"ebmlab: tensorboard=false ({said}) is deprecated: it is loggers={','.join(loggers)} "
              f"(TensorBoard is one of the trackers of the run option loggers)", file=sys.stderr)
    return dataclasses.replace(run, tensorboard=True, loggers=loggers)


def config_from_dict(d: Any, where: str | Path = "config.json") -> ResolvedConfig:
    """The configuration saved in a run directory; a file that was emptied or edited by hand is refused. Options
    a method renamed since the file was written (its class's ``renamed_options``) are read under the new name."""
    from .methods import get_method
    from .options import validate

    _check_plugins_here(d, where)
    try:
        if not isinstance(d, dict) or not isinstance(d.get("run"), dict) or not isinstance(d.get("method_config"), dict) \
                or not isinstance(d.get("method"), str) or not isinstance(d.get("data"), str):
            raise EbmlabError("expected an object with keys method, data, run, method_config")
        cls = get_method(d["method"])
        renamed = getattr(cls, "renamed_options", {})
        run = apply_overrides(RunConfig(), d["run"], what="run")
        mcfg = apply_overrides(cls.Config(), {renamed.get(k, k): v for k, v in d["method_config"].items()},
                               what=d["method"])
        validate(run, what="run options")
        validate(mcfg, method=cls, what=f"{d['method']} options")
        run = tensorboard_alias(run)  # a run saved with tensorboard=false: loggers without tensorboard
    except EbmlabError as exc:
        raise EbmlabError(f"{where} is not a valid ebmlab run configuration ({exc}); it was damaged or edited by "
                          f"hand — restore it, or start a new run with another --out") from None
    return ResolvedConfig(d["method"], d["data"], run, mcfg, tuple(d.get("presets", ())))
