"""Command line: ``ebmlab list | train | eval | sample | bench``. Every command calls the Python API."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .errors import EbmlabError


def _list(args) -> None:
    from .config import describe
    from .data import dataset_names
    from .methods import METHODS

    if args.options:
        from .methods import get_method
        from .train import RunConfig

        cls = get_method(args.options)
        print(f"run options (any method):")
        for name, tp, default in describe(RunConfig):
            print(f"  {name} = {default!r}  ({tp})")
        print(f"{cls.name} options:")
        for name, tp, default in describe(cls.Config):
            print(f"  {name} = {default!r}  ({tp})")
        return
    print("methods:")
    for name, cls in METHODS.items():
        print(f"  {name:<10} {cls.description}")
    print("data sets:")
    for name, desc in dataset_names().items():
        print(f"  {name:<16} {desc}")
    print("  PATH.npz|.npy   a user's arrays (vectors or images); PATH/ a folder of PNG/JPEG images")


def _train(args) -> None:
    from .config import parse_override_strings
    from .train import train

    overrides = parse_override_strings(args.overrides)
    if args.steps is not None:
        overrides["steps"] = args.steps
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.device is not None:
        overrides["device"] = args.device
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    if args.image_size is not None:
        overrides["image_size"] = args.image_size
    res = train(args.method, args.data, out=args.out, config_file=args.config, overrides=overrides,
                progress=not args.no_progress)
    if res.resumed_from:
        print(f"resumed from step {res.resumed_from}")
    print(f"run directory: {res.run_dir}")
    if res.summary:
        print(_format_metrics(res.summary))


def _k_table(m: dict) -> tuple[list[str], set[str]]:
    """Estimates reported per sample count K (keys ``k<K>_<name>``, e.g. BiHM's) as one table: K by estimate."""
    import re

    cells: dict[int, dict[str, float]] = {}
    for key, v in m.items():
        hit = re.fullmatch(r"k(\d+)_(\w+)", key)
        if hit and isinstance(v, (int, float)):
            cells.setdefault(int(hit[1]), {})[hit[2]] = v
    if not cells:
        return [], set()
    cols = list(dict.fromkeys(c for row in cells.values() for c in row))
    lines = ["  estimates by number of samples K (nats per example; ess_*: effective sample size / K):",
             "  " + f"{'K':>8}" + "".join(f"{c:>14}" for c in cols)]
    for k in sorted(cells):
        lines.append("  " + f"{k:>8}" + "".join(f"{cells[k].get(c, float('nan')):>14.4g}" for c in cols))
    return lines, {f"k{k}_{c}" for k in cells for c in cells[k]}


def _format_metrics(summary: dict) -> str:
    m, ref = summary["metrics"], summary.get("real_vs_real", {})
    table, in_table = _k_table(m)
    lines = [f"{summary['method']} on {summary['data']} at step {summary['step']}:",
             f"  {'metric':<14}{'model':>14}{'real data':>14}"]
    for k, v in m.items():
        if k in in_table:
            continue
        if isinstance(v, float):
            r = ref.get(k)
            rs = f"{r:>14.4g}" if isinstance(r, (int, float)) and r is not None else f"{'':>14}"
            lines.append(f"  {k:<14}{v:>14.4g}{rs}")
        elif isinstance(v, int):
            r = ref.get(k)
            lines.append(f"  {k:<14}{v:>14d}{(f'{r:>14}' if r is not None else '')}")
    notes = [f"  {k}: {v}" for k, v in m.items() if isinstance(v, str)]
    return "\n".join(lines + table + notes)


def _eval(args) -> None:
    from .train import evaluate_run

    import os

    if args.ais is not None and args.ais < 1:
        raise EbmlabError(f"--ais takes a positive number of intermediate distributions, got {args.ais}")
    res = evaluate_run(args.run_dir, probe=args.probe, inception=args.inception or os.environ.get("EBMLAB_INCEPTION"),
                       ais_steps=args.ais or 0)
    if args.json:
        from .runs import json_safe

        print(json.dumps(json_safe(res), indent=2))
    else:
        print(_format_metrics(res))


def _sample(args) -> None:
    from .train import sample_run

    guided = None
    if args.sampler not in (None, "none"):
        from .guided import GuidedConfig

        d = GuidedConfig()
        guided = GuidedConfig(args.sampler, d.inverse_temperature if args.temperature is None else args.temperature,
                              args.mcmc_steps or d.n_steps, args.step_size or d.step_size,
                              d.friction if args.friction is None else args.friction)
    x = sample_run(args.run_dir, args.n, seed=args.seed, guided=guided, base_only=args.sampler == "none",
                   progress=guided is not None)
    out = Path(args.out)
    if out.suffix != ".npy":
        raise EbmlabError(f"--out must name a .npy file, got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, x.numpy())
    print(f"wrote {len(x)} samples of shape {tuple(x.shape[1:])} to {out}")


def _classifier(args) -> None:
    from .data import get_dataset
    from .metrics.classifier import classifier_dir, classifier_name, load_classifier, train_classifier

    ds = get_dataset(args.data, data_dir=args.data_dir)
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


def _bench(args) -> None:
    from .bench import collect, load_grid, run_toy_bench
    from .config import parse_override_strings

    if args.suite == "collect":
        if len(args.overrides) != 1:
            raise EbmlabError("usage: ebmlab bench collect DIR (the --out directory of the sharded parts)")
        rep = collect(args.overrides[0])
        print((Path(args.overrides[0]) / "results.md").read_text())
        if rep.get("missing"):
            print(f"not yet in the table: {', '.join(rep['missing'])}")
        return
    if args.suite not in ("toy", "images"):
        raise EbmlabError(f"unknown benchmark suite {args.suite!r}; valid: toy, images, collect")
    shard = _shard(args.shard)
    from .methods import METHODS

    methods = list(METHODS) if args.methods == "all" else [m for m in args.methods.split(",") if m]
    default_data = "ring8,grid25" if args.suite == "toy" else "stacked_digits"
    data = [d for d in (args.data or default_data).split(",") if d]
    cmd = "ebmlab bench " + " ".join(sys.argv[2:])
    rep = run_toy_bench(methods, data, args.seeds, out=args.out, steps=args.steps,
                        overrides=parse_override_strings(args.overrides), jobs=args.jobs, command=cmd,
                        grid=load_grid(args.grid) if args.grid else None, suite=args.suite, shard=shard)
    if shard is not None:
        print(f"part {shard[0]} of {shard[1]}: {len(rep['runs'])} runs in {rep['meta']['wall_s']:.0f} s, written to "
              f"{Path(args.out) / 'parts'}; merge the parts with: ebmlab bench collect {args.out}")
        return
    print((Path(args.out) / "results.md").read_text())
    print(f"wrote {Path(args.out) / 'results.md'} and results.json ({rep['meta']['wall_s']:.0f} s)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ebmlab", description="Energy-based models trained with a generator.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("list", help="list methods and data sets")
    s.add_argument("--options", metavar="METHOD", help="list the options of METHOD with their defaults")
    s.set_defaults(fn=_list)

    s = sub.add_parser("train", help="train a method on a data set into a run directory (resumes if it exists)")
    s.add_argument("method")
    s.add_argument("--data", required=True)
    s.add_argument("--steps", type=int)
    s.add_argument("--seed", type=int)
    s.add_argument("--out", help="run directory (default runs/METHOD-DATA-sSEED)")
    s.add_argument("--config", help="TOML file with [run] and [method] tables")
    s.add_argument("--device", choices=["cpu", "cuda", "auto"])
    s.add_argument("--data-dir", help="directory of local data files (MNIST, CIFAR-10); else EBMLAB_DATA")
    s.add_argument("--image-size", type=int, help="resize a user's image folder to this side")
    s.add_argument("--no-progress", action="store_true")
    s.add_argument("overrides", nargs="*", help="key=value options (see `ebmlab list --options METHOD`)")
    s.set_defaults(fn=_train)

    s = sub.add_parser("eval", help="evaluate the latest checkpoint of a run")
    s.add_argument("run_dir")
    s.add_argument("--json", action="store_true")
    s.add_argument("--probe", action="store_true", help="add the linear probe of the frozen energy/discriminator features")
    s.add_argument("--inception", metavar="PATH", help="real FID/IS with these Inception weights "
                   "(pt_inception-2015-12-05-6726825d.pth; else EBMLAB_INCEPTION)")
    s.add_argument("--ais", type=int, metavar="T", help="AIS log Z of the energy with T and 2T intermediate distributions")
    s.set_defaults(fn=_eval)

    s = sub.add_parser("sample", help="draw samples from a trained run into a .npy file")
    s.add_argument("run_dir")
    s.add_argument("-n", type=int, required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--sampler", choices=["kinetic", "ula", "mala", "hmc", "none"],
                   help="energy-guided latent MCMC (methods with a generator and an energy); none: generator only")
    s.add_argument("--temperature", type=float, help="inverse temperature T in U(z) = |z|^2/2 + T E(G(z)) (default 1)")
    s.add_argument("--mcmc-steps", type=int, help="MCMC steps (default 500)")
    s.add_argument("--step-size", type=float, help="step size (gamma for kinetic Langevin; default 1e-3)")
    s.add_argument("--friction", type=float, help="kinetic Langevin friction kappa (default 1)")
    s.set_defaults(fn=_sample)

    s = sub.add_parser("classifier", help="train the domain classifier behind the image metrics")
    s.add_argument("action", choices=["train", "show"])
    s.add_argument("--data", required=True, help="a labelled image data set (digits, fashion, mnist, cifar10, ...)")
    s.add_argument("--data-dir")
    s.add_argument("--epochs", type=int)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", help="directory (default: EBMLAB_CLASSIFIERS or ~/.cache/ebmlab/classifiers)")
    s.set_defaults(fn=_classifier)

    s = sub.add_parser("bench", help="run a benchmark grid and write a results table")
    s.add_argument("suite", help="benchmark suite: toy (2D columns) or images (image columns); or collect DIR: merge "
                   "the parts of a sharded grid into its table")
    s.add_argument("--methods", default="gan,vgan", help="comma-separated methods, or all")
    s.add_argument("--data", help="comma-separated data sets (default: ring8,grid25 for toy, stacked_digits for images)")
    s.add_argument("--seeds", type=int, default=5)
    s.add_argument("--steps", type=int)
    s.add_argument("--out", default="bench-toy")
    s.add_argument("--jobs", type=int, default=1, help="parallel runs (each uses one thread)")
    s.add_argument("--grid", metavar="FILE", help="TOML file: option (or 'a,b' for options set together) = [values]; "
                   "the product of the axes a method has is run for each method")
    s.add_argument("--shard", metavar="i/n", help="run only the i-th of n disjoint parts of the grid (i from 0), e.g. "
                   "one per job of a job array; then `ebmlab bench collect OUT`")
    s.add_argument("overrides", nargs="*", help="key=value options applied to every run")
    s.set_defaults(fn=_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may stand anywhere after the command; anything else unknown is an error
    bad = [e for e in extra if e.startswith("-") or "=" not in e or not hasattr(args, "overrides")]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    try:
        args.fn(args)
    except EbmlabError as exc:
        print(f"ebmlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ebmlab: interrupted; the last checkpoint is kept — run the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
