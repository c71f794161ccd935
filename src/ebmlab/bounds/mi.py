"""Mutual-information (Barber–Agakov) lower bound on the entropy of a noisy generator (BiB bound (ii)).

The generator is made noisy, x = G(z) + σε with z ~ N(0, std² I_d), ε ~ N(0, I_D). Then
H(X | Z) = (D/2) log(2πeσ²), so H(X) = I(X; Z) + (D/2) log(2πeσ²), and for any normalised encoder q(z|x)
(Barber & Agakov, "The IM algorithm", NIPS 2003) I(X; Z) = H(Z) − H(Z | X) ≥ H(Z) + E_{z,ε}[log q(z | x)]:

    H(p_g^σ) ≥ (d/2) log(2πe std²) + (D/2) log(2πeσ²) + E_{z,ε}[log q(z | G(z) + σε)]     (nats)

with gap E_x KL(p(z|x) ‖ q(z|x)). Unlike the Jacobian bound it needs no d ≤ D, no Jacobian and no
injectivity; the price is the encoder and the noise σ, whose entropy the bound counts. As σ → 0 with the
exact posterior, the bound tends to the Jacobian bound's exact form plus ((D − d)/2) log(2πeσ²), the entropy
of the noise normal to the generated manifold (tested).

The encoder is a callable x → (mu, logvar), both [b, d], for q(z|x) = N(mu, diag exp(logvar)). Training it
by minimising the encoder NLL (``nll``) tightens the bound; λ_H = 1 in the generator loss keeps it a bound.
This construction is ours (METHODS.md, BiB (ii)); the BiB extension's abstract names an MI bound without
public code. InfoNCE would be capped at log(batch) and is not used.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
from torch import Tensor

from ..rng import Noise, randn

LOG_2PI = math.log(2 * math.pi)
LOG_2PI_E = math.log(2 * math.pi * math.e)

Encoder = Callable[[Tensor], tuple[Tensor, Tensor]]


class MIBound(NamedTuple):
    """entropy: scalar, nats — the lower bound on H(p_g^σ);
    nll: scalar, nats — mean encoder NLL −log q(z|x) (the term to minimise over the encoder);
    nll_per_example: [b], nats; x: [b, ...] the noisy samples G(z) + σε the bound refers to (use these, not
    G(z), in the generator's energy term so both terms describe the same distribution)."""

    entropy: Tensor
    nll: Tensor
    nll_per_example: Tensor
    x: Tensor


def gaussian_nll(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """−log N(z; mu, diag exp(logvar)) per example, nats. z, mu, logvar: [b, d]. Returns [b]."""
    if not (z.shape == mu.shape == logvar.shape):
        raise ValueError(f"z, mu and logvar must share one shape [b, d]; got {tuple(z.shape)}, "
                         f"{tuple(mu.shape)}, {tuple(logvar.shape)}.")
    return 0.5 * (LOG_2PI + logvar + (z - mu) ** 2 * torch.exp(-logvar)).sum(dim=1)


def noise_entropy(D: int, sigma: float | Tensor, device: torch.device | str | None = None) -> Tensor:
    """H(σε) = (D/2) log(2πeσ²), nats, for ε ~ N(0, I_D); differentiable in a tensor σ. A number σ gives a
    float64 scalar on ``device`` (made there by a fill, not copied from the host)."""
    msg = "The generator noise σ must be > 0 (the bound counts its entropy)"
    if not torch.is_tensor(sigma):
        if not float(sigma) > 0:
            raise ValueError(f"{msg}, got {sigma}.")
        sigma = torch.full((), float(sigma), dtype=torch.float64, device=device)
    else:  # checked on the device: no host synchronisation inside a training step
        torch._assert_async(torch.all(sigma > 0), msg)
    return D * (0.5 * LOG_2PI_E + torch.log(sigma))


def mi_entropy_bound(G: Callable[[Tensor], Tensor], encoder: Encoder, z: Tensor, *, sigma: float | Tensor,
                     generator: Noise | None = None, eps: Tensor | None = None,
                     z_std: float = 1.0) -> MIBound:
    """Barber–Agakov lower bound on the entropy of x = G(z) + σε, nats, differentiable in G and the encoder.

    G: callable z[b, d] → x[b, ...]; encoder: x[b, ...] → (mu [b, d], logvar [b, d]); z: [b, d] samples of
    N(0, z_std² I_d); sigma: noise standard deviation (> 0; float or scalar tensor); eps: optional [b, ...]
    standard normal noise of G(z)'s shape, else drawn from ``generator``.
    Returns the bound (d/2) log(2πe z_std²) + (D/2) log(2πeσ²) − mean NLL, the NLL and the noisy samples.
    """
    if z.dim() != 2:
        raise ValueError(f"Expected latents z of shape [b, d], got {tuple(z.shape)}.")
    mean = G(z)
    if eps is None:
        if generator is None:
            raise ValueError("mi_entropy_bound draws the generator noise from an explicit generator: pass "
                             "generator=torch.Generator().manual_seed(...) or eps.")
        eps = randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
    elif eps.shape != mean.shape:
        raise ValueError(f"eps must have the shape of G(z) {tuple(mean.shape)}, got {tuple(eps.shape)}.")
    x = mean + sigma * eps
    mu, logvar = encoder(x)
    nll = gaussian_nll(z, mu, logvar)
    D = mean[0].numel()
    d = z.shape[1]
    h_z = 0.5 * d * LOG_2PI_E + d * math.log(z_std)
    h_noise = noise_entropy(D, sigma, device=mean.device).to(mean.dtype)
    entropy = h_z + h_noise - nll.mean()
    return MIBound(entropy=entropy, nll=nll.mean(), nll_per_example=nll, x=x)
