"""Command line: ``ebmlab list | train | eval | sample | score | report | bench | classifier | sr``. Every command
calls the Python API."""

from __future__ import annotations

import argparse
import errno
import json
import sys
from pathlib import Path
from typing import Any

from .errors import EbmlabError
from .metadata import DEVICES


def _list(args) -> None:
    if args.options:
        print(options_listing(args.options, args.data, data_dir=args.data_dir, settings=args.settings))
        return
    if args.settings:
        raise EbmlabError("--settings goes with --options METHOD --data DATA")
    if args.data:
        raise EbmlabError("--data goes with --options METHOD (the effective options of METHOD on that data set)")
    from .data import DATASETS, dataset_names
    from .methods import METHODS
    from .metrics.registry import PLUGINS as METRICS
    from .plugins import REGISTRIES

    print("methods:")
    for name, cls in METHODS.items():
        print(f"  {name:<14} {cls.description}" + _from(METHODS.sources.get(name)))
    print("data sets:")
    for name, desc in dataset_names().items():
        print(f"  {name:<16} {desc}" + _from(DATASETS.sources.get(name)))
    print("  PATH.npz|.npy   a user's arrays (vectors or images); PATH/ a folder of PNG/JPEG images")
    if METRICS:
        print("metrics of plugins:")
        for name, (m, _) in METRICS.items():
            print(f"  {name:<16} {m.meaning}" + _from(METRICS.sources[name]))
    failed = {name: why for registry in REGISTRIES for name, why in registry.failed.items()}
    if failed:
        print("plugins that could not be loaded:")
        for name, why in failed.items():
            print(f"  {name:<16} {why}")
    print("options of a method on a data set: ebmlab list --options METHOD --data DATA")


def _from(source: str | None) -> str:
    """Where a method, data set or metric comes from, when not from ebmlab itself."""
    return f"  [from {source}]" if source and source != "ebmlab" else ""


def options_listing(method: str, data: str | None, data_dir: str | None = None, settings: str | None = None) -> str:
    """Every option of METHOD with the value a run on DATA would use, where it came from, and what it means; with a
    settings set, also where in the paper's release each of its values comes from."""
    from .config import to_dict
    from .methods import get_method
    from .options import describe
    from .config import RunConfig, resolve_config, settings_sources

    cls = get_method(method)
    if settings is not None and data is None:
        raise EbmlabError("--settings needs --data (a settings set has files per data kind)")
    released: dict[str, str] = {}
    if data is not None:
        over = {**({"data_dir": data_dir} if data_dir else {}), **({"settings": settings} if settings else {})}
        cfg = resolve_config(method, data, overrides=over or None)
        run, mcfg = to_dict(cfg.run), to_dict(cfg.method_config)
        head = (f"{method} on {data} — the values a run uses (presets applied: {', '.join(cfg.presets) or 'none'}):")
        src = cfg.source
        if settings:
            released = settings_sources(settings, method, data, cfg.dataset.kind)
    else:
        run, mcfg = to_dict(RunConfig()), to_dict(cls.Config())
        head = (f"{method}: class defaults; presets for the data set change some of them — add --data DATA to see "
                f"the values a run uses")
        src = (lambda name: "default")
    lines = [head, "  (set any of them with key=value after the command, or in a --config TOML file)"]
    for title, values, owner in (("run options (every method)", run, None), (f"{method} options", mcfg, cls)):
        lines.append(f"{title}:")
        for name, v in values.items():
            shown = ",".join(map(str, v)) if isinstance(v, list) else repr(v) if isinstance(v, str) else str(v)
            origin = src(name)
            meaning = describe(name, owner, RunConfig if owner is None else cls.Config)
            lines.append(f"  {name:<22} {shown:<18} {('[' + origin + ']'):<24} {meaning}")
            if name in released and origin.startswith("settings "):
                lines.append(f"  {'':<22} {'':<18} {'':<24} from the release: {released[name]}")
    return "\n".join(lines)


def _check_image_size(size: int | None) -> None:
    """--image-size N resizes an image folder to N x N: N ≥ 1 (leaving the flag out keeps the images' size)."""
    if size is not None and size < 1:
        raise EbmlabError(f"--image-size takes the side to resize the images to, ≥ 1; got {size} (leave it out, or "
                          f"image_size=0, to keep the images' own size)")


def _train(args) -> None:
    from .config import parse_override_strings
    from .trainer import train

    overrides = parse_override_strings(args.overrides)
    _check_image_size(args.image_size)
    for key in ("steps", "seed", "device", "data_dir", "image_size"):
        flag = getattr(args, key)
        if flag is not None:
            if key in overrides:
                raise EbmlabError(f"--{key.replace('_', '-')} {flag} and {key}={overrides[key]} both set {key}; "
                                  f"give it once")
            overrides[key] = flag
    if args.branch_at is not None and args.branch_from is None:
        raise EbmlabError("--branch-at STEP names a kept checkpoint of the run given by --branch-from RUN_DIR; give both")
    res = train(args.method, args.data, out=args.out, config_file=args.config, overrides=overrides,
                progress=not args.no_progress, echo=True, branch_from=args.branch_from, branch_at=args.branch_at)
    if res.rank != 0:  # another process of a torchrun job: rank 0 reports
        return
    if res.finished_before:
        print(f"the run is already at step {res.resumed_from}: nothing to train (a larger steps= or budget "
              f"extends it); "
              f"its summary, anew:")
    elif res.resumed_from:
        print(f"resumed from step {res.resumed_from}")
    print(f"run directory: {res.run_dir}")
    if res.summary:
        print(_format_metrics(res.summary))


def _format_metrics(summary: dict) -> str:
    from .present import k_table, text_table

    m = summary["metrics"]
    table, in_table = k_table(m)
    best = " (the best checkpoint, best.pt)" if summary.get("checkpoint", "").startswith("best") else ""
    lines = [f"{summary['method']} on {summary['data']} at step {summary['step']}{best} (↑ higher is better, ↓ "
             f"lower; bookkeeping and notes are in summary.json):"]
    how = summary.get("evaluation", "full")
    if how != "full":
        lines.append(f"  evaluation: {how}" + ("; `ebmlab eval RUN_DIR` evaluates the run" if not m else ""))
    return "\n".join(lines + text_table(summary, skip=in_table) + table)


