"""Evaluation during and at the end of a run: the metrics of a checkpoint, how they were computed (the protocol),
the final evaluation line, plots and ``summary.json``. The evaluator of the data's kind (``ebmlab.metrics``)
computes the numbers; this module decides when, and where they are written.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from .config import ResolvedConfig, RunConfig
from .data import Dataset
from .errors import EbmlabError
from .methods import Method
from .rng import stream_seed
from .atomic import fault_point, read_json, write_json
from .runs import RunDir, with_latest_evaluation
from .trackers import MetricsLogger
from .trackers import metrics_logger, open_trackers


def final_eval(method: Method, ds: Dataset, cfg: ResolvedConfig, run: RunDir, logger: MetricsLogger | None,
                progress: bool = False, step: int | None = None) -> dict[str, Any]:
    """The final evaluation line of metrics.jsonl at ``step`` (the run's last step: ``steps``, or where a budget
    ended it): reused if a previous session logged it, else computed.

    Its samples are drawn into ``RUN/eval-draw/`` chunk by chunk (``metrics.evaluators.cached_draw``), so a final
    evaluation stopped at any moment resumes its draw where it was, with the same samples; the directory is removed
    once the metrics are logged. Run option ``eval`` (:func:`evaluation_mode`): quick evaluates fewer samples,
    none nothing (an empty result)."""
    cfg, _ = evaluation_mode(cfg)
    rc = cfg.run
    if rc.eval == "none":
        return {}
    last = rc.steps if step is None else step
    cache = run.path / DRAW_CACHE
    for rec in reversed(run.read_metrics()):
        if rec.get("kind") == "eval" and rec.get("step") == last:
            shutil.rmtree(cache, ignore_errors=True)  # left by a kill between the log line and its removal
            return {k: v for k, v in rec.items() if k not in ("step", "kind")}
    if progress:
        print(f"final evaluation ({sample_count(ds, rc)})...", flush=True)
    final = evaluate(method, ds, rc, last, cache=cache, progress=progress)
    fault_point("final_eval")
    own = logger is None
    logger = logger or metrics_logger(run, last, rc, cfg.to_dict())
    try:
        logger.log(last, "eval", final)
        log_grid(logger, method, ds, last)
    finally:
        if own:
            logger.close()
    shutil.rmtree(cache, ignore_errors=True)
    return final


def log_grid(logger: MetricsLogger, method: Method, ds: Dataset, step: int) -> None:
    """A grid of 64 samples (fixed seed) to the run's trackers at evaluation steps, for image data."""
    if not logger.trackers or not ds.spec.is_image:
        return
    from .plots import image_grid, model_grid_samples

    logger.image(step, "samples", image_grid(model_grid_samples(method), ds.spec.value_range or (0.0, 1.0)))


DRAW_CACHE = "eval-draw"  # the final evaluation's samples while it runs (removed when it is logged)


def evaluate(method: Method, ds: Dataset, rc: RunConfig, step: int, cache: Path | None = None,
             progress: bool = False) -> dict[str, Any]:
    from .metrics import evaluate_method, registry

    want = set() if "all" in rc.metrics else set(rc.metrics)
    density = rc.eval_density and (not want or any(getattr(registry.spec(k), "group", "") == "density" for k in want))
    out = evaluate_method(method, ds, n_samples=rc.eval_samples, seed=stream_seed(rc.seed, "eval", step),
                          density=density, cache=cache, progress=progress, mode_count=_mode_count(rc))
    if not want:
        return out
    return {k: v for k, v in out.items() if k in want or registry.is_bookkeeping(k, v) or k.endswith("_note")}


def _mode_count(rc: RunConfig) -> bool:
    """Whether the evaluation draws the stacked sets' 26,000 samples: all metrics, or a mode-count metric (or an
    extra sample set's, ``base_modes``) among those of run option ``metrics``; else ``eval_samples`` are drawn."""
    from .metrics import registry
    from .metrics.images import MODE_COUNT

    return "all" in rc.metrics or any(registry.split_prefix(k)[1] in MODE_COUNT for k in rc.metrics)


