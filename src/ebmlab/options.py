"""Option metadata: a one-line meaning and the valid range of every run and method option, kept beside what it
describes.

- the run options: :data:`RUN` here, beside the rules (``config.RunConfig`` holds their types and defaults);
- options that several methods share with one meaning (network sizes, learning rates, Adam's betas, evaluation
  sample counts): :data:`SHARED`;
- every other option of a method: the ``OPTIONS`` table on its ``Config`` (a ``ClassVar``), after the fields it
  describes. A method that gives a shared name its own meaning lists it there too; a Config subclass's ``OPTIONS``
  are read before its parents'.

Three readers use them: ``ebmlab list --options`` (meanings), :func:`validate` (ranges, checked before any work or
any file is written) and the tests (every field of every registered config has an entry). An option without one is
refused with a message that says where to add it, never a ``KeyError``.

Range kinds: ``pos`` (finite, > 0), ``nonneg`` (finite, ≥ 0), ``finite``, ``unit`` (0 ≤ v < 1), ``open01``
(0 < v < 1), ``int1`` (integer ≥ 1), ``int0`` (integer ≥ 0), ``int2`` (integer ≥ 2), ``int10`` (integer ≥ 10),
``ints1`` (a list of integers ≥ 1), ``ints1+`` (a non-empty such list), ``choice`` (one of the values of the
field's ``Literal``, which the configuration checks and :func:`describe` lists: a meaning need not restate them),
``any`` (the type check is enough).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from .errors import EbmlabError
from .metadata import NETS, RANGES

if TYPE_CHECKING:
    from .methods.base import Method

_HIDDEN = "hidden layer widths of the {} MLP (comma-separated; unused by conv nets)"

RUN: dict[str, tuple[str, str]] = {  # the run options (ebmlab.config.RunConfig)
    # --- run options ---------------------------------------------------------------------------------------------
    "steps": ("int1", "training steps in total (a resumed run may raise it)"),
    "batch_size": ("int2", "examples per training step"),
    "seed": ("int0", "seed of the networks' initialisation, the batches and every sampler of the run"),
    "log_every": ("int1", "steps between lines of training metrics (metrics.jsonl, TensorBoard, progress bar)"),
    "eval_every": ("int0", "steps between evaluations during training (0: evaluate at the end only)"),
    "eval_spacing": ("choice", "where the evaluations during training fall: even (every eval_every steps) or log (at "
                               "eval_every × 1, 2, 4, 8, …: a few points on any length of run, for a budget whose step "
                               "count depends on the machine's rate, e.g. wall seconds on a GPU)"),
    "metrics": ("any", "the metrics an evaluation reports, comma-separated, or all (every one of its kind's); the exact "
                       "2D density metrics (quadrature, the slow part) are computed only when one of them is named"),
    "keep_best": ("any", "a metric with a better direction (e.g. w1, modes): the model of the evaluation during "
                         "training (eval_every) that scored best on it is kept as RUN_DIR/best.pt with best.json "
                         "(its step and value); `ebmlab sample|eval RUN --checkpoint best` use it ('' keeps none)"),
    "ckpt_every": ("int1", "steps between checkpoints (a kill loses at most this many steps)"),
    "keep_checkpoints": ("any", "keep a full checkpoint at every evaluation during training (eval_every) as "
                                "RUN_DIR/checkpoints/step-N.pt: a new run can branch from any point of the learning "
                                "curve (ebmlab.branch) instead of training its first N steps again"),
    "eval_samples": ("int10", "model samples behind each evaluation metric"),
    "eval_density": ("any", "2D data: compute the quadrature density metrics (exact NLL, log Z) at evaluation"),
    "eval": ("choice", "the final evaluation: full; quick (at most 500 samples, no density metrics; a stacked set "
                    "still counts modes on its 26,000); none (summary.json records the step and compute only: "
                    "`ebmlab eval RUN` evaluates later)"),
    "device": ("choice", "where to train (auto: cuda when available)"),
    "threads": ("int0", "torch CPU threads (0: the CPUs this process may use — its affinity and CPU quota — and 1 on "
                        "2D toys, whose small networks run fastest on one; ebmlab.threads)"),
    "tensorboard": ("any", "deprecated alias: tensorboard=false is loggers without tensorboard"),
    "loggers": ("choice", "where metrics go beside metrics.jsonl: tensorboard (RUN_DIR/tb), mlflow (RUN_DIR/mlflow.db "
                       "or MLFLOW_TRACKING_URI; pip install 'ebmlab[mlflow]') and/or wandb (offline, RUN_DIR/wandb; "
                       "pip install 'ebmlab[wandb]'); empty (loggers=): metrics.jsonl alone"),
    "plots": ("any", "write PNG figures under RUN_DIR/plots at the end"),
    "data_dir": ("any", "directory of local data files (MNIST, CIFAR-10); empty: the EBMLAB_DATA variable"),
    "image_size": ("int0", "side to which a folder of images is resized (0: the images' own size)"),
    "batches": ("choice", "auto (iid for 2D toys, shuffled epochs otherwise), epochs, iid draws, or balanced (iid with equal counts per mode of a mixture)"),
    "num_workers": ("int0", "DataLoader worker processes preparing batches (0: in the training process)"),
    "data_on_device": ("choice", "hold the training split on the training device and draw batches there (auto: on CUDA, "
                              "when it fits in a quarter of the free device memory)"),
    "lr_schedule": ("choice", "learning-rate schedule of every optimizer: constant, linear, cosine (decay from "
                            "lr_decay_start to lr_end_factor × lr at the last step) or step"),
    "lr_decay_start": ("int0", "linear/cosine schedules: the step at which the decay begins"),
    "lr_end_factor": ("nonneg", "linear/cosine schedules: the learning rate at the last step, as a fraction of lr"),
    "lr_step_every": ("int0", "step schedule: steps between multiplications by lr_step_factor"),
    "lr_step_factor": ("pos", "step schedule: the factor applied every lr_step_every steps"),
    "grad_clip": ("nonneg", "clip each optimizer's gradients to this global L2 norm before its step (0: off)"),
    "max_seconds": ("nonneg", "end training once its loop has run this many seconds, summed over sessions; steps is "
                              "then an upper bound (0: off; ebmlab.budget)"),
    "max_cpu_seconds": ("nonneg", "end training once its loop has used this many CPU seconds (all its threads), "
                                  "summed over sessions: a budget that other jobs on the machine do not shrink; "
                                  "CPU runs only (0: off; ebmlab.budget)"),
    "settings": ("any", "a named settings set applied over ebmlab's presets: ebmlab (none) or paper (the paper's "
                        "released settings, each value's file in presets/paper/; `ebmlab list --options METHOD --data "
                        "DATA settings=paper` shows them)"),
    "max_evals": ("int0", "end training once this many samples have passed forward through the method's networks "
                          "(0: off; ebmlab.budget)"),
    "ema": ("unit", "decay of a moving average of the sampling networks' weights, used for evaluation and "
                    "sampling (0: off; e.g. 0.999)"),
    "precision": ("choice", "arithmetic of the training steps (bf16: autocast of every step to bfloat16; no loss scaling needed)"),
    "channels_last": ("any", "image data: conv networks and batches in channels-last memory format"),
    "speed_probe": ("any", "CPU runs: a fixed one-thread workload timed when training starts and every 60 CPU-s of "
                           "training, into run.json's session record (speed_probe); not training, counted in no "
                           "budget. A budget in CPU seconds is equal compute only on equally fast CPUs: the claims "
                           "runs set it so that a verdict can leave out arms that ran at different speeds "
                           "(ebmlab.machine)"),
    "flush_denormal": ("any", "CPU runs: subnormal floats (below 1.2e-38 in float32) flushed to zero, as TensorFlow "
                              "does by default: an operation on a subnormal operand costs up to ~100x a normal one on "
                              "x86, and importance weights (IWAE, RWS) make many gradients subnormal; false: IEEE "
                              "subnormals, PyTorch's default (benchmarks/denormal)"),
    "graphs": ("choice", "replay each kind of training step from a captured CUDA graph: auto (on CUDA when the method's "
                      "steps allow it, else eager, said once), on, off, or emulate (the same replay from recorded "
                      "operations on any device: a slow check that a method's step can be captured; ebmlab.graphs)"),
    "compile": ("choice", "run the method's training step compiled by torch.compile on the CPU (the same numbers to float "
                       "rounding; its compile time is printed and recorded apart): off, on, or auto (where the method "
                       "has a compiled step, the first 20 steps run eagerly and timed, the rest compiled where that "
                       "repays a compile; ebmlab.compiled)"),
}

SHARED: dict[str, tuple[str, str]] = {  # method options that mean the same in every method that has them
    # --- networks -------------------------------------------------------------------------------------------------
    "net": ("choice", "network family: " + "; ".join(f"{k} ({v})" for k, v in NETS.items())),
    "width": ("int1", "conv/dcgan width: channels of the first layer"),
    "z_dim": ("int1", "latent dimension of the generator"),
    "act": ("choice", "activation of the MLPs"),
    "g_hidden": ("ints1", _HIDDEN.format("generator")),
    "d_hidden": ("ints1", _HIDDEN.format("discriminator")),
    "e_hidden": ("ints1", _HIDDEN.format("energy")),
    "code_dim": ("int1", "dimension of the auto-encoder's code"),
    "n_experts": ("int1", "experts (hidden units) of the bounded multi-modal energy"),
    # --- optimisation ---------------------------------------------------------------------------------------------
    "lr": ("pos", "Adam learning rate"),
    "lr_g": ("pos", "generator learning rate"),
    "lr_d": ("pos", "discriminator learning rate"),
    "lr_e": ("pos", "energy learning rate"),
    "beta1": ("unit", "Adam β1"),
    "beta2": ("unit", "Adam β2"),
    "optimizer": ("choice", "optimiser (adadelta: the VGAN paper's)"),
    "n_critic": ("int1", "discriminator/energy updates per generator update"),
    # --- objectives and evaluation --------------------------------------------------------------------------------
    "entropy_weight": ("nonneg", "weight of the generator's entropy term (1 keeps the generator loss a bound)"),
    "sample_mode": ("choice", "samples: the decoder mean or a draw"),
    "iwae_ks": ("ints1+", "sample counts K of the IWAE bounds reported at evaluation"),
    "iwae_points": ("int1", "test points behind the IWAE bounds"),
    "iwae_chunk": ("int1", "test points per forward pass of the IWAE evaluation"),
    "elbo_samples": ("int1", "posterior samples per test point of the ELBO estimate"),
    "eval_seed": ("int0", "seed of the evaluation's own draws"),
}


def _tables(method: type[Method] | None) -> list[dict[str, tuple[str, str]]]:
    """The option tables of a method class (or name), its own before its parents', then the shared table."""
    if method is None:
        return [RUN, SHARED]
    if isinstance(method, str):
        from .methods import get_method

        method = get_method(method)
    own = [c.__dict__["OPTIONS"] for c in method.Config.__mro__ if isinstance(c.__dict__.get("OPTIONS"), dict)]
    return [*own, SHARED, RUN]