def _threads(args, *, run_dir: str | None = None, data: str | None = None, data_dir: str | None = None) -> str:
    """torch's CPU threads for a command that computes: ``--threads``, else the CPUs this process may use (1 on 2D
    toy data: the run's or the data set's kind decides); returns what to print beside the command's result (nothing
    is printed here: a command refused afterwards says one line)."""
    from .threads import apply, why

    if args.threads is not None and args.threads < 1:
        raise EbmlabError(f"--threads takes a count ≥ 1 (leave it out for the CPUs this process may use), got "
                          f"{args.threads}")
    kind = None
    try:
        from .data import get_dataset

        if run_dir is not None:
            cfg = json.loads((Path(run_dir) / "config.json").read_text())
            kind = get_dataset(cfg["data"], data_dir=cfg["run"].get("data_dir") or None,
                               image_size=cfg["run"].get("image_size", 0)).kind
        elif data is not None:
            kind = get_dataset(data, data_dir=data_dir).kind
    except (OSError, ValueError, KeyError, TypeError, EbmlabError):
        kind = None  # the command itself says what is wrong with the run or the data
    n = apply(args.threads, kind)
    return f"{n} thread{'s' if n != 1 else ''} ({why(args.threads, kind)}; --threads sets it)"


def _eval(args) -> None:
    from .api import evaluate_run

    import os

    threads = _threads(args, run_dir=args.run_dir)

    if args.ais is not None and args.ais < 1:
        raise EbmlabError(f"--ais takes a positive number of intermediate distributions, got {args.ais}")
    res = evaluate_run(args.run_dir, probe=args.probe, inception=args.inception or os.environ.get("EBMLAB_INCEPTION"),
                       ais_steps=args.ais or 0, progress=True, device=args.device, checkpoint=args.checkpoint,
                       ood=args.ood)
    if args.json:
        from .atomic import json_safe

        print(json.dumps(json_safe(res), indent=2))
    else:
        print(_format_metrics(res))
        print(f"  computed with {threads}")


def _inpaint(args) -> None:
    from .api import inpaint_run

    threads = _threads(args, run_dir=args.run_dir)
    res = inpaint_run(args.run_dir, args.out, n=args.n, draws=args.draws, mask=args.mask, fraction=args.fraction,
                      sweeps=args.sweeps, seed=args.seed, device=args.device)
    print(f"wrote {res['out']}: {res['images']} test images, {res['draws']} completions each of the "
          f"{res['mask']} {res['missing_fraction']:.0%} (Gibbs, {res['sweeps']} sweeps, mean acceptance "
          f"{res['acceptance']:.2f}); {threads}")


def _semisup(args) -> None:
    from .semisup import run_semisup

    threads = _threads(args, data=args.data, data_dir=args.data_dir)
    res = run_semisup(args.data, run=args.run, labels=args.labels, rhos=args.rho, seeds=args.seeds, steps=args.steps,
                      out=args.out, data_dir=args.data_dir, device=args.device)
    print(f"{res['data']}, {res['labels']} labels, {res['seeds']} seeds, {res['steps']} steps; test error over "
          f"{res['test_points']} test images ({threads}):")
    for r in res["rows"]:
        print(f"  rho={r['rho']:<6g} {100 * r['mean']:.2f} ± {100 * r['std']:.2f} %")
    if (c := res["augmentation_check"]) is not None:
        print(f"the transition keeps the domain classifier's class of {100 * c['class_kept']:.2f} % of the test images "
              f"(its accuracy {100 * c['accuracy_real']:.2f} % on them, {100 * c['accuracy_augmented']:.2f} % on "
              f"their transitions)")
    if args.out is not None:
        print(f"wrote {args.out}")


def _sample(args) -> None:
    import math

    from .api import check_draw_args, choose_sampler, draw_samples, load_run
    from .export import check_output, check_sample_room, output_kind, write_samples

    # every argument is checked before the (possibly long) sampling starts
    kind = output_kind(args.out)
    threads = _threads(args, run_dir=args.run_dir)
    check_draw_args(args.n, args.seed, args.batch_size, ("-n", "--seed", "--batch-size"))
    loaded = load_run(args.run_dir, args.device, args.checkpoint)
    cfg, method, _ = loaded
    check_output(args.out, kind, cfg.dataset.spec)
    check_sample_room(args.n, tuple(cfg.dataset.spec.shape), args.out, kind)
    guided, base_only = choose_sampler(method, args.sampler, inverse_temperature=args.inverse_temperature,
                                       mcmc_steps=args.mcmc_steps, mcmc_step_size=args.mcmc_step_size,
                                       mcmc_friction=args.mcmc_friction, mcmc_compile=args.mcmc_compile)
    x, info = draw_samples(args.run_dir, args.n, seed=args.seed, guided=guided, base_only=base_only,
                           progress=not args.no_progress, batch_size=args.batch_size, loaded=loaded)
    smp = info["sampler"]
    line = f"sampler: {smp['kind']}"
    if "sampler" in smp:
        line += (f" ({smp['sampler']}, inverse temperature {smp['inverse_temperature']}, {smp['mcmc_steps']} "
                 f"steps, step size {smp['mcmc_step_size']}"
                 + (f", friction {smp['mcmc_friction']}" if smp["sampler"] == "kinetic" else "")
                 + (f", compile {smp['mcmc_compile']}" if smp.get("mcmc_compile", "off") != "off" else "") + ")")
    from .samplers.latent import SAMPLERS

    if smp.get("sampler") in SAMPLERS and not SAMPLERS[smp["sampler"]].algorithm.adaptable:
        line += "; no accept/reject step"
    for key, label in (("acceptance", "mean acceptance"), ("latent_energy_start", "latent energy at the start"),
                       ("latent_energy_end", "at the end")):
        if info.get(key) is not None and math.isfinite(info[key]):
            line += f"; {label} {info[key]:.4g}"
    print(line + f"; {threads}")
    test = cfg.dataset.test if kind == "png" and not cfg.dataset.spec.is_image else None
    from .atomic import sole_writer

    out = Path(args.out)
    with sole_writer(out.parent, out.name):  # a killed earlier sample of this --out left temporaries: gone
        print("wrote " + write_samples(x, args.out, kind, cfg.dataset.spec, info, test=test))