def check_metrics(rc: RunConfig) -> None:
    """Refuse run option ``metrics`` naming a metric ebmlab does not know, and a ``keep_best`` metric it leaves out
    (before anything is written)."""
    from .metrics import registry

    if "all" in rc.metrics:
        if len(rc.metrics) > 1:
            raise EbmlabError(f"metrics={','.join(rc.metrics)}: all means every metric; name metrics without it")
        return
    unknown = [k for k in rc.metrics if registry.spec(k) is None]
    if unknown:
        raise EbmlabError(f"metrics={','.join(rc.metrics)}: {', '.join(map(repr, unknown))} "
                          f"{'is not a metric' if len(unknown) == 1 else 'are not metrics'} ebmlab knows (ebmlab list "
                          f"names them all)")
    if rc.keep_best and rc.keep_best not in rc.metrics:
        raise EbmlabError(f"keep_best={rc.keep_best} chooses by a metric that metrics={','.join(rc.metrics)} leaves "
                          f"out: name it there too")


def check_keep_best(rc: RunConfig) -> None:
    """Refuse run option ``keep_best`` naming no metric with a better direction, or without evaluations during
    training to choose from (before anything is written)."""
    from .metrics import registry

    name = rc.keep_best
    if not name:
        return
    spec = registry.spec(name)
    if spec is None or spec.better not in ("↑", "↓"):
        ranked = sorted(k for k, m in registry.catalogue().items() if m.better in ("↑", "↓"))
        why = "is not a metric ebmlab knows" if spec is None else "has no better direction (a diagnostic)"
        raise EbmlabError(f"keep_best={name!r} {why}; it takes a metric that is higher or lower is better, e.g. "
                          f"{', '.join(ranked[:12])} (ebmlab list names them all)")
    if rc.eval_every <= 0:
        raise EbmlabError(f"keep_best={name} chooses among the evaluations during training, and eval_every=0 makes "
                          f"none: set eval_every=N as well")


def protocol(ds: Dataset, rc: RunConfig) -> dict[str, Any]:
    """How the reported numbers were computed (sample counts, seeds, splits, and the data kind's own protocol)."""
    from .metrics import evaluator_for

    ev = evaluator_for(ds)
    return {"eval_samples": rc.eval_samples, "samples_drawn": ev.n_draw(ds, rc.eval_samples),
            "samples_compared": f"{ev.n_compared(ds, rc.eval_samples)} samples against as many of the "
                                f"{ds.n_test} fixed test points",
            **ev.protocol(ds, rc.eval_samples)}


def sample_count(ds: Dataset, rc: RunConfig) -> str:
    """The sample count an evaluation uses, as printed: drawn, and compared with the test split."""
    from .metrics import evaluator_for

    ev = evaluator_for(ds)
    drawn, compared = ev.n_draw(ds, rc.eval_samples), ev.n_compared(ds, rc.eval_samples)
    drawn = drawn if _mode_count(rc) else min(drawn, rc.eval_samples)
    if drawn == compared:
        return f"{drawn} samples"
    return f"{drawn} samples drawn, {compared} compared with the {ds.n_test}-point test split"