def entry(name: str, method: type[Method] | None = None) -> tuple[str, str]:
    """(range kind, meaning) of an option, a method's own meaning first (``method``: a name or class)."""
    for table in _tables(method):
        if name in table:
            return table[name]
    where = (f"the OPTIONS table of {method.Config.__name__} ({method.Config.__module__})"
             if isinstance(method, type) else "ebmlab.options.RUN")
    raise EbmlabError(f"option {name!r} has no range and meaning; add an entry for it to {where} "
                      f"(see the README: Adding a method)")


def describe(name: str, method: type[Method] | None = None, config: Any = None) -> str:
    """The option's meaning; a ``choice`` option's ends with its choices, read from its field's ``Literal`` in the
    dataclass ``config`` (``config.RunConfig`` or the method's ``Config``) when it is given."""
    kind, meaning = entry(name, method)
    allowed = choices(name, config) if kind == "choice" and config is not None else None
    return meaning if not allowed else f"{meaning} [{' | '.join(str(a) for a in allowed)}]"


def choices(name: str, config: Any) -> tuple[Any, ...] | None:
    """The values the field ``name`` of the dataclass ``config`` may take when it is typed ``Literal[...]`` (or
    ``tuple[Literal[...], ...]``, each element one of them), else None."""
    import typing

    if name not in {f.name for f in dataclasses.fields(config)}:
        return None
    return literal_choices(typing.get_type_hints(config)[name])