def _score(args) -> None:
    from .api import score_samples

    _check_image_size(args.image_size)
    threads = _threads(args, data=args.data, data_dir=args.data_dir)
    res = score_samples(args.generated, args.data, data_dir=args.data_dir, image_size=args.image_size or 0,
                        progress=True)
    if args.json:
        from .atomic import json_safe

        print(json.dumps(json_safe(res), indent=2))
        return
    from .present import text_table

    print(f"{res['n_samples']} samples from {args.generated} against {args.data} (↑ higher is better, ↓ lower; "
          f"{threads}):")
    print("\n".join(text_table(res)))
    print(f"  protocol: {res['protocol']['samples_compared']}")


def _classifier(args) -> None:
    from .data import get_dataset
    from .metrics.classifier import (check_classifiable, classifier_dir, classifier_name, load_classifier,
                                     train_classifier)

    ds = get_dataset(args.data, data_dir=args.data_dir)
    check_classifiable(ds)
    if args.action == "train":
        clf = train_classifier(ds, epochs=args.epochs, seed=args.seed, out_dir=args.out)
        where = args.out or classifier_dir()
    else:
        where = args.out or classifier_dir()
        clf = load_classifier(classifier_name(ds), where)
    print(f"classifier {clf.info['data']} in {where}: test accuracy {clf.test_accuracy:.4f} on {clf.info['n_test']} "
          f"test images; sha256 {clf.sha256}")


def _shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    i, sep, n = text.partition("/")
    try:
        shard = (int(i), int(n))
    except ValueError:
        shard = None
    if not sep or shard is None or not 0 <= shard[0] < shard[1]:
        raise EbmlabError(f"--shard takes i/n with 0 ≤ i < n (the i-th of n parts, counted from 0); got {text!r}")
    return shard


BUDGET_STEPS = 10_000_000  # the steps of a budgeted bench run when --steps is not given: an upper bound only


def _bench(args) -> None:
    from .bench import collect, load_grid, render_plan, run_bench, write_report
    from .config import parse_override_strings

    if args.suite == "render":
        if not args.overrides:
            raise EbmlabError("usage: ebmlab bench render DIR [DIR ...] (the --out directories of finished benches)")
        plans = [render_plan(d) for d in args.overrides]  # each checked before any is written
        for d, plan in zip(args.overrides, plans):
            write_report(**plan)
            print((Path(d) / "results.md").read_text())
        print(f"wrote results.md and results.json again in {', '.join(args.overrides)} (same runs; this version's "
              f"table)")
        return
    if args.suite == "collect":
        if len(args.overrides) != 1:
            raise EbmlabError("usage: ebmlab bench collect DIR (the --out directory of the sharded parts)")
        rep = collect(args.overrides[0])
        print((Path(args.overrides[0]) / "results.md").read_text())
        if rep.get("missing"):
            print(f"not yet in the table: {', '.join(rep['missing'])}")
        return
    if args.suite not in ("toy", "images"):
        raise EbmlabError(f"unknown benchmark suite {args.suite!r}; valid: toy, images, collect, render")
    shard = _shard(args.shard)
    from .methods import METHODS

    # "all": the generative methods; a semi-supervised one (EBGAN-LN) is judged by its classifier (benchmarks/ebgan_ln)
    methods = ([n for n, c in METHODS.items() if not c.needs_labels] if args.methods == "all"
               else [m for m in args.methods.split(",") if m])
    default_data = "ring8,grid25" if args.suite == "toy" else "stacked_digits"
    data = [d for d in (args.data or default_data).split(",") if d]
    cmd = "ebmlab " + " ".join(args.argv)
    overrides = parse_override_strings(args.overrides)
    steps = args.steps
    for flag, key, value in (("--budget-seconds", "max_seconds", args.budget_seconds),
                             ("--budget-cpu-seconds", "max_cpu_seconds", args.budget_cpu_seconds),
                             ("--budget-evals", "max_evals", args.budget_evals)):
        if value is not None:
            if value <= 0:
                raise EbmlabError(f"{flag} must be positive, got {value}")
            if key in overrides:
                raise EbmlabError(f"{flag} and {key}= both set the budget; give it once")
            overrides[key] = value
            steps = steps or BUDGET_STEPS  # the budget ends each run; steps is only an upper bound
    rep = run_bench(methods, data, args.seeds, out=args.out, steps=steps, overrides=overrides, jobs=args.jobs,
                        command=cmd,
                        grid=load_grid(args.grid) if args.grid else None, suite=args.suite, shard=shard,
                        recalled=args.recalled)
    if shard is not None:
        print(f"part {shard[0]} of {shard[1]}: {len(rep['runs'])} runs in {rep['meta']['wall_s']:.0f} s, written to "
              f"{Path(args.out) / 'parts'}; merge the parts with: ebmlab bench collect {args.out}")
        return
    print((Path(args.out) / "results.md").read_text())
    print(f"wrote {Path(args.out) / 'results.md'}, results.json and report.html ({rep['meta']['wall_s']:.0f} s); "
          f"open {Path(args.out) / 'report.html'} in a browser")


def _report(args) -> None:
    from .report import write
    from .atomic import check_output_dir

    out = Path(args.out)
    check_output_dir(out.parent)
    write(args.paths, out, title=args.title)
    print(f"wrote {out} — open it in a browser, e.g. xdg-open {out} (macOS: open {out})")


