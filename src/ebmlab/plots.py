"""Figures for a run: density (or sample histogram) with the data, samples vs data, training curves."""

from __future__ import annotations

import math
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .quadrature import evaluate_on_grid, grid  # noqa: E402
from .atomic import fault_point  # noqa: E402
from .data.base import Dataset
from .data.toy import ToyDataset


def _save(fig, path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_density(method, ds: ToyDataset, path, n: int = 300) -> None:
    """Model density exp(−E)/Z on the data set's box (log scale), with test points overlaid."""
    lo, hi = ds.box
    pts, area = grid(ds.box, n, device=method.device)
    neg_e = -evaluate_on_grid(method.density_energy, pts)
    log_p = (neg_e - (torch.logsumexp(neg_e, 0) + math.log(area))).reshape(n, n).T.numpy()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")  # colour bars keep their own room
    im = axes[0].imshow(log_p, origin="lower", extent=(lo, hi, lo, hi), cmap="viridis",
                        vmin=max(log_p.max() - 12, log_p.min()))
    fig.colorbar(im, ax=axes[0], label="log density (restricted to the box)")
    axes[0].set_title(f"{method.name}: model log-density")
    test = ds.test[:1000].numpy()
    # Greys_r: high density light, low dark — the same direction as the left panel's viridis
    axes[1].imshow(log_p, origin="lower", extent=(lo, hi, lo, hi), cmap="Greys_r",
                   vmin=max(log_p.max() - 12, log_p.min()))
    _test_overlay_and_save(fig, axes, test, "with test data", path)


def _test_overlay_and_save(fig, axes, test, title: str, path) -> None:
    """Test points over the right panel, square panels with axis labels, saved."""
    axes[1].scatter(test[:, 0], test[:, 1], s=2, c="tab:red", alpha=0.5, label="test data")
    axes[1].set_title(title)
    axes[1].legend(loc="upper right", markerscale=4)
    for a in axes:
        a.set_aspect("equal")
        a.set_xlabel("x₁")
        a.set_ylabel("x₂")
    _save(fig, path)


def plot_sample_density(method, ds: ToyDataset, samples: torch.Tensor, path, n: int = 200, bins: int = 80) -> None:
    """For a model whose density is not exp(−E) alone (KALE: exp(−E)·p_G): its density seen through its samples
    (a log-histogram), beside the energy factor exp(−E) normalised on the box, with test points overlaid."""
    lo, hi = ds.box
    s = samples.detach().cpu().numpy()
    s = s[np.isfinite(s).all(1)]
    # counts / (all samples · cell area): the samples' density, not renormalised to the box, so samples outside it
    # (or none inside) leave the histogram low (or empty) instead of dividing by zero
    counts, _, _ = np.histogram2d(s[:, 0], s[:, 1], bins=bins, range=[[lo, hi], [lo, hi]])
    hist = counts / (max(len(s), 1) * ((hi - lo) / bins) ** 2)
    inside = int(counts.sum())
    log_h = np.log(np.maximum(hist.T, 1e-12))
    pts, area = grid(ds.box, n, device=method.device)
    neg_e = -evaluate_on_grid(method.energy, pts)
    log_f = (neg_e - (torch.logsumexp(neg_e, 0) + math.log(area))).reshape(n, n).T.numpy()
    test = ds.test[:1000].numpy()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")  # colour bars keep their own room
    finite = log_h[hist.T > 0]
    im = axes[0].imshow(log_h, origin="lower", extent=(lo, hi, lo, hi), cmap="viridis",
                        vmin=finite.min() if finite.size else None, vmax=finite.max() if finite.size else None)
    fig.colorbar(im, ax=axes[0], label="log density (histogram of samples)")
    axes[0].set_title(f"{method.name}: density of {len(samples)} samples ({inside} inside the box)")
    im = axes[1].imshow(log_f, origin="lower", extent=(lo, hi, lo, hi), cmap="Greys_r",
                        vmin=max(log_f.max() - 12, log_f.min()))
    fig.colorbar(im, ax=axes[1], label="log exp(−E), normalised on the box")
    _test_overlay_and_save(fig, axes, test, "energy factor exp(−E), test data", path)


def plot_samples(samples: torch.Tensor, ds: ToyDataset, path, title: str) -> None:
    lo, hi = ds.box
    s = samples.detach().cpu().numpy()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")  # colour bars keep their own room
    d = ds.test[: len(s)].numpy()
    axes[0].scatter(d[:, 0], d[:, 1], s=2, c="tab:blue", alpha=0.4)
    axes[0].set_title(f"data ({ds.name})")
    axes[1].scatter(s[:, 0], s[:, 1], s=2, c="tab:orange", alpha=0.4)
    axes[1].set_title(title)
    if ds.modes is not None:
        m = ds.modes.numpy()
        for a in axes:
            a.scatter(m[:, 0], m[:, 1], marker="x", c="k", s=25)
    for a in axes:
        a.set_xlim(lo, hi)
        a.set_ylim(lo, hi)
        a.set_aspect("equal")
        a.set_xlabel("x₁")
        a.set_ylabel("x₂")
    _save(fig, path)


def plot_curves(records: list[dict], path) -> None:
    """One panel per logged quantity, train logs as lines and evaluations as markers."""
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for r in records:
        for k, v in r.items():
            if k in ("step", "kind") or not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            if v is not None and math.isfinite(v):
                series[f"{r['kind']}/{k}"].append((r["step"], v))
    from .metrics.registry import is_bookkeeping

    # a quantity evaluated once (eval_every=0: only the final evaluation) is a number, not a curve: it goes into
    # the caption of the figure rather than a panel holding a single dot
    single = {k: series[k][0][1] for k in series if len(series[k]) == 1 and k.startswith("eval/")}
    keys = [k for k in sorted(series) if k not in single and not is_bookkeeping(k.split("/", 1)[1], 0.0)]
    if not keys:
        return
    # three panels a row at about 3.3 in each, 11-pt titles: legible when the figure is shown at half a page's width
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.5 * rows), squeeze=False)
    for a, k in zip(axes.flat, keys):
        xs, ys = zip(*series[k])
        a.plot(xs, ys, "o-" if k.startswith("eval/") else "-", ms=3, lw=1.2)
        a.set_title(k, fontsize=11)
        a.set_xlabel("step", fontsize=9)
        a.tick_params(labelsize=9)
    for a in list(axes.flat)[len(keys):]:
        a.axis("off")
    shown = [f"{k.split('/', 1)[1]} = {v:.4g}" for k, v in single.items() if not is_bookkeeping(k.split("/", 1)[1], v)]
    if shown:
        fig.suptitle("evaluated once: " + ", ".join(shown[:8]) + (" …" if len(shown) > 8 else ""), fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def plot_sandwich(records: list[dict], path) -> bool:
    """Reported NLL bounds (``nll_lower``/``nll_upper`` ± 1 s.e.) and the exact NLL (``nll``, else ``nll_box``)
    against the step, from the evaluation records; False (no figure) when no evaluation holds the bounds."""
    ev = [r for r in records if r.get("kind") == "eval" and isinstance(r.get("nll_lower"), (int, float))]
    if not ev:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    steps = [r["step"] for r in ev]
    for key, colour, label in (("nll_lower", "tab:blue", "lower bound"), ("nll_upper", "tab:red", "upper bound")):
        y = [r.get(key, math.nan) for r in ev]
        se = [r.get(key + "_se", 0.0) or 0.0 for r in ev]
        ax.errorbar(steps, y, yerr=se, fmt="o-", ms=3, lw=1, capsize=3, color=colour, label=f"{label} ± 1 s.e.")
    exact = [r.get("nll", r.get("nll_box", math.nan)) for r in ev]
    boxed = any("nll" not in r and "nll_box" in r for r in ev)
    ax.plot(steps, exact, "s--", ms=3, lw=1, color="k", label="exact NLL" + (" (box where not normalisable)" if boxed else ""))
    ax.set_xlabel("step")
    ax.set_ylabel("test NLL (nats)")
    ax.set_title("bounds on the NLL", fontsize=10)
    ax.legend(fontsize=8)
    _save(fig, path)
    return True


def image_grid(x: torch.Tensor, value_range: tuple[float, float], nrow: int = 8, pad: int = 1) -> np.ndarray:
    """Images [n, C, H, W] (C = 1 or 3; other C: the first channel) → one [rows·(H+pad), nrow·(W+pad), 3] float
    array in [0, 1], tiled row by row with ``pad`` blue-grey pixels between tiles (white separators would merge
    with the white strokes of binary images into one maze)."""
    lo, hi = value_range
    x = ((x.detach().float().cpu().clamp(lo, hi) - lo) / (hi - lo))
    if x.shape[1] not in (1, 3):
        x = x[:, :1]
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    n, _, h, w = x.shape
    rows = math.ceil(n / nrow)
    out = np.empty((rows * (h + pad) + pad, nrow * (w + pad) + pad, 3))
    out[:] = (0.3, 0.45, 0.65)  # blue-grey: neither white nor black, and no grey level of a grey image
    for i in range(n):
        r, c = divmod(i, nrow)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = \
            x[i].permute(1, 2, 0).numpy()
    return out


def save_image_grid(x: torch.Tensor, value_range: tuple[float, float], path, *, nrow: int = 8, scale: int = 0) -> None:
    """Write ``image_grid`` as a PNG (nearest-neighbour upscaled so that small images stay visible)."""
    g = image_grid(x, value_range, nrow)
    s = scale or max(1, 512 // (x.shape[-1] * nrow))  # about 512 pixels across
    g = np.kron(g, np.ones((s, s, 1)))
    path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(path, g)


def model_grid_samples(method, n: int = 64, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator(device=method.device).manual_seed(seed)
    method.train(False)
    try:
        with torch.no_grad():
            return method.sample(n, generator=gen).detach().cpu()
    finally:
        method.train(True)


def plot_run(method, ds: Dataset, run) -> None:
    if not isinstance(ds, ToyDataset):  # the kind toy2d: the 2D pictures below; any other kind: grids and curves
        if ds.spec.is_image:
            save_image_grid(model_grid_samples(method), ds.spec.value_range or (0.0, 1.0), run.plots / "samples.png")
            save_image_grid(ds.test[:64], ds.spec.value_range or (0.0, 1.0), run.plots / "data.png")
        records = run.read_metrics()
        plot_curves(records, run.plots / "curves.png")
        return
    gen = torch.Generator(device=method.device).manual_seed(0)
    method.train(False)
    try:
        with torch.no_grad():
            samples = method.sample(2500, generator=gen)
        plot_samples(samples, ds, run.plots / "samples.png", f"{method.name} samples")
        if method.has_energy and method.energy_defines_density:
            plot_density(method, ds, run.plots / "density.png")
        elif method.has_energy:
            plot_sample_density(method, ds, samples, run.plots / "density.png")
    finally:
        method.train(True)
    records = run.read_metrics()
    fault_point("plots")
    plot_curves(records, run.plots / "curves.png")
    plot_sandwich(records, run.plots / "sandwich.png")
