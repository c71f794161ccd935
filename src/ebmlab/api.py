"""The Python API over run directories: rebuild a trained method, draw samples from it, evaluate it. The CLI's
``sample`` and ``eval`` commands call exactly these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import ResolvedConfig, config_from_dict
from .errors import EbmlabError, require_int
from .metadata import DEVICES
from .evaluation import evaluate, protocol, sample_count
from .methods import Method, methods_with
from .rng import stream_seed
from .runs import RunDir
from .placement import Placement, build_method


def _check_device(device: Any) -> str | None:
    if device is not None and device not in DEVICES:
        raise EbmlabError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    return device


def load_run(run_dir: str | Path, device: str | None = None,
             checkpoint: str = "latest") -> tuple[ResolvedConfig, Method, int]:
    """Rebuild the method of a run directory from its latest checkpoint: (config, method, step).

    ``device``: cpu, cuda or auto (the default: CUDA when this machine has it, whatever the run was trained on).
    The checkpoint loads onto any device; sampling and evaluation do not need the training device.
    ``checkpoint``: ``latest``, or ``best`` — the model run option ``keep_best`` kept (best.pt).
    On the CPU the process takes the run's ``flush_denormal`` (subnormal floats flushed to zero or kept), so that
    sampling and evaluation compute as the run's training and final evaluation did.
    """
    if checkpoint not in ("latest", "best"):
        raise EbmlabError(f"checkpoint must be latest or best, got {checkpoint!r}")
    if not isinstance(run_dir, (str, Path)):
        raise EbmlabError(f"run_dir must be a path (str or Path), got {type(run_dir).__name__} {run_dir!r}")
    _check_device(device)
    run = RunDir(run_dir)
    raw = run.require()
    if isinstance(raw, dict) and raw.get("format") == "ebmlab-sr-run-1":
        raise EbmlabError(f"{run_dir} is a super-resolution run: evaluate it with `ebmlab sr eval {run_dir}`, apply "
                          f"it with `ebmlab sr upscale {run_dir} --in IMAGE --out OUT.png`")
    cfg = _locate_user_data(config_from_dict(raw, run.config_path), run)
    saved_sha = raw.get("data_sha256")
    if saved_sha is not None:  # recorded for a user's data: hashed only then
        from .data import check_same_data, user_data_sha256

        check_same_data(cfg.data, user_data_sha256(cfg.data, cfg.dataset), saved_sha, run_dir)
    if checkpoint == "best" and not run.best_path.is_file():
        raise EbmlabError(f"{run_dir} has no best checkpoint (best.pt): it is kept by training with keep_best=METRIC "
                          f"and eval_every=N; use the latest checkpoint (leave --checkpoint out)")
    ckpt = run.load_checkpoint(cfg.method, run.best_path if checkpoint == "best" else None)
    if ckpt is None:
        raise EbmlabError(f"{run_dir} has no checkpoint yet; train it first with `ebmlab train {cfg.method} --data "
                          f"{cfg.data} --out {run_dir}`")
    method = build_method(cfg, Placement.for_inference(device, cfg.run.flush_denormal).device)
    method.load_state_dict(ckpt["method_state"], any_device=True)
    method.recipe.use_averaged()  # evaluation and sampling use the moving averages when the run keeps them
    return cfg, method, int(ckpt["step"])


def _locate_user_data(cfg: ResolvedConfig, run: RunDir) -> ResolvedConfig:
    """A run trained on a user's file given by a relative path: the path is looked up from the directories the run
    was trained in (run.json's ``cwd``, newest first: the file it was trained on), then from the current directory
    (a run moved with its data); the content hash recorded in config.json then checks that it is the same data."""
    from dataclasses import replace

    from .data import is_path

    data = Path(cfg.data)
    if not is_path(cfg.data) or data.is_absolute():
        return cfg
    cwds = list(dict.fromkeys(str(s["cwd"]) for s in reversed(run.sessions())
                              if isinstance(s, dict) and isinstance(s.get("cwd"), str)))
    for base in cwds:
        found = Path(base) / data
        if found.exists():  # from where the run was trained, the path as it is
            return cfg if found.resolve() == data.resolve() else replace(cfg, data=str(found))
    if data.exists():
        return cfg
    where = f" (relative to {', '.join(cwds)}, where it was trained)" if cwds else ""
    raise EbmlabError(f"{run.path} was trained on {cfg.data}{where}; it is found neither there nor relative to the "
                      f"current directory — run the command where the run was trained, or put the file back")


def guided_samples(method: Method, n: int, cfg: Any, *, generator: torch.Generator,
                   progress: bool = False) -> tuple[torch.Tensor, dict[str, float | None]]:
    """n energy-guided latent samples of a method with both a generator and an energy
    (``samplers.latent.latent_samples`` over its ``generate``, ``energy`` and ``latent_dim``) and the sampler's
    diagnostics."""
    from .samplers.latent import latent_samples

    _require_guidable(method)
    return latent_samples(method.generate, method.energy, method.latent_dim, n, cfg, generator=generator,
                          device=method.device, progress=progress, rows=getattr(method, "forward_rows", None))


def _require_guidable(method: Method) -> None:
    if not (method.has_energy and method.has_generator):
        raise EbmlabError(f"method {method.name!r} needs both a generator and an energy for energy-guided sampling "
                          f"(methods with both: {methods_with('has_energy', 'has_generator')})")


def run_sampler(method: Method, sampler: str | None = None, **changes: Any) -> Any:
    """The energy-guided sampler settings for ``method``: the run's own (a method that samples with one, e.g.
    KALE's ``sampler``/``inverse_temperature``/``mcmc_*`` options) with ``changes`` (GuidedConfig fields, the same
    names; None keeps the run's value) on top; for a method without its own, GuidedConfig's defaults. ``sampler``
    picks the algorithm. Every value is checked against its range (``GuidedConfig.OPTIONS``)."""
    from dataclasses import replace

    from .samplers.latent import GuidedConfig

    unknown = sorted(set(changes) - set(GuidedConfig.OPTIONS))
    if unknown:
        raise EbmlabError(f"unknown energy-guided sampler settings {', '.join(unknown)}; valid: "
                          f"{', '.join(GuidedConfig.OPTIONS)}")
    base = method.guided_config() or GuidedConfig()
    if sampler is not None:
        changes["sampler"] = sampler
    return replace(base, **{k: v for k, v in changes.items() if v is not None})


def choose_sampler(method: Method, sampler: str | None = None, **changes: Any) -> tuple[Any, bool]:
    """What ``ebmlab sample`` draws with, from its ``--sampler`` and sampler settings (``changes``: GuidedConfig
    fields, None when not given): (the guided sampler's settings or None, whether the generator alone samples).
    ``sampler="none"``: the generator alone, and no setting may be given; a sampler or a setting given: the
    energy-guided sampler (:func:`run_sampler`), which a run without one of its own needs named; neither: as the
    run samples. Settings are checked before any sampling."""
    given = [k for k, v in changes.items() if v is not None]
    if sampler == "none":
        if given:
            raise EbmlabError(f"{', '.join(given)}: settings of the energy-guided sampler, which --sampler none "
                              f"turns off")
        return None, True
    if sampler is None and not given:
        return None, False
    if sampler is None and not method.samples_guided:
        raise EbmlabError(f"{', '.join(given)}: settings of the energy-guided sampler; this run samples without "
                          f"one — add --sampler kinetic|ula|mala|hmc")
    return run_sampler(method, sampler, **changes), False


def own_sampler(method: Method) -> Any:
    """The guided sampler a run samples with by default (None: the method's ``sample`` is direct)."""
    return method.guided_config() if method.samples_guided else None


def check_draw_args(n: Any, seed: Any, batch_size: Any, names: tuple[str, str, str] = ("n", "seed", "batch_size")
                    ) -> None:
    """The counts of :func:`draw_samples`, checked (``names``: how the caller's user writes them, e.g. the CLI's
    flags), so that a caller can refuse them before loading a run."""
    require_int(names[0], n, 1, " (samples)")
    require_int(names[1], seed, 0)
    require_int(names[2], batch_size, 1, " (samples drawn at a time)")


def draw_samples(run_dir: str | Path, n: int, *, seed: int = 0, guided: Any = None, base_only: bool = False,
                 progress: bool = False, device: str | None = None, batch_size: int = 1000,
                 loaded: tuple[ResolvedConfig, Method, int] | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """n samples [n, *shape] of a trained run, drawn ``batch_size`` at a time, and what drew them: the sampler,
    its settings, and for MCMC the mean acceptance rate and latent energy before/after (sample-weighted).

    By default the run samples as it did in training and evaluation (its own energy-guided sampler and settings
    where it has one). ``guided`` (a :class:`ebmlab.samplers.latent.GuidedConfig`, see :func:`run_sampler`) draws
    energy-guided latent samples from any method with both a generator and an energy; ``base_only`` draws from the
    generator alone. The same seed and batch_size give the same samples. ``loaded``: the result of
    :func:`load_run` when the caller has it already.
    """
    check_draw_args(n, seed, batch_size)
    from .samplers.latent import GuidedConfig

    if guided is not None and not isinstance(guided, GuidedConfig):
        raise EbmlabError(f"guided must be a GuidedConfig (see ebmlab.api.run_sampler), got {type(guided).__name__}")
    if guided is not None and base_only:
        raise EbmlabError("give guided or base_only, not both")
    cfg, method, step = loaded or load_run(run_dir, device)
    from .export import check_sample_room

    check_sample_room(n, tuple(cfg.dataset.spec.shape))  # before any sampling
    method.train(False)
    gen = torch.Generator(device=method.device).manual_seed(seed)
    if base_only and not method.has_generator:
        raise EbmlabError(f"method {cfg.method!r} has no generator to sample alone")
    if guided is None and not base_only:
        guided_run = own_sampler(method)
    else:
        guided_run = guided
    info: dict[str, Any] = {"method": cfg.method, "data": cfg.data, "step": step, "n": n, "seed": seed,
                            "device": str(method.device)}
    if guided_run is not None:
        from dataclasses import asdict

        info["sampler"] = {"kind": "energy-guided latent MCMC", **asdict(guided_run)}
        _require_guidable(method)  # before any sampling
    else:
        info["sampler"] = {"kind": "generator only" if base_only else "the method's own sample()"}
    from tqdm.auto import tqdm

    # the batches are copied into one array allocated at the first: a list of small tensors joined at the end
    # needed twice the memory, and each small tensor kept between the large temporaries of the next batches pinned
    # far more than its size in the allocator (~65× for 2D data in batches of 1000: benchmarks/sample_memory.md)
    out: torch.Tensor | None = None
    stats, done = [], 0
    sizes = [min(batch_size, n - i) for i in range(0, n, batch_size)]
    for b in tqdm(sizes, disable=not progress or len(sizes) == 1, desc="batches", dynamic_ncols=True):
        if guided_run is not None:
            x, st = guided_samples(method, b, guided_run, generator=gen, progress=progress and len(sizes) == 1)
            stats.append((b, st))
        else:
            with torch.no_grad():
                if base_only:
                    x = method.generate(torch.randn(b, method.latent_dim, generator=gen, device=method.device))
                else:
                    x = method.sample(b, generator=gen)
        if out is None:
            out = torch.empty((n, *x.shape[1:]), dtype=x.dtype)
        out[done:done + b].copy_(x.detach())
        done += b
    assert out is not None and done == n  # n ≥ 1: at least one batch
    for key in ("acceptance", "latent_energy_start", "latent_energy_end"):
        vals = [(b, st[key]) for b, st in stats if st.get(key) is not None]
        if vals:
            info[key] = sum(b * v for b, v in vals) / sum(b for b, _ in vals)
    return out, info


def sample_run(run_dir: str | Path, n: int, *, seed: int = 0, guided: Any = None, base_only: bool = False,
               progress: bool = False, device: str | None = None, batch_size: int = 1000) -> torch.Tensor:
    """n samples [n, *shape] from a trained run (:func:`draw_samples` without its record); the same seed gives
    the same samples."""
    return draw_samples(run_dir, n, seed=seed, guided=guided, base_only=base_only, progress=progress,
                        device=device, batch_size=batch_size)[0]


def evaluate_run(run_dir: str | Path, *, probe: bool = False, inception: str | None = None,
                 ais_steps: int = 0, progress: bool = False, device: str | None = None,
                 keep: bool = True, checkpoint: str = "latest", ood: str | None = None) -> dict[str, Any]:
    """Evaluate the latest checkpoint of a run: metrics plus the real-vs-real reference; ``probe`` adds the
    linear-probe test error of the energy's/discriminator's frozen features (``metrics.probe``); ``ood`` (a data
    set's name or path, read from the run's data directory) adds ``ood_auroc``, the energy's AUROC separating the
    run's test split from that set's (``metrics.ood``). ``device``: as in
    :func:`load_run`. ``keep``: the result is kept in the run (evaluation.json), where ``ebmlab report``, ``bench``
    and a re-run train command read it in place of the final evaluation's metrics (an evaluation of the best
    checkpoint, ``checkpoint="best"``, is not kept there: it is not the run's final model)."""
    from .metrics import collapse_reference, noise_floor, real_reference

    require_int("ais_steps", ais_steps, 0)
    if inception is not None and not isinstance(inception, (str, Path)):
        raise EbmlabError(f"inception must be a path to Inception weights, got {type(inception).__name__}")
    if ood is not None and not isinstance(ood, str):
        raise EbmlabError(f"ood must be a data set's name or path, got {type(ood).__name__}")
    cfg, method, step = load_run(run_dir, device, checkpoint)
    ds = cfg.dataset
    other = _ood_dataset(method, ds, ood) if ood is not None else None  # refused before anything is evaluated
    if progress:
        import sys

        extra = ((", linear probe" if probe else "") + (", AIS" if ais_steps else "") + (", FID/IS" if inception else "")
                 + (f", OOD against {ood}" if ood else ""))
        print(f"evaluating {cfg.method} on {cfg.data} at step {step}: {sample_count(ds, cfg.run)}{extra}...",
              file=sys.stderr, flush=True)
    metrics = evaluate(method, ds, cfg.run, step)
    if probe:
        from .metrics.probe import linear_probe

        metrics.update(linear_probe(method, ds, seed=cfg.run.seed))
    if other is not None:
        from .metrics.ood import ood_detection

        metrics.update(ood_detection(method, ds, other))
    if ais_steps > 0:
        if not method.has_energy:
            raise EbmlabError(f"--ais needs a method with an energy; {cfg.method} has none")
        if metrics.get("density_status") == "non_normalisable":
            raise EbmlabError(f"--ais: exp(−E) of this {cfg.method} run is not normalisable (the exact quadrature "
                              f"found the energy flat or falling towards infinity: {metrics.get('density_note', '')}); "
                              f"AIS would measure how far its chains wander, not a log Z — there is no NLL to "
                              f"estimate")
        from .metrics.likelihood import ais_report

        ais = ais_report(method, ds, n_steps=ais_steps, seed=cfg.run.seed)
        if not method.energy_defines_density:  # e.g. KALE: the model is exp(−E)·G, so exp(−E) alone is no density
            ais = {k: v for k, v in ais.items() if not k.startswith("nll_ais")}
            ais["ais_note"] = (f"{cfg.method}'s model is not exp(−E) (its energy re-weights a generator), so no "
                               f"NLL is formed from this log Z; " + ais.get("ais_note", ""))
        metrics.update(ais)
    reference = dict(real_reference(ds, cfg.run.eval_samples))
    if inception is not None:  # real FID/IS with the user's Inception weights (metrics.inception)
        from .metrics.inception import fid_is

        if not ds.spec.is_image:
            raise EbmlabError(f"FID/IS need image data; {cfg.data} holds {ds.kind} samples")
        n = min(cfg.run.eval_samples, ds.n_test)
        method.train(False)
        with torch.no_grad():
            x = method.sample(n, generator=torch.Generator(device=method.device).manual_seed(stream_seed(cfg.run.seed, "inception")))
        vr = ds.spec.value_range or (0.0, 1.0)
        metrics.update(fid_is(x.cpu(), ds.test[:n], inception, vr))
        reference.update(fid_is(ds.train[:n], ds.test[:n], inception, vr))
    extras = ", ".join(x for x in ("linear probe" if probe else "", f"AIS {ais_steps}" if ais_steps else "",
                                    "FID/IS" if inception else "", f"OOD against {ood}" if ood else "") if x)
    result = {"method": cfg.method, "data": cfg.data, "step": step,
              "evaluation": f"ebmlab eval: {sample_count(ds, cfg.run)}" + (f", {extras}" if extras else ""),
              "metrics": metrics, "real_vs_real": reference, **noise_floor(ds, cfg.run.eval_samples),
              **collapse_reference(ds, cfg.run.eval_samples), "protocol": protocol(ds, cfg.run)}
    if checkpoint == "best":
        result["checkpoint"] = "best (best.pt, run option keep_best)"
    elif keep:
        _keep_evaluation(Path(run_dir), result)
    return result


def _ood_dataset(method: Any, ds: Any, name: str) -> Any:
    """The out-of-distribution set of ``evaluate_run(ood=...)``, read and checked against the run's data (shape,
    units) and method (an energy) before anything is evaluated."""
    from .data import get_dataset
    from .metrics.ood import to_units_of

    if not method.has_energy:
        raise EbmlabError(f"--ood scores inputs by the energy; {method.name} has none (methods with one: "
                          f"{methods_with('has_energy')})")
    other = get_dataset(name, data_dir=ds.data_dir)
    other.read()
    if other.name == ds.name:
        raise EbmlabError(f"--ood {name} is the run's own data set: an out-of-distribution set is another one")
    to_units_of(other.test[:1], other, ds)
    return other


def _keep_evaluation(run_dir: Path, result: dict[str, Any]) -> None:
    """The evaluation kept in the run (evaluation.json, written atomically), where report, bench and a re-run train
    command read it. A run directory that cannot be written (read-only, full) keeps nothing, and says so: the
    metrics are printed all the same."""
    import os
    import sys

    from .atomic import write_json
    from .runs import RunDir

    try:
        write_json(RunDir(run_dir).evaluation_path, result)
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        print(f"note: the evaluation was not kept in {run_dir} ({why}); the report shows the run's own summary",
              file=sys.stderr, flush=True)


def score_samples(generated: str | Path | np.ndarray | torch.Tensor, data: str, *, data_dir: str | None = None,
                  image_size: int = 0, progress: bool = False, n_compared: int = 2500) -> dict[str, Any]:
    """The data kind's sample metrics of generated samples (a ``.npy``/``.npz`` in the data's units, a folder of
    PNG/JPEG images, or an array or tensor [n, *shape] in the data's units) against the test split of ``data`` (a
    built-in name, or a user's file or folder, whose held-out 10 % is then the reference), with the real-vs-real
    values at the same sample count beside them.

    The distances compare at most ``n_compared`` samples with as many test points (as a run's evaluation does with
    ``eval_samples``: precision/recall and MMD hold n² distances); counts such as stacked modes use every sample."""
    from .data import get_dataset
    from .export import read_samples, samples_tensor
    from .metrics import collapse_reference, evaluator_for, noise_floor, real_reference, sample_metrics

    is_array = isinstance(generated, (np.ndarray, torch.Tensor))
    if not (is_array or isinstance(generated, (str, Path))):  # the value itself is not shown: it may be large
        raise EbmlabError(f"generated must be a path or an array [n, *shape] of samples, got "
                          f"{type(generated).__name__}")
    if not isinstance(data, str):
        raise EbmlabError(f"data must be a data set name or path (str), got {type(data).__name__} {data!r}")
    if data_dir is not None and not isinstance(data_dir, (str, Path)):
        raise EbmlabError(f"data_dir must be a directory path (str), got {type(data_dir).__name__} {data_dir!r}")
    ds = get_dataset(data, data_dir=data_dir, image_size=image_size)
    x = (samples_tensor(generated, ds.spec, "generated") if isinstance(generated, (np.ndarray, torch.Tensor))
         else read_samples(generated, ds.spec))
    source = f"an array of {len(x)}" if is_array else str(generated)
    require_int("n_compared", n_compared, 2)
    ev = evaluator_for(ds)
    n = len(x)
    k = ev.n_compared(ds, min(n, n_compared))
    if progress:
        import sys

        print(f"scoring {n} samples from {source} against {data} ({k} compared with as many of the "
              f"{ds.n_test} test points)...", file=sys.stderr, flush=True)
    # images: features of k samples, stacked modes of all of them; other kinds score k samples, as an evaluation
    metrics = sample_metrics(x if ds.spec.is_image else x[:k], ds, n_features=k)
    protocol = {"samples_compared": f"{k} of the {n} samples against as many of the {ds.n_test} test points",
                **ev.protocol(ds, k)}
    refs = {**noise_floor(ds, k), **collapse_reference(ds, k)}
    n_modes = {metrics.get("n_mode_samples")} | {r.get("n_mode_samples") for r in refs.values()}
    if len(n_modes) > 1:  # stacked sets: the references count modes over the evaluation's 26,000, these over n
        protocol["unequal_counts"] = (f"modes of these samples are counted over {n} and those of the noise and "
                                      f"collapsed references over {ev.n_draw(ds, k)}: score "
                                      f"{ev.n_draw(ds, k)} samples to compare mode counts")
    return {"method": f"samples {source}", "data": data, "step": None, "n_samples": n, "metrics": metrics,
            "real_vs_real": dict(real_reference(ds, k)), **refs, "protocol": protocol}




MASKS = ("bottom", "top", "left", "right", "random")


def _check_mask(kind: str, fraction: float) -> None:
    if kind not in MASKS:
        from .errors import did_you_mean

        raise EbmlabError(f"unknown mask {kind!r}{did_you_mean(kind, MASKS)}; valid: {', '.join(MASKS)}")
    if not 0 < fraction < 1:
        raise EbmlabError(f"--fraction must be in (0, 1): the share of values to fill in; got {fraction}")


def inpaint_mask(shape: tuple[int, ...], kind: str, n: int, *, fraction: float = 0.5,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """[n, *shape] bool, True where values are missing: the ``bottom``/``top``/``left``/``right`` ``fraction`` of
    each image's rows/columns, or a ``random`` ``fraction`` of the values (an independent draw per row)."""
    _check_mask(kind, fraction)
    if kind == "random":
        from .rng import rand

        return rand((n, *shape), generator=generator) < fraction
    if len(shape) != 3:
        raise EbmlabError(f"mask {kind!r} needs images [C, H, W]; this data has shape {shape} — use --mask random")
    _, h, w = shape
    m = torch.zeros(shape, dtype=torch.bool)
    k_h, k_w = max(1, round(fraction * h)), max(1, round(fraction * w))
    if kind == "bottom":
        m[:, h - k_h:, :] = True
    elif kind == "top":
        m[:, :k_h, :] = True
    elif kind == "left":
        m[:, :, :k_w] = True
    else:
        m[:, :, w - k_w:] = True
    return m.expand(n, *shape).clone()


def inpaint_run(run_dir: str | Path, out: str | Path, *, n: int = 8, draws: int = 6, mask: str = "bottom",
                fraction: float = 0.5, sweeps: int | None = None, seed: int = 0,
                device: str | None = None) -> dict[str, Any]:
    """Fill in the masked part of ``n`` test images ``draws`` times each from the run's conditional
    p(x_missing | x_observed) (methods with an ``inpaint``: BiHM's p*, RWS's p) and write a PNG grid — one row per
    image: the original, the observed part (missing values grey), then the draws. Returns what was written and
    the chain's acceptance rate; everything is checked before anything is written."""
    from .export import output_kind, write_grid_png

    for name, value, types_, what in (("out", out, (str, Path), "a path (str or Path) of a .png file"),
                                      ("mask", mask, str, f"one of {', '.join(MASKS)}"),
                                      ("fraction", fraction, (int, float), "a number in (0, 1)")):
        if isinstance(value, bool) or not isinstance(value, types_):
            raise EbmlabError(f"{name} must be {what}, got {type(value).__name__} {value!r}"[:300])
    if output_kind(out) != "png":
        raise EbmlabError(f"--out {out}: inpainting writes a picture; give a NAME.png path")
    require_int("-n", n, 1)
    require_int("--draws", draws, 1)
    if sweeps is not None:
        require_int("--sweeps", sweeps, 1)
    require_int("--seed", seed, 0)
    _check_mask(mask, fraction)
    cfg, method, step = load_run(run_dir, device)
    if not method.can_inpaint:
        raise EbmlabError(f"{cfg.method} has no conditional sampler; inpainting is offered by "
                          f"{methods_with('can_inpaint')} (Gibbs chains over the missing values)")
    ds = cfg.dataset
    shape = tuple(ds.spec.shape)
    test = ds.test[:n]
    gen = torch.Generator(device=method.device).manual_seed(seed)
    miss = inpaint_mask(shape, mask, len(test), fraction=fraction, generator=torch.Generator().manual_seed(seed))
    x_obs = test.repeat_interleave(draws, 0)
    m_rep = miss.repeat_interleave(draws, 0)
    method.train(False)
    try:
        filled, acc = method.inpaint(x_obs, m_rep, generator=gen, sweeps=sweeps)
    finally:
        method.train(True)
    filled = filled.detach().float().cpu().reshape(len(test), draws, *shape)
    lo, hi = ds.spec.value_range or (0.0, 1.0)
    shown = test.float().clone()
    shown[miss] = 0.5 * (lo + hi)
    rows = torch.cat([test.float()[:, None], shown[:, None], filled], 1).reshape(-1, *shape)
    img_shape = shape if len(shape) == 3 else (1, 1, shape[0])
    write_grid_png(rows.reshape(-1, *img_shape), out, (lo, hi), nrow=draws + 2)
    return {"out": str(out), "step": step, "images": len(test), "draws": draws, "mask": mask, "fraction": fraction,
            "missing_fraction": float(miss.float().mean()), "acceptance": acc,
            "sweeps": sweeps if sweeps is not None else getattr(method.config, "gibbs_sweeps", None)}


__all__ = ["check_draw_args", "choose_sampler", "draw_samples", "evaluate_run", "guided_samples", "inpaint_mask",
           "inpaint_run", "load_run", "own_sampler", "run_sampler", "sample_run", "score_samples"]