def _sr(args: argparse.Namespace) -> None:
    from .sr import api

    if args.sr_command == "train":
        res = api.train_sr(args.data, args.model, out=args.out, scale=args.scale, steps=args.steps, seed=args.seed,
                           options=api.parse_options(args.overrides), data_dir=args.data_dir, crop=args.crop,
                           progress=not args.no_progress, n_eval=args.n_eval, threads=args.threads)
        t = res.get("test", {})
        print(f"{args.model} on {args.data} x{args.scale}: PSNR {t.get('psnr', float('nan')):.2f} dB, SSIM "
              f"{t.get('ssim', float('nan')):.4f}, stats distance {t.get('stats_dist', float('nan')):.4f}, "
              f"gradient-energy ratio {t.get('grad_ratio', float('nan')):.3f} on {t.get('n_test', 0)} test images; "
              f"grid in {Path(args.out) / 'grid.png'}")
    elif args.sr_command == "eval":
        res = api.evaluate_sr(args.run_dir, n=args.n, progress=not args.no_progress, threads=args.threads)
        print(json.dumps(res, indent=2))
    else:
        res = api.upscale(args.run_dir, args.input, args.out, tile=args.tile, progress=not args.no_progress,
                          threads=args.threads)
        print(f"wrote {res['out']} ({res['out_size'][1]}x{res['out_size'][0]}) in {res['seconds']} s")


EXAMPLES = {
    "list": """examples:
  ebmlab list                                  methods and data sets
  ebmlab list --options kale --data ring8      every option of kale on ring8: value, origin, meaning
  ebmlab list --options bib --data stacked_fashion32 --settings paper   EBM-BB's released settings, with sources""",
    "train": """examples:
  ebmlab train kale --data ring8 --steps 2000 --out runs/kale-ring8
  ebmlab train gan --data fashion lr_g=1e-4 n_critic=5 --device auto
  ebmlab train vae --data my_vectors.npz --config my.toml        (a TOML file with [run] and [method] tables)
  torchrun --nproc_per_node 2 -m ebmlab train gan --data fashion batches=epochs
  ebmlab train gan --data ring8 --steps 3000 --out runs/long eval_every=500 keep_checkpoints=true
  ebmlab train gan --data ring8 --steps 1200 --out runs/short --branch-from runs/long eval_every=500
                                                  (steps 1–1000 are runs/long's, bit for bit; 200 are trained)
the same command on an existing --out resumes it from its last checkpoint""",
    "eval": """examples:
  ebmlab eval runs/kale-ring8
  ebmlab eval runs/gan-fashion --device cpu --probe --json
  ebmlab eval runs/vgan-ring8 --ais 500""",
    "sample": """examples:
  ebmlab sample runs/kale-ring8 -n 5000 --out samples.npy         the run's own sampler and settings
  ebmlab sample runs/gan-fashion -n 64 --out grid.png              a picture (a scatter plot for 2D data)
  ebmlab sample runs/gan-fashion -n 10000 --out gen/               one PNG per sample, then: ebmlab score gen/ --data fashion
  ebmlab sample runs/kale-ring8 -n 5000 --out s.npz --sampler mala --mcmc-steps 200""",
    "inpaint": """examples:
  ebmlab inpaint runs/bihm-mnist --out inpaint.png                   the bottom half of 8 test images, 6 draws each
  ebmlab inpaint runs/bihm-mnist --out r.png --mask random --fraction 0.7 --sweeps 200""",
    "semisup": """examples:
  ebmlab semisup --data fashion --rho 0                      the supervised baseline on 1000 balanced labels
  ebmlab semisup --data fashion --run runs/vcd-fashion --rho 0,0.01,0.1,1 --seeds 3 --out table.json""",
    "score": """examples:
  ebmlab score gen/ --data fashion              a folder of PNGs against Fashion-MNIST's test split
  ebmlab score samples.npy --data ring8         samples in the data's units (as `ebmlab sample` writes them)
  ebmlab score gen/ --data real_images/         against a folder of images (its held-out 10 %)""",
    "report": """examples:
  ebmlab report runs/kale-ring8 runs/gan-ring8 --out report.html
  ebmlab report bench-toy --out bench.html""",
    "bench": """examples:
  ebmlab bench toy --methods gan,kale --seeds 3 --jobs 2 --out bench-toy
  ebmlab bench images --methods all --data stacked_digits --steps 500 --out bench-img
  ebmlab bench toy --shard 0/4 --out b; ebmlab bench collect b
  ebmlab bench render bench-toy
  ebmlab bench images --methods gan,kale,vgan --data stacked_digits --seeds 3 --budget-seconds 600 --out eq-time""",
    "classifier": """examples:
  ebmlab classifier train --data fashion
  ebmlab classifier show --data my_labelled_images.npz""",
    "sr": """examples:
  ebmlab sr train --data fashion --model stats --out runs/sr-stats
  ebmlab sr eval runs/sr-stats
  ebmlab sr upscale runs/sr-stats --in small.png --out big.png""",
}