def finish(method: Method, ds: Dataset, cfg: ResolvedConfig, run: RunDir, progress: bool = False, step: int | None = None,
           budget: dict[str, Any] | None = None) -> dict[str, Any]:
    """The end of a run at ``step`` (``steps``, or where a budget ended it; ``ebmlab.budget``): final evaluation
    line, plots, then summary.json with the compute used (``budget``), written last so that it marks a finished run;
    a kill anywhere in here is completed by running the same command again."""
    from .metrics import collapse_reference, noise_floor, real_reference

    last = cfg.run.steps if step is None else step
    if run.summary_path.is_file():
        try:
            done = read_json(run.summary_path)
        except EbmlabError:  # damaged: it derives from the checkpoint alone (fixed evaluation seeds), so it is redone
            import sys

            print(f"{run.summary_path} is not valid JSON (damaged or edited); evaluating the final checkpoint again "
                  f"to write it anew", file=sys.stderr, flush=True)
            done = None
        if isinstance(done, dict) and done.get("step") == last:
            return with_latest_evaluation(done, run.path)  # an `ebmlab eval` of the finished run, if made since
    cfg, how = evaluation_mode(cfg)
    rc = cfg.run
    summary: dict[str, Any] = {"method": cfg.method, "data": cfg.data, "step": last, "seed": rc.seed,
                               "evaluation": how}
    if rc.eval == "none":
        if progress:
            print(f"no final evaluation (eval=none): `ebmlab eval {run.path}` evaluates the run", flush=True)
        summary["metrics"] = {}
    else:
        metrics = final_eval(method, ds, cfg, run, None, progress, last)
        summary.update({"metrics": metrics, "real_vs_real": real_reference(ds, rc.eval_samples),
                        **noise_floor(ds, rc.eval_samples), **collapse_reference(ds, rc.eval_samples),
                        "protocol": protocol(ds, rc)})
    summary.update({"budget": budget} if budget is not None else {})
    metrics = summary["metrics"]
    if rc.plots:
        from .plots import plot_run

        if progress:
            print("plots...", flush=True)
        plot_run(method, ds, run)
    _trackers_final(run, cfg, metrics)
    fault_point("summary")
    write_json(run.summary_path, summary)
    return summary


QUICK_SAMPLES = 500  # eval=quick: samples of the final evaluation at most


def evaluation_mode(cfg: ResolvedConfig) -> tuple[ResolvedConfig, str]:
    """The configuration the final evaluation runs with under run option ``eval``, and how summary.json names it:
    full (as configured), quick (at most QUICK_SAMPLES samples, no density metrics), or none."""
    from dataclasses import replace

    rc = cfg.run
    if rc.eval == "quick":
        quick = replace(rc, eval_samples=min(rc.eval_samples, QUICK_SAMPLES), eval_density=False)
        return replace(cfg, run=quick), (f"quick (eval=quick: {quick.eval_samples} samples, no density metrics; not "
                                         f"comparable with a full evaluation)")
    return cfg, {"full": "full", "none": "none (eval=none)"}[rc.eval]


def _trackers_final(run: RunDir, cfg: ResolvedConfig, metrics: dict[str, Any]) -> None:
    """The end of the run in its trackers: the plots (where the run makes them) and the options with the final
    metrics. Only TensorBoard is opened again without plots: the others hold the final metrics already."""
    from .metrics.registry import is_bookkeeping

    rc = cfg.run
    loggers = rc.loggers if rc.plots else tuple(n for n in rc.loggers if n == "tensorboard")
    final = {k: float(v) for k, v in metrics.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool) and not is_bookkeeping(k, v)}
    options = cfg.to_dict()
    for tracker in open_trackers(run, loggers, options):
        if rc.plots:
            tracker.artifacts(run.plots, "plots", rc.steps)
        tracker.summary(options, final, rc.steps)
        tracker.close()


def announce_classifier(ds: Dataset) -> None:
    """Say up front when the evaluations of a run on ``ds`` will first train the data set's domain classifier."""
    if not ds.spec.is_image or (ds.train_labels is None and not ds.stacked):
        return
    from .metrics.classifier import classifier_dir, classifier_name, has_classifier

    if not has_classifier(ds):
        print(f"note: the first evaluation will train the domain classifier of {classifier_name(ds)} behind the "
              f"image metrics (once, stored in {classifier_dir()}; on Fashion-MNIST about 3 minutes on 2 cores)",
              flush=True)


__all__ = ["announce_classifier", "check_keep_best", "check_metrics", "evaluate", "evaluation_mode", "final_eval",
           "finish", "log_grid", "protocol", "sample_count"]
