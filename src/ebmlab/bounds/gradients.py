"""Single-sample Monte Carlo estimators of the ELBO's gradient with respect to a Gaussian q's parameters.

For one data point x, a diagonal Gaussian q(z) = N(μ, diag σ²) and a log joint f(z) = log p(x, z), the ELBO is

    L(μ, log σ) = E_q[f(z)] + H(q),      H(q) = Σ_j log σ_j + d/2 · log 2πe,

and its gradient can be estimated from one draw z = μ + σ ⊙ ε, ε ~ N(0, I), in two unbiased ways:

- **reparameterised** (pathwise; Kingma & Welling 2014, §2.4):
  ∂L/∂μ ≈ ∇_z f(z),      ∂L/∂log σ ≈ ∇_z f(z) ⊙ σ ⊙ ε + 1;
- **score function** (REINFORCE; Williams 1992), with the whole integrand w(z) = f(z) − log q(z):
  ∂L/∂μ ≈ (w(z) − b) · (z − μ)/σ²,      ∂L/∂log σ ≈ (w(z) − b) · ((z − μ)²/σ² − 1),
  where b is a baseline constant in z (0 for the plain estimator; E_q[∇ log q] = 0 keeps it unbiased for any b).

Both have the same mean; their variances differ, which is the lecture's point about why the VAE is trained with the
first. ``benchmarks/gradients`` measures the ratio on a linear-Gaussian model (where everything is known in closed
form, see :func:`linear_gaussian_elbo_gradient`) and on a trained VAE.
"""

from __future__ import annotations

import math
from typing import Callable, Literal

import torch
from torch import Tensor

from ..rng import Noise, randn


LogJoint = Callable[[Tensor], Tensor]


def elbo_gradient_samples(log_joint: LogJoint, mu: Tensor, log_sigma: Tensor, n: int, *,
                          estimator: Literal["reparam", "score"], generator: Noise,
                          baseline: float = 0.0) -> Tensor:
    """n independent single-draw estimates of (∂L/∂μ, ∂L/∂log σ), shape [n, 2d].

    Args:
        log_joint: z [n, d] -> log p(x, z) [n] for the one data point (differentiable in z for "reparam").
        mu, log_sigma: [d] parameters of q.
        n: number of independent draws (each row is one single-sample estimate).
        estimator: "reparam" or "score" (module docstring).
        generator: source of ε.
        baseline: the score-function estimator's constant b (ignored by "reparam").
    """
    if mu.dim() != 1 or mu.shape != log_sigma.shape:
        raise ValueError(f"mu and log_sigma must be vectors of one shape [d]; got {tuple(mu.shape)} and "
                         f"{tuple(log_sigma.shape)}")
    if estimator not in ("reparam", "score"):
        raise ValueError(f"estimator must be 'reparam' or 'score'; got {estimator!r}")
    d = mu.shape[0]
    mu, log_sigma = mu.detach(), log_sigma.detach()
    sigma = log_sigma.exp()
    eps = randn((n, d), generator=generator, dtype=mu.dtype, device=mu.device)
    z = (mu + sigma * eps).requires_grad_(estimator == "reparam")
    if estimator == "reparam":
        f = log_joint(z)
        (grad_z,) = torch.autograd.grad(f.sum(), z)
        return torch.cat([grad_z, grad_z * sigma * eps + 1.0], dim=1).detach()
    with torch.no_grad():
        log_q = (-0.5 * eps.square() - log_sigma - 0.5 * math.log(2 * math.pi)).sum(dim=1)
        w = (log_joint(z) - log_q - baseline).unsqueeze(1)
        return torch.cat([w * eps / sigma, w * (eps.square() - 1.0)], dim=1)


def linear_gaussian_elbo_gradient(x: Tensor, mu: Tensor, log_sigma: Tensor, noise_var: float) -> Tensor:
    """The exact ELBO gradient [2d] for p(z) = N(0, I), p(x | z) = N(z, s² I) (s² = ``noise_var``), q = N(μ, σ²):

    ∂L/∂μ = −μ − (μ − x)/s²,      ∂L/∂log σ = 1 − σ²(1 + 1/s²).

    (E_q[log p(x, z)] = −½ Σ (μ² + σ²) − ½ Σ ((x − μ)² + σ²)/s² + const, differentiated.) The optimum is the exact
    posterior μ = x/(1 + s²), σ² = s²/(1 + s²), where the gradient vanishes.
    """
    sig2 = torch.exp(2 * log_sigma)
    return torch.cat([-mu - (mu - x) / noise_var, 1.0 - sig2 * (1.0 + 1.0 / noise_var)])


__all__ = ["elbo_gradient_samples", "linear_gaussian_elbo_gradient"]