def _sub(sub, name: str, help_: str):
    return sub.add_parser(name, help=help_, description=help_, epilog=EXAMPLES.get(name),
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="ebmlab", description="Energy-based models trained with a generator: train, "
                                "sample, evaluate and compare them.", epilog="`ebmlab COMMAND --help` shows a "
                                "command's options and examples.")
    p.add_argument("--version", action="version", version=f"ebmlab {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    device: dict[str, Any] = dict(choices=DEVICES, help="where to run (default auto: CUDA when this "
                                  "machine has it, whatever the run was trained on)")
    _add_list(sub)
    _add_train(sub)
    _add_eval(sub, device)
    _add_sample(sub, device)
    _add_inpaint(sub, device)
    _add_semisup(sub, device)
    _add_score(sub)
    _add_classifier(sub)
    _add_report(sub)
    _add_bench(sub)
    _add_sr(sub)
    _add_claims(sub)
    return p


def _add_list(sub: Any) -> None:
    s = _sub(sub, "list", "list methods and data sets, or the options of a method")
    s.add_argument("--options", metavar="METHOD", help="every option of METHOD: value, where it came from, meaning")
    s.add_argument("--data", help="with --options: the values a run of METHOD on this data set uses (presets applied)")
    s.add_argument("--data-dir", help="with --data: directory of local data files (else EBMLAB_DATA)")
    s.add_argument("--settings", help="with --data: a named settings set over the presets (paper: the paper's "
                                      "released settings, each value with the release file it comes from)")
    s.set_defaults(fn=_list)


def _add_train(sub: Any) -> None:
    s = _sub(sub, "train", "train a method on a data set into a run directory (resumes if it exists)")
    s.add_argument("method", help="a method name (`ebmlab list`)")
    s.add_argument("--data", required=True, help="a data set name, a .npz/.npy/.csv file or a folder of images")
    s.add_argument("--steps", type=int, help="training steps (the same as steps=N)")
    s.add_argument("--seed", type=int, help="seed of initialisation, batches and evaluation (default 0)")
    s.add_argument("--out", help="run directory (default runs/METHOD-DATA-sSEED, DATA a file's stem)")
    s.add_argument("--config", help="TOML file with [run] and [method] tables")
    s.add_argument("--device", choices=DEVICES, help="where to train (default auto: CUDA when "
                   "available)")
    s.add_argument("--data-dir", help="directory of local data files (MNIST, CIFAR-10); else EBMLAB_DATA")
    s.add_argument("--image-size", type=int, help="resize a user's image folder to this side")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--branch-from", metavar="RUN_DIR", help="start the new run --out as a branch of this run: its "
                   "first steps are that run's, read from a checkpoint it kept (keep_checkpoints=true); the options "
                   "may differ in steps, budgets and placement only")
    s.add_argument("--branch-at", type=int, metavar="STEP", help="the kept checkpoint to branch at (default: the "
                   "last one below the new run's steps)")
    s.add_argument("overrides", nargs="*", help="key=value options (see `ebmlab list --options METHOD`)")
    s.set_defaults(fn=_train)


def _add_eval(sub: Any, device: dict[str, Any]) -> None:
    s = _sub(sub, "eval", "evaluate the latest checkpoint of a run (on any device)")
    s.add_argument("run_dir", help="a run directory written by `ebmlab train`")
    s.add_argument("--json", action="store_true", help="print the results as JSON")
    s.add_argument("--probe", action="store_true", help="add the linear probe of the frozen energy/discriminator features")
    s.add_argument("--inception", metavar="PATH", help="real FID/IS with these Inception weights "
                   "(pt_inception-2015-12-05-6726825d.pth; else EBMLAB_INCEPTION)")
    s.add_argument("--ais", type=int, metavar="T", help="AIS log Z of the energy with T and 2T intermediate distributions")
    s.add_argument("--ood", metavar="DATA", help="out-of-distribution detection: the energy's AUROC separating the "
                   "run's test split from DATA's (a data set's name or a .npy/.npz/image folder of the run's shape)")
    s.add_argument("--device", **device)
    s.add_argument("--checkpoint", choices=["latest", "best"], default="latest",
                   help="latest (default), or best: the model kept by training with keep_best=METRIC")
    s.add_argument("--threads", type=int, help="torch's CPU threads (default: the CPUs this process may use; 1 on 2D "
                   "data)")
    s.set_defaults(fn=_eval)


def _add_sample(sub: Any, device: dict[str, Any]) -> None:
    s = _sub(sub, "sample", "draw samples from a trained run into a .npy/.npz file, a PNG picture or a folder of PNGs")
    s.add_argument("run_dir", help="a run directory written by `ebmlab train`")
    s.add_argument("-n", type=int, required=True, help="number of samples")
    s.add_argument("--out", required=True, help="NAME.npy, NAME.npz (samples + how they were drawn), NAME.png (a "
                   "grid, or a scatter plot for 2D data) or DIR/ (one PNG per image)")
    s.add_argument("--seed", type=int, default=0, help="the same seed gives the same samples (default 0)")
    s.add_argument("--batch-size", type=int, default=1000, help="samples drawn at a time (default 1000)")
    s.add_argument("--device", **device)
    s.add_argument("--checkpoint", choices=["latest", "best"], default="latest",
                   help="latest (default), or best: the model kept by training with keep_best=METRIC")
    from typing import get_args

    from .metadata import SamplerChoice  # the rows of samplers.latent.SAMPLERS and none, without importing torch

    s.add_argument("--sampler", choices=get_args(SamplerChoice),
                   help="energy-guided latent MCMC (methods with a generator and an energy), starting from the run's "
                   "own sampler settings where it has them; none: the generator alone. Default: as the run samples")
    # the sampler's settings under GuidedConfig's names (a KALE run's options have the same); the short flags of
    # earlier versions stay accepted
    s.add_argument("--inverse-temperature", "--temperature", type=float, dest="inverse_temperature",
                   help="inverse temperature T ≥ 0 in U(z) = |z|^2/2 + T E(G(z)) (default: the run's, else 1)")
    s.add_argument("--mcmc-steps", type=int, help="MCMC steps (default: the run's, else 500)")
    s.add_argument("--mcmc-step-size", "--step-size", type=float, dest="mcmc_step_size",
                   help="step size (gamma for kinetic Langevin; default: the run's, else 1e-3)")
    s.add_argument("--mcmc-friction", "--friction", type=float, dest="mcmc_friction",
                   help="kinetic Langevin friction kappa (default: the run's, else 1)")
    s.add_argument("--mcmc-compile", choices=["off", "on", "auto"], dest="mcmc_compile",
                   help="run each sampler step as one torch.compile'd graph: the same samples to float rounding, "
                   "after a compile of tens of seconds (auto: chains of >= 500 steps). Default: the run's, else off")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--threads", type=int, help="torch's CPU threads (default: the CPUs this process may use; 1 on 2D "
                   "data)")
    s.set_defaults(fn=_sample)