def literal_choices(tp: Any) -> tuple[Any, ...] | None:
    """The arguments of ``Literal[...]``, or of the Literal a homogeneous tuple holds; None for any other type."""
    from typing import Literal, get_args, get_origin

    if get_origin(tp) is Literal:
        return get_args(tp)
    inner = [a for a in get_args(tp) if a is not Ellipsis] if get_origin(tp) is tuple else []
    return get_args(inner[0]) if len(inner) == 1 and get_origin(inner[0]) is Literal else None


def problems(cfg: Any, method: type[Method] | None = None) -> list[str]:
    """Every option of the dataclass ``cfg`` outside its range, as 'name=value (expected ...)'."""
    out = []
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        kind = entry(f.name, method)[0]
        if v is None or isinstance(v, (bool, str)):
            continue
        ok, expected = RANGES[kind]
        if not ok(v):
            out.append(f"{f.name}={v!r} (expected {expected}: {describe(f.name, method)})")
    if getattr(cfg, "lr_schedule", "constant") == "step" and cfg.lr_step_every < 1:
        out.append("lr_schedule=step needs lr_step_every ≥ 1 (the steps between learning-rate drops)")
    # a decay that starts at 0 is always accepted (a preset's schedule must not refuse a short run: with 1 or 2
    # steps there is simply little to decay); a later start that leaves no step to decay over is a mistake
    if getattr(cfg, "lr_schedule", "constant") in ("linear", "cosine") and cfg.lr_decay_start > 0 \
            and cfg.lr_decay_start >= cfg.steps - 1:
        out.append(f"lr_decay_start={cfg.lr_decay_start} leaves no step to decay over (steps={cfg.steps}), so "
                   f"lr_schedule={cfg.lr_schedule} would never decay; lower it or use lr_schedule=constant")
    return out


def validate(cfg: Any, *, method: type[Method] | None = None, what: str = "options") -> None:
    """Raise one :class:`EbmlabError` listing every out-of-range option of ``cfg``."""
    bad = problems(cfg, method)
    if bad:
        raise EbmlabError(f"invalid {what}: " + "; ".join(bad))
