"""Exact normalisation of 2D energies by grid quadrature, and the density metrics built on it.

log Z = logsumexp over a grid of cell midpoints of (−E) + log(cell area). The grid is refined (spacing
halved) until log Z moves by less than ``tol`` and the box is grown until it moves by less than ``tol``;
then the mass in the outer band of the box must be negligible. If exp(−E) does not decay at the edge the
energy is not normalisable on R² and a grid would silently truncate it: that raises
:class:`~ebmlab.errors.NonNormalisableError` instead (EVALUATION.md, "Exact density on 2D").

The midpoint rule converges very fast for smooth densities (spectrally for Gaussians), so the spacing
needed is a fraction of the narrowest feature's width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from ..errors import NonNormalisableError

EnergyFn = Callable[[Tensor], Tensor]


def grid(box: tuple[float, float], n: int, dtype=torch.float32, device=None) -> tuple[Tensor, float]:
    """Cell midpoints of an n×n grid on the square box, shape [n*n, 2], and the cell area."""
    lo, hi = box
    h = (hi - lo) / n
    c = lo + h * (torch.arange(n, dtype=torch.float64) + 0.5)
    gx, gy = torch.meshgrid(c, c, indexing="ij")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1).to(dtype=dtype, device=device)
    return pts, h * h


CPU_CHUNK = 4096  # rows per call on the CPU: activations stay in cache (1000² grid of a 256-wide MLP: 3.0 → 1.55 s)
GPU_CHUNK = 1 << 18  # rows per call on an accelerator: large launches


@torch.no_grad()
def evaluate_on_grid(fn: EnergyFn, pts: Tensor, chunk: int | None = None) -> Tensor:
    """fn applied to the rows of pts in chunks; returns float64 [len(pts)] on the CPU.

    The default chunk depends on where ``pts`` lives. On the CPU small chunks are twice as fast as large ones
    for MLP energies: a [4096, 256] activation fits in cache and the allocator reuses its blocks, where a
    [262144, 256] one (268 MB) is freshly paged in and streamed through memory by every elementwise op
    (``benchmarks/results/spine_speed.md``).
    """
    if chunk is None:
        chunk = CPU_CHUNK if pts.device.type == "cpu" else GPU_CHUNK
    out = [fn(pts[i : i + chunk]).detach().to("cpu", torch.float64).reshape(-1) for i in range(0, len(pts), chunk)]
    return torch.cat(out)


@dataclass
class Quadrature:
    """Result of :func:`log_partition`: log Z (nats) with the grid it was computed on."""

    log_z: float
    box: tuple[float, float]
    n: int
    edge_mass: float
    converged: bool
    history: list[tuple[float, float, int, float]] = field(default_factory=list)  # (lo, hi, n, log Z)
    neg_energy: Tensor | None = field(default=None, repr=False)  # −E on the final grid, float64 [n*n]

    @property
    def cell_area(self) -> float:
        return ((self.box[1] - self.box[0]) / self.n) ** 2


def _edge_mass(neg_e: Tensor, n: int, log_z_cells: float, band: float = 0.05) -> float:
    """Fraction of the grid mass within the outer ``band`` of the box (per side)."""
    w = max(1, int(round(band * n)))
    m = neg_e.reshape(n, n)
    mask = torch.ones(n, n, dtype=torch.bool)
    mask[w:-w, w:-w] = False
    return float(torch.exp(torch.logsumexp(m[mask], 0) - log_z_cells))


def log_partition(
    energy_fn: EnergyFn,
    box: tuple[float, float],
    *,
    n: int = 256,
    tol: float = 1e-3,
    max_n: int = 2048,
    tail_factors: tuple[float, ...] = (2.0, 4.0, 8.0, 16.0),
    tail_n: int = 256,
    edge_tol: float = 1e-3,
    dtype=torch.float32,
    device=None,
) -> Quadrature:
    """log Z = log ∫ exp(−E(x)) dx over R² by adaptive grid quadrature.

    1. On ``box`` the spacing is halved (n doubled) until log Z moves by < ``tol`` (or n reaches ``max_n``).
    2. The tails: for each factor g in ``tail_factors`` the box is grown g-fold and the mass *outside* the fine
       box is integrated on a coarse ``tail_n``² grid. The tail mass is added to Z; it must stop growing between
       the last two factors (change of log Z < ``tol``) and the outer 5 % band of the largest box must hold less
       than ``edge_tol`` of the mass. A coarse tail grid can miss a narrow spurious mode far from the data; the
       tails of a trained model are smooth in practice, and the fine box holds the data.

    Args:
        energy_fn: maps x [b, 2] to E(x) [b] (nats).
        box: (lo, hi) of the square that holds the data.

    Raises:
        NonNormalisableError: exp(−E) does not decay at the edge (mass keeps growing with the box).
    """
    history: list[tuple[float, float, int, float]] = []

    def at(b: tuple[float, float], m: int) -> tuple[float, Tensor]:
        pts, area = grid(b, m, dtype=dtype, device=device)
        neg_e = -evaluate_on_grid(energy_fn, pts)
        if torch.isnan(neg_e).any():
            raise NonNormalisableError("the energy is NaN on part of the quadrature grid; the model has diverged")
        lz = float(torch.logsumexp(neg_e, 0)) + math.log(area)
        history.append((b[0], b[1], m, lz))
        return lz, neg_e

    # 1) refine the spacing on the box
    lz, neg_e = at(box, n)
    converged = False
    while 2 * n <= max_n:
        lz2, neg_e2 = at(box, 2 * n)
        n, done = 2 * n, abs(lz2 - lz) < tol
        lz, neg_e = lz2, neg_e2
        if done:
            converged = True
            break
    # 2) tails outside the box, on coarse grids of growing boxes
    centre, half = (box[0] + box[1]) / 2, (box[1] - box[0]) / 2
    totals, edge, big = [], 0.0, box
    for g in tail_factors:
        big = (centre - g * half, centre + g * half)
        pts, area = grid(big, tail_n, dtype=torch.float64)
        neg_t = -evaluate_on_grid(energy_fn, pts.to(dtype=dtype, device=device))
        outside = (pts < box[0]).any(dim=1) | (pts > box[1]).any(dim=1)
        log_tail = float(torch.logsumexp(neg_t[outside], 0)) + math.log(area)
        total = float(torch.logaddexp(torch.tensor(lz), torch.tensor(log_tail)))
        totals.append(total)
        history.append((big[0], big[1], tail_n, total))
        edge = _edge_mass(neg_t, tail_n, total - math.log(area))
    stable = len(totals) < 2 or abs(totals[-1] - totals[-2]) < tol
    if not stable or edge > edge_tol or not math.isfinite(totals[-1]):
        exc = NonNormalisableError(
            f"exp(-E) does not decay away from the data: log Z grows with the integration box "
            f"({', '.join(f'{t:.4g}' for t in [lz] + totals)} for boxes of half-width "
            f"{', '.join(f'{half * g:.3g}' for g in (1.0, *tail_factors))}; {edge:.2g} of the mass in the outer band "
            f"of [{big[0]:.3g}, {big[1]:.3g}]^2); the energy is not normalisable on R^2"
        )
        exc.box_quadrature = Quadrature(lz, box, n, edge, converged, history, neg_e)  # the model restricted to box
        raise exc
    return Quadrature(totals[-1] if totals else lz, box, n, edge, converged, history, neg_e)


def log_partition_on_box(energy_fn: EnergyFn, box: tuple[float, float], *, n: int = 1024, dtype=torch.float32,
                         device=None) -> Quadrature:
    """log ∫_box exp(−E) dx on a fixed box: the model restricted to that box (a proper density there)."""
    pts, area = grid(box, n, dtype=dtype, device=device)
    neg_e = -evaluate_on_grid(energy_fn, pts)
    lz = float(torch.logsumexp(neg_e, 0)) + math.log(area)
    return Quadrature(lz, box, n, _edge_mass(neg_e, n, lz - math.log(area)), False, [(box[0], box[1], n, lz)], neg_e)


def entropy_by_quadrature(log_prob: EnergyFn, box: tuple[float, float], *, n: int = 512, tol: float = 1e-4,
                          max_n: int = 4096) -> float:
    """H = −∫ p log p for a normalised log-density, refined until it moves by < tol (float64 grid)."""
    prev = None
    while n <= max_n:
        pts, area = grid(box, n, dtype=torch.float64)
        lp = evaluate_on_grid(log_prob, pts)
        p = lp.exp()
        h = float(-(p * torch.where(p > 0, lp, torch.zeros_like(lp))).sum() * area)
        if prev is not None and abs(h - prev) < tol:
            return h
        prev, n = h, 2 * n
    return prev  # type: ignore[return-value]


def density_metrics(energy_fn: EnergyFn, dataset, *, test: Tensor | None = None, device=None) -> dict[str, float | str]:
    """Exact test NLL, KL(p_data ‖ p_model) and total variation of the model p ∝ exp(−E), in nats.

    NLL = mean_test E(x) + log Z; KL = NLL − H(p_data) (H is the data's true entropy, the NLL floor);
    TV = ½ ∫ |p_data − p_model| on the final quadrature grid. If the energy is not normalisable on R²,
    ``density_status`` is ``"non_normalisable"`` and the ``*_box`` values describe the model truncated to the
    data set's box (a proper density there), labelled as such.
    """
    test = dataset.test if test is None else test
    param = next(iter(getattr(energy_fn, "parameters", lambda: iter([]))()), None)
    dev = device if device is not None else (param.device if param is not None else None)
    with torch.no_grad():
        e_test = float(evaluate_on_grid(energy_fn, test.to(dev)).mean())
    out: dict[str, float | str] = {"entropy_true": dataset.entropy}
    try:
        q = log_partition(energy_fn, dataset.box, device=dev)
        suffix, out["density_status"] = "", "ok"
    except NonNormalisableError as exc:
        q = getattr(exc, "box_quadrature", None) or log_partition_on_box(energy_fn, dataset.box, device=dev)
        suffix, out["density_status"] = "_box", "non_normalisable"
        out["density_note"] = str(exc)
    nll = e_test + q.log_z
    out["log_z" + suffix] = q.log_z
    out["nll" + suffix] = nll
    out["kl" + suffix] = nll - dataset.entropy
    pts, area = grid(q.box, q.n, dtype=torch.float64)
    lp_data = evaluate_on_grid(dataset.log_prob, pts)
    lp_model = q.neg_energy - q.log_z  # on the fine box; the tail mass (≤ tol) counts as model mass off the grid
    out["tv" + suffix] = float(0.5 * (lp_data.exp() - lp_model.exp()).abs().sum() * area)
    out["quad_n"] = q.n
    out["quad_box"] = f"[{q.box[0]:.3g},{q.box[1]:.3g}]^2"
    return out