def _add_inpaint(sub: Any, device: dict[str, Any]) -> None:
    s = _sub(sub, "inpaint", "fill in the masked part of test images from a run's conditional p(x_missing | x_observed)")
    s.add_argument("run_dir", help="a run directory written by `ebmlab train` (bihm or rws)")
    s.add_argument("--out", required=True, help="NAME.png: one row per image — original, observed part, draws")
    s.add_argument("-n", type=int, default=8, help="test images (default 8)")
    s.add_argument("--draws", type=int, default=6, help="completions per image (default 6)")
    s.add_argument("--mask", default="bottom", help="bottom, top, left, right (that fraction of rows/columns) or "
                   "random (that fraction of values); default bottom")
    s.add_argument("--fraction", type=float, default=0.5, help="share of the image to fill in (default 0.5)")
    s.add_argument("--sweeps", type=int, help="Gibbs sweeps (default: the run's gibbs_sweeps)")
    s.add_argument("--seed", type=int, default=0, help="seed of the chains and of a random mask (default 0)")
    s.add_argument("--device", **device)
    s.add_argument("--threads", type=int, help="torch's CPU threads (default: the CPUs this process may use; 1 on 2D "
                   "data)")
    s.set_defaults(fn=_inpaint)


def _add_semisup(sub: Any, device: dict[str, Any]) -> None:
    s = _sub(sub, "semisup", "semi-supervised classification with k labels, augmented by a trained run's transitions")
    s.add_argument("--data", required=True, help="a labelled image data set (fashion, mnist, digits, ...)")
    s.add_argument("--run", help="a vgan_vcd run on the same data: its transitions T(x) augment the labelled images")
    s.add_argument("--labels", type=int, default=1000, help="labelled training images, balanced per class (default "
                   "1000)")
    s.add_argument("--rho", default="0,0.01,0.1,1", help="weights of the augmented loss (0: no augmentation); "
                   "default 0,0.01,0.1,1")
    s.add_argument("--seeds", type=int, default=3, help="label subsets / initialisations (default 3)")
    s.add_argument("--steps", type=int, default=600, help="classifier training steps of batch 100 (default 600)")
    s.add_argument("--out", help="NAME.json for the table")
    s.add_argument("--data-dir", help="directory of local data files; else EBMLAB_DATA")
    s.add_argument("--device", **device)
    s.add_argument("--threads", type=int, help="torch's CPU threads (default: the CPUs this process may use; 1 on 2D "
                   "data)")
    s.set_defaults(fn=_semisup)


def _add_score(sub: Any) -> None:
    s = _sub(sub, "score", "score generated samples (a .npy/.npz or a folder of images) against a data set")
    s.add_argument("generated", help=".npy/.npz of samples in the data's units, or a folder of PNG/JPEG images")
    s.add_argument("--data", required=True, help="a data set name, or a user's file or image folder (its held-out "
                   "10 %% is the reference)")
    s.add_argument("--data-dir", help="directory of local data files; else EBMLAB_DATA")
    s.add_argument("--image-size", type=int, help="resize the --data image folder to this side")
    s.add_argument("--json", action="store_true", help="print the results as JSON")
    s.add_argument("--threads", type=int, help="torch's CPU threads (default: the CPUs this process may use; 1 on 2D "
                   "data)")
    s.set_defaults(fn=_score)


def _add_classifier(sub: Any) -> None:
    s = _sub(sub, "classifier", "train or show the domain classifier behind the image metrics")
    s.add_argument("action", choices=["train", "show"], help="train it, or show the stored one")
    s.add_argument("--data", required=True, help="a labelled image data set (digits, fashion, mnist, cifar10, ...)")
    s.add_argument("--data-dir", help="directory of local data files; else EBMLAB_DATA")
    s.add_argument("--epochs", type=int, help="training epochs (default: per data set)")
    s.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    s.add_argument("--out", help="directory (default: EBMLAB_CLASSIFIERS or ~/.cache/ebmlab/classifiers)")
    s.set_defaults(fn=_classifier)


def _add_report(sub: Any) -> None:
    s = _sub(sub, "report", "one self-contained HTML page of runs or bench directories")
    s.add_argument("paths", nargs="+", metavar="RUN_DIR", help="run directories and/or bench --out directories")
    s.add_argument("--out", default="report.html", help="the HTML file to write (default report.html)")
    s.add_argument("--title", help="the page's title")
    s.set_defaults(fn=_report)


def _add_bench(sub: Any) -> None:
    s = _sub(sub, "bench", "run a benchmark grid and write a results table")
    s.add_argument("suite", help="benchmark suite: toy (2D columns) or images (image columns); or collect DIR: merge "
                   "the parts of a sharded grid into its table; or render DIR [DIR ...]: write a finished bench's "
                   "table again from its recorded runs, in this version's presentation (nothing is retrained)")
    s.add_argument("--methods", default="gan,vgan", help="comma-separated methods, or all (the generative ones: not the semi-supervised ebgan_ln)")
    s.add_argument("--data", help="comma-separated data sets (default: ring8,grid25 for toy, stacked_digits for images)")
    s.add_argument("--seeds", type=int, default=5, help="seeds per method and data set (default 5)")
    s.add_argument("--steps", type=int, help="training steps of every run (default: each method's)")
    s.add_argument("--out", default="bench-toy", help="output directory (default bench-toy)")
    s.add_argument("--jobs", type=int, default=1, help="parallel runs (each uses one thread)")
    s.add_argument("--budget-seconds", type=float, help="train every run for this many seconds of its training loop "
                   "instead of a number of steps (compute-matched comparison; the table shows the steps each reached)")
    s.add_argument("--budget-cpu-seconds", type=float, help="train every run for this many CPU seconds of its "
                   "training loop (one thread each: the time it takes alone, whatever runs beside it; CPU runs)")
    s.add_argument("--budget-evals", type=int, help="train every run until this many samples have passed forward "
                   "through its networks (deterministic compute matching)")
    s.add_argument("--grid", metavar="FILE", help="TOML file: option (or 'a,b' for options set together) = [values]; "
                   "the product of the axes a method has is run for each method")
    s.add_argument("--shard", metavar="i/n", help="run only the i-th of n disjoint parts of the grid (i from 0), e.g. "
                   "one per job of a job array; then `ebmlab bench collect OUT`")
    s.add_argument("--recalled", metavar="FILE", help="TOML file of rows recalled from papers to show beside the "
                   "results, labelled as recalled (e.g. benchmarks/recalled.toml)")
    s.add_argument("overrides", nargs="*", help="key=value options applied to every run")
    s.set_defaults(fn=_bench)


