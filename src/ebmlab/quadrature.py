"""Exact normalisation of 2D energies by grid quadrature (used by the data sets for their entropies, the density
metrics, and the temperature search).

log Z = logsumexp over a grid of cell midpoints of (−E) + log(cell area). The grid on the data box is refined
(spacing halved) until log Z settles; the tails are integrated in shells of growing boxes at a constant spacing;
whether exp(−E) is normalisable is decided by the growth of the energy on the boxes' boundaries (a plateau or a
decay slower than |x|^-2 is not, however small its mass), and the mass beyond the last box is bounded from that
growth. The result carries an error bound; an energy that is not normalisable raises
:class:`~ebmlab.errors.NonNormalisableError`, and an unconverged result is flagged, never reported as a value on
R² (EVALUATION.md, "Exact density on 2D").

The midpoint rule converges very fast for smooth densities (spectrally for Gaussians), so the spacing
needed is a fraction of the narrowest feature's width.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .errors import NonNormalisableError
from .types import EnergyFn



def grid(box: tuple[float, float], n: int, dtype: torch.dtype = torch.float32,
         device: Any = None) -> tuple[Tensor, float]:
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
    """Result of :func:`log_partition`: log Z (nats) with the grid it was computed on and its error estimate.

    ``error`` (nats) = the last refinement's change of log Z on the data box (the midpoint rule converges
    geometrically for smooth densities, so the remaining error is below that change) + the refinement change of
    the tail shells + the bound on the mass beyond the largest box (relative to Z; it assumes the growth seen at
    the boundary continues). ``converged`` is ``error ≤ err_tol``; a consumer must not report an
    unconverged log Z as a value.
    """

    log_z: float
    box: tuple[float, float]
    n: int
    edge_mass: float
    converged: bool
    history: list[tuple[float, float, int, float]] = field(default_factory=list)  # (lo, hi, n, log Z)
    neg_energy: Tensor | None = field(default=None, repr=False)  # −E on the final grid, float64 [n*n]
    error: float = math.inf
    reach: float = 0.0  # half-width (max-norm) of the largest box integrated
    growth: float = math.nan  # last growth rate a of the boundary energy: ΔE_min / log(R_k/R_{k-1})
    note: str = ""
    box_log_z: float = math.nan  # log ∫ over the data box alone (the model restricted to the box)
    box_converged: bool = False  # the data box's refinement settled (its log Z changed by < tol)

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


@functools.lru_cache(maxsize=8)
def _shell(centre: float, inner: float, outer: float, h: float) -> tuple[Tensor, Tensor]:
    """Cell midpoints (float64 [m, 2]) of the square grid of spacing ``h`` on [centre ± outer]² that lie outside
    [centre ± inner]², and a mask of those in the outermost ring of cells (the boundary of the larger box).
    Cached (callers only read them): a temperature search runs the same shells dozens of times."""
    k = int(round(2 * outer / h))
    c = centre - outer + h * (torch.arange(k, dtype=torch.float64) + 0.5)
    gx, gy = torch.meshgrid(c, c, indexing="ij")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    dist = (pts - centre).abs().amax(dim=1)
    keep = dist > inner
    return pts[keep], dist[keep] > outer - h


def release_grid_cache() -> None:
    """Free the tail shells kept for reuse (after a series of quadratures over one box, e.g. a temperature
    search; the cache holds at most 8 shells)."""
    _shell.cache_clear()


def log_partition(  # noqa: C901, PLR0915 - the four numbered steps of the docstring, in order, sharing their state
    energy_fn: EnergyFn,
    box: tuple[float, float],
    *,
    n: int = 256,
    tol: float = 1e-3,
    max_n: int = 2048,
    tail_n: int = 256,
    min_doublings: int = 2,
    max_doublings: int = 6,
    max_shell_points: int = 1 << 23,
    growth_margin: float = 0.5,
    err_tol: float = 1e-2,
    dtype: torch.dtype = torch.float32,
    device: Any = None,
) -> Quadrature:
    """log Z = log ∫ exp(−E(x)) dx over R² by grid quadrature that is right or says it cannot be.

    1. On ``box`` the spacing is halved (n doubled) until log Z moves by < ``tol`` (or n reaches ``max_n``; the
       last change is then reported as the error and exceeds the tolerance).
    2. Tails, in square shells between boxes of half-width R_k = 2^k·R_0 (k = 1, 2, ...), all on the *same*
       spacing h = (box width)/``tail_n``: growing the box never coarsens the grid, so a narrow mode in the tails
       is integrated as finely as the data box's coarse level (and a shell holding more than ``tol`` of the mass
       is integrated again at h/2 to check it). At least ``min_doublings`` shells are integrated.
    3. Normalisability is decided by how the energy grows, not by the mass alone: with E_k the smallest energy on
       the boundary of the k-th box, a = (E_k − E_{k−1}) / log 2. exp(−E) is integrable on R² only if the energy
       eventually grows faster than 2·log|x|, i.e. a > 2; two successive shells with a ≤ 2 (a plateau, however
       far below the peak, a slow decay, or a growing density) raise :class:`NonNormalisableError`.
    4. When a > 2 + ``growth_margin``, the mass beyond R_k is bounded by 8 R_k² e^{−E_k} / (a − 2) on the
       assumption that E keeps growing at least at that rate along every ray (the boundary minimum is used, so
       the bound is conservative for the boundary; a mode that sits entirely beyond the boxes integrated cannot be
       seen by any grid). Shells are added until that bound is below ``tol`` of Z, up to ``max_doublings`` or
       ``max_shell_points``.

    Raises:
        NonNormalisableError: exp(−E) does not decay fast enough at the edge of the boxes (the exception's
            ``box_quadrature`` is the model restricted to ``box``).
    """
    history: list[tuple[float, float, int, float]] = []

    def energies(pts: Tensor) -> Tensor:
        e = evaluate_on_grid(energy_fn, pts.to(dtype=dtype, device=device))
        if torch.isnan(e).any():
            raise NonNormalisableError("the energy is NaN on part of the quadrature grid; the model has diverged")
        return e

    def on_box(m: int) -> tuple[float, Tensor]:
        pts, area = grid(box, m, dtype=torch.float64)
        neg_e = -energies(pts)
        lz = float(torch.logsumexp(neg_e, 0)) + math.log(area)
        history.append((box[0], box[1], m, lz))
        return lz, neg_e

    # 1) the data box, refined until log Z settles
    lz, neg_e = on_box(n)
    disc_err = math.inf
    while 2 * n <= max_n:
        lz2, neg_e2 = on_box(2 * n)
        n, disc_err, lz, neg_e = 2 * n, abs(lz2 - lz), lz2, neg_e2
        if disc_err < tol:
            break
    m = neg_e.reshape(n, n)
    e_edge = float(-torch.cat([m[0], m[-1], m[:, 0], m[:, -1]]).max())  # smallest energy on the box's boundary
    edge = _edge_mass(neg_e, n, lz - math.log(((box[1] - box[0]) / n) ** 2))

    def restricted(note: str) -> Quadrature:
        return Quadrature(lz, box, n, edge, False, history, neg_e, math.inf, half, math.nan, note, lz,
                          disc_err < tol)

    # 2)-4) tails in shells of constant spacing
    centre, half = (box[0] + box[1]) / 2, (box[1] - box[0]) / 2
    h = 2 * half / tail_n
    log_terms, shell_err, slow, growth, note = [lz], 0.0, 0, math.nan, ""
    reach, tail_bound, e_prev = half, math.inf, e_edge
    deferred: tuple[int, float, float] | None = None  # a slow shell whose h/2 check waits for the next shell

    def lse(terms: list[float]) -> float:
        return float(torch.logsumexp(torch.tensor(terms, dtype=torch.float64), 0))

    def check_at_half_spacing(idx: int, inner: float, outer: float) -> None:
        """Integrate shell ``idx`` again at h/2; the change of the total is added to the reported error."""
        nonlocal shell_err
        pts2, _ = _shell(centre, inner, outer, h / 2)
        before = lse(log_terms)
        log_terms[idx] = float(torch.logsumexp(-energies(pts2), 0)) + 2 * math.log(h / 2)
        shell_err += abs(lse(log_terms) - before)

    for k in range(1, max_doublings + 1):
        inner, outer = half * 2 ** (k - 1), half * 2**k
        if (2 * outer / h) ** 2 * 0.75 > max_shell_points:
            note = f"the tail beyond |x|∞ = {inner:.3g} was not integrated (more than {max_shell_points} grid points)"
            break
        pts, ring = _shell(centre, inner, outer, h)
        e = energies(pts)
        log_terms.append(float(torch.logsumexp(-e, 0)) + 2 * math.log(h))
        total = lse(log_terms)
        has_mass = log_terms[-1] - total > math.log(tol) and 4 * len(pts) <= max_shell_points
        e_bound = float(e[ring].min())
        growth = (e_bound - e_prev) / math.log(2.0)
        e_prev, reach = e_bound, outer
        slow = slow + 1 if not growth > 2.0 else 0
        if slow >= 2:
            history.append((centre - outer, centre + outer, int(round(2 * outer / h)), total))
            exc = NonNormalisableError(
                f"exp(-E) does not decay fast enough away from the data: the smallest energy on the boundary of "
                f"boxes of half-width {inner:.3g} and {outer:.3g} grows at rate {growth:.3g} per log|x| (needs > 2 "
                f"for a finite integral on R^2; log Z over the growing boxes: "
                f"{', '.join(f'{t[3]:.4g}' for t in history[-3:])}); the energy is not normalisable on R^2, or "
                f"its decay starts beyond |x|∞ = {outer:.3g}")
            exc.box_quadrature = restricted("the model restricted to the data box (not normalisable on R^2)")
            raise exc
        # a shell with mass is checked at h/2 — for a slow shell only once the next shell shows the energy growing
        # again (two slow shells in a row end in the error above, where no tail value is reported)
        if has_mass and slow:
            deferred = (len(log_terms) - 1, inner, outer)
        elif has_mass:
            check_at_half_spacing(len(log_terms) - 1, inner, outer)
        if not slow and deferred is not None:
            check_at_half_spacing(*deferred)
            deferred = None
        total = lse(log_terms)
        history.append((centre - outer, centre + outer, int(round(2 * outer / h)), total))
        if growth > 2.0 + growth_margin:
            tail_bound = math.log(8 * outer**2) - e_bound - math.log(growth - 2.0)
            if k >= min_doublings and tail_bound - total < math.log(tol):
                break
        else:
            tail_bound = math.inf
    if deferred is not None:
        check_at_half_spacing(*deferred)
    log_z = lse(log_terms)
    beyond = math.exp(min(tail_bound - log_z, 50.0))  # bounded mass beyond the last box, relative to Z
    error = disc_err + shell_err + (math.log1p(beyond) if math.isfinite(beyond) else math.inf)
    if not math.isfinite(error) and not note:
        note = (f"the energy's growth at |x|∞ = {reach:.3g} (rate {growth:.3g}) does not yet bound the mass beyond "
                f"the boxes integrated")
    if disc_err >= tol and not note:
        note = f"the grid on the data box did not converge (log Z still moved {disc_err:.2g} at n = {n})"
    return Quadrature(log_z, box, n, edge, error <= err_tol, history, neg_e, error, reach, growth, note, lz,
                      disc_err < tol)


def log_partition_on_box(energy_fn: EnergyFn, box: tuple[float, float], *, n: int = 1024,
                         dtype: torch.dtype = torch.float32, device: Any = None) -> Quadrature:
    """log ∫_box exp(−E) dx on a fixed box: the model restricted to that box (a proper density there)."""
    pts, area = grid(box, n, dtype=dtype, device=device)
    neg_e = -evaluate_on_grid(energy_fn, pts)
    lz = float(torch.logsumexp(neg_e, 0)) + math.log(area)
    return Quadrature(lz, box, n, _edge_mass(neg_e, n, lz - math.log(area)), False, [(box[0], box[1], n, lz)], neg_e,
                      note="the model restricted to the box", box_log_z=lz, box_converged=True)


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
