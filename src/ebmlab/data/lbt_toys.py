"""The two toy sets of LBT's released code (taufikxu/Learning-By-Teaching, README commands), with exact densities.

- ``grid100``: the 10×10 grid, means ((i − 4.5) · 0.2, (j − 4.5) · 0.2) for i, j = 0..9 (so ±0.9 at the edges,
  spacing 0.2), σ = 0.01 (``-n_mixture 100 -mog_scale 0.2 -mog_std 0.01``).
- ``ring8_lbt``: 8 Gaussians on the unit circle, σ = 0.1 (``-mog_scale 1.0 -mog_std 0.1``) — ten times broader
  than the PacGAN ``ring8``, and close enough (neighbouring means 7.7σ apart) that its entropy is computed by
  quadrature rather than the separated-mixture formula.

The original's ring helper places the means at (sin θ, cos θ) with θ = 2πk/8, the same set of points as
``ring_means(8, 1)``.
"""

from __future__ import annotations

from .toy import ToyDataset, _mixture, _separated_mixture_entropy, grid_means, ring_means


def _build() -> dict[str, ToyDataset]:
    sets: dict[str, ToyDataset] = {}
    m = grid_means(10, 0.2)
    s, lp = _mixture(m, 0.01)
    # Neighbouring means 20σ apart: the separated-mixture entropy is exact to O(exp(−50)).
    sets["grid100"] = ToyDataset("grid100", "10x10 grid of Gaussians, spacing 0.2, std 0.01 (LBT's toy)", (-1.2, 1.2),
                                 s, lp, m, 0.01, closed_form_entropy=_separated_mixture_entropy(100, 0.01))
    m = ring_means(8, 1.0)
    s, lp = _mixture(m, 0.1)
    sets["ring8_lbt"] = ToyDataset("ring8_lbt", "ring of 8 Gaussians, radius 1, std 0.1 (LBT's toy)", (-1.8, 1.8),
                                   s, lp, m, 0.1)
    return sets


LBT_TOY_DATASETS: dict[str, ToyDataset] = _build()