def _claims(args) -> None:
    from .claims import verdict
    from .claims.spec import get_claim, load_all, result_key

    if args.claims_command in ("list", "render"):
        claims, bad = load_all(args.specs)
        if args.claims_command == "list":
            from .claims.arms import small_cost
            from .claims.render import stale
            from .claims.verdict import device_verdicts

            for c in claims:
                v = verdict(c, stale=stale(c))
                scales = ",".join(c.scales) or c.status.replace("_", " ")
                gpu = "".join(f"; {key}: {g.text}" + (" (stale)" if stale(c, key) else "")
                              for key, g in device_verdicts(c).items())  # runs on a GPU, judged apart
                print(f"{c.id:<40} {c.paper:<9} {scales:<18} {v.text:<40} {small_cost(c)}{gpu}")
        else:
            from .claims.render import write

            if bad and not claims:  # nothing to render: nothing written
                raise EbmlabError("; ".join(bad.values()))
            counts = write(claims, args.out, bad)
            print(f"wrote {args.out}: {len(claims)} claim{'s' if len(claims) != 1 else ''} — "
                  + ", ".join(f"{n} {k}" for k, n in counts.items()))
        if bad:
            raise EbmlabError("; ".join(bad.values()) + (" (the other claims were listed)" if args.claims_command ==
                                                         "list" else " (the page lists the file as unreadable)"))
        return
    from .claims.run import run_claim

    claim = get_claim(args.id, args.specs)
    if args.dry_run:
        from .claims.plan import format_plan, plan_claim

        print(format_plan(claim, args.scale, plan_claim(claim, args.scale, seeds=args.seeds, out=args.out,
                                                        device=args.device, shard=_shard(args.shard))))
        return
    res = run_claim(claim, args.scale, seeds=args.seeds, out=args.out, jobs=args.jobs, device=args.device,
                    data_dir=args.data_dir, shard=_shard(args.shard), replace=args.replace,
                    command="ebmlab " + " ".join(args.argv))
    if "shard" in res:
        print(f"part {args.shard} done; run the same command without --shard to record the result (finished runs "
              f"are reused)")
        return
    from .claims.render import stale
    from .claims.verdict import device_verdicts, equal_steps_verdict

    c = get_claim(args.id, args.specs)
    key = result_key(args.scale, "cuda") if res.get("device") else None  # runs on a GPU: judged apart
    v = device_verdicts(c)[key] if key else verdict(c, stale=stale(c))
    on = f" on {res['device']}" if key else ""
    print(f"{claim.id}{on}: {v.text} — {v.detail}")
    if (es := equal_steps_verdict(c, key)) is not None:
        print(f"{claim.id}{on} at equal steps: {es.text} — {es.detail}")


