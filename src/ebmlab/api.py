"""The Python API over run directories: rebuild a trained method, draw samples from it, evaluate it. The CLI's
``sample`` and ``eval`` commands call exactly these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .config import ResolvedConfig, config_from_dict
from .errors import EbmlabError
from .evaluation import evaluate, protocol
from .methods import Method
from .rng import stream_seed
from .runs import RunDir
from .trainer import build_method, pick_device


def load_run(run_dir: str | Path, device: str | None = None) -> tuple[ResolvedConfig, Method, int]:
    """Rebuild the method of a run directory from its latest checkpoint: (config, method, step)."""
    run = RunDir(run_dir)
    cfg = config_from_dict(run.require(), run.config_path)
    method = build_method(cfg, pick_device(device or cfg.run.device))
    ckpt = run.load_checkpoint(cfg.method)
    if ckpt is None:
        raise EbmlabError(f"{run_dir} has no checkpoint yet; train it first with `ebmlab train {cfg.method} --data {cfg.data} --out {run_dir}`")
    method.load_state_dict(ckpt["method_state"])
    method.recipe.use_averaged()  # evaluation and sampling use the moving averages when the run keeps them
    return cfg, method, int(ckpt["step"])


def guided_samples(method: Method, n: int, cfg: Any, *, generator: torch.Generator,
                   progress: bool = False) -> tuple[torch.Tensor, dict[str, float]]:
    """n energy-guided latent samples of a method with both a generator and an energy
    (``samplers.latent.latent_samples`` over its ``generate``, ``energy`` and ``latent_dim``) and the sampler's
    diagnostics."""
    from .samplers.latent import latent_samples

    if not (method.has_energy and method.has_generator):
        raise EbmlabError(f"method {method.name!r} needs both a generator and an energy for energy-guided sampling "
                          f"(methods with both: kale, vgan, bib, ebgan)")
    return latent_samples(method.generate, method.energy, method.latent_dim, n, cfg, generator=generator,
                          device=method.device, progress=progress)


def sample_run(run_dir: str | Path, n: int, *, seed: int = 0, guided: Any = None, base_only: bool = False,
               progress: bool = False) -> torch.Tensor:
    """n samples [n, D] from a trained run; the same seed gives the same samples.

    ``guided`` (a :class:`ebmlab.samplers.latent.GuidedConfig`) draws energy-guided latent samples instead, from any method
    with both a generator and an energy; ``base_only`` draws from the generator alone.
    """
    if n < 1:
        raise EbmlabError(f"-n must be a positive number of samples, got {n}")
    cfg, method, _ = load_run(run_dir)
    method.train(False)
    gen = torch.Generator(device=method.device).manual_seed(seed)
    if guided is not None:
        return guided_samples(method, n, guided, generator=gen, progress=progress)[0].detach().cpu()
    with torch.no_grad():
        if base_only:
            return method.generate(torch.randn(n, method.latent_dim, generator=gen, device=method.device)).cpu()
        return method.sample(n, generator=gen).cpu()


def evaluate_run(run_dir: str | Path, *, probe: bool = False, inception: str | None = None,
                 ais_steps: int = 0, progress: bool = False) -> dict[str, Any]:
    """Evaluate the latest checkpoint of a run: metrics plus the real-vs-real reference; ``probe`` adds the
    linear-probe test error of the energy's/discriminator's frozen features (``metrics.probe``)."""
    from .metrics import real_reference

    cfg, method, step = load_run(run_dir)
    ds = cfg.dataset
    if progress:
        import sys

        extra = (", linear probe" if probe else "") + (", AIS" if ais_steps else "") + (", FID/IS" if inception else "")
        print(f"evaluating {cfg.method} on {cfg.data} at step {step}: {cfg.run.eval_samples} samples{extra}...",
              file=sys.stderr, flush=True)
    metrics = evaluate(method, ds, cfg.run, step)
    if probe:
        from .metrics.probe import linear_probe

        metrics.update(linear_probe(method, ds, seed=cfg.run.seed))
    if ais_steps > 0:
        if not method.has_energy:
            raise EbmlabError(f"--ais needs a method with an energy; {cfg.method} has none")
        from .metrics.likelihood import ais_report

        metrics.update(ais_report(method, ds, n_steps=ais_steps, seed=cfg.run.seed))
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
    return {"method": cfg.method, "data": cfg.data, "step": step, "metrics": metrics,
            "real_vs_real": reference, "protocol": protocol(ds, cfg.run)}


__all__ = ["evaluate_run", "guided_samples", "load_run", "sample_run"]
