"""KALE objective pieces (Arbel, Zhou & Gretton, "Generalized Energy Based Models", arXiv 2003.05033).

The model is Q(dx) ∝ exp(−E(x)) G(dx): the generator G is the base measure and the energy re-weights it. KALE is
the Fenchel-dual (f-divergence, f = KL) lower bound

    KALE(P ‖ G) = sup_{E, A}  −E_P[E + A] − E_G[exp(−E − A)] + 1   ≤   KL(P ‖ G),

with equality when the optimal log-ratio −log(dP/dG) lies in the energy class (then E + A = −log dP/dG).
A is a learned scalar (log-partition). For fixed E, the optimal A is log E_G[exp(−E)], and substituting it gives
the Donsker–Varadhan form −E_P[E] − log E_G[exp(−E)], which is what the base (generator) minimises.

Sign conventions: energies are unnormalised negative log-densities in nats (low where data is); losses are
minimised. ``energy_real`` = E(x) on data x ~ P, ``energy_fake`` = E(G(z)) on base samples, both shape [b].
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from ..rng import Noise, rand
from .input_grad import energy_and_input_grad
from ..syncs import scalar_like



def _check_energies(energy_real: Tensor | None, energy_fake: Tensor) -> None:
    for name, e in (("energy_real", energy_real), ("energy_fake", energy_fake)):
        if e is None:
            continue
        if e.dim() != 1 or e.shape[0] == 0:
            raise ValueError(
                f"{name} must be a non-empty vector of per-example energies, shape [b]; got {tuple(e.shape)} "
                f"(squeeze a trailing [b, 1] dimension)"
            )


def kale_energy_loss(energy_real: Tensor, energy_fake: Tensor, A: Tensor | float) -> Tensor:
    """The quantity the energy (and A) minimise: mean_P[E + A] + mean_G[exp(−E − A)] − 1.

    Args:
        energy_real: [b] E(x) on data samples.
        energy_fake: [b'] E(G(z)) on base samples.
        A: scalar log-partition (0-d or one-element tensor, or a float).

    Returns:
        0-d tensor in nats; its negative is the Monte-Carlo KALE estimate (:func:`kale_estimate`). Its gradient in
        the energy's parameters is mean_P[∇E] − mean_G[e^{−E−A} ∇E]: contrastive, with weights e^{−E−A}.

    The exponential is evaluated as written (no max-shift): it enters as an average, not a log, so shifting would
    not remove an overflow; the original code floors the energy (E ≥ −10) to keep exp(−E) finite — that floor
    belongs to the energy network, not here.
    """
    _check_energies(energy_real, energy_fake)
    A = scalar_like(A, energy_real).reshape(())
    return (energy_real + A).mean() + torch.exp(-energy_fake - A).mean() - 1.0


def kale_estimate(energy_real: Tensor, energy_fake: Tensor, A: Tensor | float) -> Tensor:
    """Monte-Carlo KALE lower bound −mean_P[E + A] − mean_G[exp(−E − A)] + 1 (nats), ≤ KL(P ‖ G) in expectation.

    Shapes as in :func:`kale_energy_loss`; returns a 0-d tensor.
    """
    return -kale_energy_loss(energy_real, energy_fake, A)


def optimal_log_partition(energy_fake: Tensor) -> Tensor:
    """A's Monte-Carlo optimum log mean_G exp(−E) = logsumexp(−E) − log b' (nats, 0-d tensor).

    Args:
        energy_fake: [b'] E(G(z)) on base samples.

    Setting ∂/∂A of :func:`kale_energy_loss` to zero gives mean exp(−E − A) = 1, i.e. this value. Computed with
    logsumexp (max-shifted) so energies of either sign and large magnitude do not overflow. The original code
    initialises A with it over ~100 batches; for that, combine per-batch results with ``torch.logaddexp`` of the
    un-normalised sums, or call this once on the concatenated energies.
    """
    _check_energies(None, energy_fake)
    return torch.logsumexp(-energy_fake, dim=0) - math.log(energy_fake.shape[0])


def base_loss(energy_real: Tensor, energy_fake: Tensor) -> Tensor:
    """Base (generator) loss −mean_P[E] − log mean_z exp(−E(G(z))), the KALE estimate at the batch-optimal A.

    Args:
        energy_real: [b] E(x) on data (constant in the generator; included so the value is the KALE estimate).
        energy_fake: [b'] E(G(z)), differentiable in the generator's parameters.

    Returns:
        0-d tensor in nats. Its gradient in the generator parameters ψ is Σ_i w_i ∇_ψ E(G(z_i)) with
        w = softmax(−E_fake): a self-normalised importance-weighted energy descent (samples the model Q favours
        count most). The batch logsumexp is used, not the learned A, as in the original code.
    """
    _check_energies(energy_real, energy_fake)
    return -energy_real.mean() - optimal_log_partition(energy_fake)


def interpolate_gradient_penalty(
    energy_fn: Callable[[Tensor], Tensor],
    x_real: Tensor,
    x_fake: Tensor,
    *,
    generator: Noise | None = None,
    alpha: Tensor | None = None,
) -> Tensor:
    """Zero-centred gradient penalty E‖∇_x E(x̂)‖² on random interpolates x̂ = α x_real + (1 − α) x_fake.

    Args:
        energy_fn: x [b, *data_shape] -> [b] energies.
        x_real: [b, *data_shape] data.
        x_fake: [b, *data_shape] base samples (same shape).
        generator: source of α ~ U(0, 1), one per example.
        alpha: [b, 1, ...] the α themselves, drawn already (a compiled step's draws), instead of ``generator``.

    Returns:
        0-d tensor: mean over the batch of the squared gradient norm (summed over data dimensions), with the graph
        needed to differentiate it in the energy's parameters (double backward).

    Zero-centred (‖∇E‖² rather than WGAN-GP's (‖∇E‖ − 1)²), as in the KALE code. Both endpoints are detached: the
    penalty regularises the energy only, and must not push gradients into the generator that produced x_fake.
    """
    if x_real.shape != x_fake.shape:
        raise ValueError(
            f"x_real and x_fake must have the same shape [b, *data_shape]; got {tuple(x_real.shape)} and "
            f"{tuple(x_fake.shape)} (use equally many data and base samples for the penalty)"
        )
    b = x_real.shape[0]
    if alpha is None:
        alpha = rand((b,) + (1,) * (x_real.dim() - 1), generator=generator, dtype=x_real.dtype, device=x_real.device)
    _, grad = energy_and_input_grad(energy_fn, alpha * x_real.detach() + (1.0 - alpha) * x_fake.detach())
    return grad.reshape(b, -1).square().sum(dim=1).mean()


__all__ = ["base_loss", "interpolate_gradient_penalty", "kale_energy_loss", "kale_estimate", "optimal_log_partition"]