def _add_claims(sub: Any) -> None:
    s = _sub(sub, "claims", "the papers' claims as specs: list them, re-run one, render benchmarks/claims.md")
    cs = s.add_subparsers(dest="claims_command", required=True, metavar="CLAIMS_COMMAND")
    lst = cs.add_parser("list", help="every claim: id, paper, scales, verdict, small-scale cost")
    r = cs.add_parser("run", help="run a claim at a scale, record its result beside the spec, print the verdict",
                      epilog="examples:\n  ebmlab claims run kale-guided-beats-base-ring8 --scale small\n"
                             "  ebmlab claims run bib-beats-gan-paper-nets --scale paper --device cuda --data-dir "
                             "~/data\n"
                             "  ebmlab claims run vgan-modes-beat-gan-stacked-fashion --scale medium --shard 0/4   "
                             "(one job of an array)\n"
                             "  ebmlab claims run kale-beats-gan-paper-nets --scale medium --dry-run   (where its runs "
                             "stand)", formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("id", help="the claim's id (`ebmlab claims list`)")
    r.add_argument("--scale", default="small", choices=("small", "medium", "paper"), help="default small")
    r.add_argument("--seeds", type=int, help="seeds, ≥ 1 (default: the spec's; the verdict rules need ≥ 3)")
    r.add_argument("--out", help="the root of the claims' runs (default claims-runs; runs are shared between claims "
                                 "and resumable)")
    r.add_argument("--jobs", type=int, default=1, help="parallel runs (each uses one thread)")
    r.add_argument("--device", help="cpu, cuda, auto (default: each run's own)")
    r.add_argument("--data-dir", help="directory of local data files (MNIST, CIFAR-10, ...); else EBMLAB_DATA")
    r.add_argument("--shard", metavar="i/n", help="run only the i-th of n parts of the claim's runs (i from 0), then "
                   "the equal-steps reruns of its seeds (seed mod n = i) whose budget runs have finished; a part "
                   "records nothing: the command without --shard records the result")
    r.add_argument("--replace", action="store_true", help="record the result even where it has fewer seeds than the "
                                                          "recorded one")
    r.add_argument("--dry-run", action="store_true", help="list the runs it would make or read and where each stands "
                                                          "(finished, training, stopped at a checkpoint, not started) "
                                                          "with the training left; nothing is run or written")
    rd = cs.add_parser("render", help="write benchmarks/claims.md from the specs and their results")
    rd.add_argument("--out", default="benchmarks/claims.md", help="default benchmarks/claims.md")
    for p in (lst, r, rd):
        p.add_argument("--specs", help="the claim specs directory (default benchmarks/claims, or EBMLAB_CLAIMS)")
    s.set_defaults(fn=_claims)


def _add_sr(sub: Any) -> None:
    s = _sub(sub, "sr", "super-resolution: train, evaluate and apply models (bicubic, tv, mse, stats)")
    srs = s.add_subparsers(dest="sr_command", required=True, metavar="SR_COMMAND")
    t = srs.add_parser("train", help="train or fit a super-resolution model into a run directory (resumes)",
                       add_help=False, formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("-h", "--help", action=_HelpWithModelOptions, nargs=0, help="show this help message and exit")
    t.add_argument("--data", required=True, help="fashion, skimage, or a folder of PNG/JPEG images")
    t.add_argument("--model", required=True, help="bicubic, tv, mse or stats")
    t.add_argument("--scale", type=int, default=4, help="up-sampling factor, 2 to 8 (default 4)")
    t.add_argument("--out", required=True, help="run directory")
    t.add_argument("--steps", type=int, help="training steps (default 3000 for mse/stats, 0 for bicubic/tv)")
    t.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    t.add_argument("--crop", type=int, default=64, help="crop side for skimage and image folders (default 64)")
    t.add_argument("--data-dir", help="directory of local data files; else EBMLAB_DATA")
    t.add_argument("--n-eval", type=int, default=500, help="test images evaluated at the end (default 500)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--threads", type=int, default=0,
                   help="torch's CPU threads (default 0: torch's default); kept for the run's eval and upscale")
    t.add_argument("overrides", nargs="*", help="model options key=value (e.g. phi=learned lr=1e-3)")
    t.set_defaults(fn=_sr)
    e = srs.add_parser("eval", help="PSNR, SSIM, statistics distance (and FD on fashion) on the test split",
                       epilog="examples:\n  ebmlab sr eval runs/sr-stats\n  ebmlab sr eval runs/sr-stats -n 50 "
                              "--threads 1      (writes summary-n50.json beside the run's summary)",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("run_dir", help="a run directory written by `ebmlab sr train`")
    e.add_argument("-n", type=int, default=500, help="test images (default 500)")
    e.add_argument("--threads", type=int, help="torch's CPU threads (default: the run's setting)")
    e.add_argument("--no-progress", action="store_true", help="no progress lines and bars")
    e.set_defaults(fn=_sr)
    u = srs.add_parser("upscale", help="upscale an image file of any size (processed in tiles)",
                       epilog="examples:\n  ebmlab sr upscale runs/sr-stats --in small.png --out big.png\n  "
                              "ebmlab sr upscale runs/sr-mse --in photo.jpg --out photo4x.jpg --tile 64",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    u.add_argument("run_dir", help="a run directory written by `ebmlab sr train`")
    u.add_argument("--in", dest="input", required=True, help="low-resolution PNG/JPEG")
    u.add_argument("--out", required=True, help="output .png or .jpg")
    u.add_argument("--tile", type=int, default=32, help="tile side in low-resolution pixels (default 32)")
    u.add_argument("--no-progress", action="store_true", help="no progress bar")
    u.add_argument("--threads", type=int, help="torch's CPU threads (default: the run's setting)")
    u.set_defaults(fn=_sr)


class _HelpWithModelOptions(argparse.Action):
    """`sr train --help`: the help with the models' options, gathered only when asked (they import torch)."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[no-untyped-def]
        parser.epilog = _sr_train_epilog()
        parser.print_help()
        parser.exit()


def _sr_train_epilog() -> str:
    """Examples, and every model's options with their defaults and meanings (from each Config's OPTIONS)."""
    import dataclasses

    from .sr.api import MODELS

    lines = ["examples:", "  ebmlab sr train --data fashion --model stats --out runs/sr-stats",
             "  ebmlab sr train --data skimage --model mse --scale 2 --out runs/sr-mse lr=1e-3 --threads 1",
             "  ebmlab sr train --data my_photos/ --crop 96 --model tv --out runs/sr-tv", "",
             "model options (key=value after the command):"]
    for name, cls in MODELS.items():
        fields = dataclasses.fields(cls.Config) if dataclasses.is_dataclass(cls.Config) else ()
        lines.append(f"  {name}:" + ("" if fields else " none"))
        for f in fields:
            meaning = cls.Config.OPTIONS.get(f.name, ("", ""))[1]
            lines.append(f"    {f'{f.name}={f.default!r}':<20} {meaning}")
    return "\n".join(lines)


def os_error_message(exc: OSError) -> str:
    """A file-system error as one line that says what to do; the run's files stay as they were (atomic writes)."""
    where = f" ({exc.filename})" if exc.filename else ""
    hints = {
        errno.ENOSPC: "the disk is full: free some space and run the same command again (a run resumes from its "
                      "last checkpoint)",
        errno.EDQUOT: "the disk quota is exceeded: free some space and run the same command again",
        errno.EROFS: "the file system is read-only: choose an output path you can write to",
        errno.EACCES: "permission denied: choose an output path you can write to, or fix the permissions",
        errno.EPERM: "operation not permitted: choose an output path you can write to",
        errno.ENAMETOOLONG: "a file name is too long: choose a shorter path",
        errno.ENOTDIR: "a part of the path is a file, not a directory: choose another path",
        errno.EISDIR: "a directory stands where a file was expected: choose another path",
        errno.ENOENT: "a file or directory does not exist: check the path",
    }
    hint = hints.get(exc.errno, f"{exc.strerror or exc}: check the path, free space and permissions")
    return f"{hint}{where}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may stand anywhere after the command; anything else unknown is an error
    bad = [e for e in extra if e.startswith("-") or "=" not in e or not hasattr(args, "overrides")]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command as given, for the records that name it
    try:
        args.fn(args)
    except EbmlabError as exc:
        print(f"ebmlab: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of our output went away (e.g. `| head`): stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        print(f"ebmlab: error: {os_error_message(exc)}", file=sys.stderr)
        return 2
    except MemoryError:
        print("ebmlab: error: out of memory; lower batch_size, eval_samples or the network sizes", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        if "alloc" in str(exc).lower() or "out of memory" in str(exc).lower():
            print(f"ebmlab: error: out of memory ({str(exc).splitlines()[0][:160]}); lower batch_size, eval_samples "
                  f"or the network sizes", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt as exc:
        said = f" ({exc})" if str(exc) else ""  # the trainer says at which step it saved
        print(f"ebmlab: interrupted{said}; the last checkpoint is kept — run the same command to resume",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
