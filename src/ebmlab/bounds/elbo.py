"""Evidence lower bound (AEVB, Kingma & Welling 2014) and the importance-weighted bound L_k
(Burda, Grosse & Salakhutdinov 2016), per example, in nats.

    ELBO(x) = E_{q(z|x)}[log p(x|z)] − KL(q(z|x) ‖ N(0, I)),      z = μ + σ ⊙ ε,  ε ~ N(0, I)
    L_k(x)  = log (1/k) Σ_{i=1..k} p(x, z_i) / q(z_i|x),          z_i ~ q(z|x) i.i.d.

    ELBO = E[L_1] ≤ E[L_k] ≤ E[L_{2k}] ≤ log p(x)    (Burda et al., Theorem 1)

Wake-sleep (Hinton, Dayan, Frey & Neal 1995; the baseline of Kingma & Welling §5, Fig. 2) trains the same pair
without the ELBO's gradient: the generative model ascends log p(x, z) at z ~ q(z|x) (wake, q held fixed) and the
recognition model ascends log q(z|x̃) at fantasies z ~ N(0, I), x̃ ~ p(x|z) (sleep, p held fixed)
(:func:`wake_sleep`); its q minimises KL(p(z|x) ‖ q(z|x)) averaged over the model's own data, not the ELBO's
KL(q ‖ p(z|x)) at the real data.

Reductions are explicit: every log-density is a *sum* over data dimensions and latent dimensions, one number
per example. Averaging over pixels while summing the KL over latents silently reweights the KL (a β-VAE with
β = 1/D) and changes the bound; nothing here averages over anything but the batch, and only the caller does
that.

Conventions: ``encode(x) -> (mu, logvar)`` with mu, logvar of shape [b, d] (or [b, *latent_shape]);
``decode(z) -> params`` returns whatever the likelihood needs (logits, a mean, a (mean, logvar) tuple);
``log_lik(params, x) -> [b]`` is the decoder log-likelihood log p(x|z) summed over data dimensions, e.g.
:func:`bernoulli_log_lik` or ``lambda mean, x: gaussian_log_lik(mean, x, logvar)``.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..rng import Noise, randn
from ..syncs import scalar_like


_LOG_2PI = math.log(2.0 * math.pi)

Encoder = Callable[[Tensor], tuple[Tensor, Tensor]]
Decoder = Callable[[Tensor], Any]
LogLik = Callable[[Any, Tensor], Tensor]


def _sum_except_batch(t: Tensor) -> Tensor:
    """[b, ...] -> [b]: sum over every non-batch dimension (a 1-d input is already per example)."""
    return t.reshape(t.shape[0], -1).sum(dim=1) if t.dim() > 1 else t


def _check_posterior(mu: Tensor, logvar: Tensor, b: int | None = None) -> None:
    if mu.shape != logvar.shape:
        raise ValueError(
            f"encode must return (mu, logvar) of the same shape [b, d]; got mu {tuple(mu.shape)} and "
            f"logvar {tuple(logvar.shape)} (a scalar or shared log-variance must be expanded to mu's shape)"
        )
    if mu.dim() < 2:
        raise ValueError(f"mu and logvar must have a batch dimension, shape [b, d]; got {tuple(mu.shape)}")
    if b is not None and mu.shape[0] != b:
        raise ValueError(f"encode returned {mu.shape[0]} posteriors for a batch of {b} examples")


def gaussian_kl_std_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """Analytic KL(N(mu, diag e^logvar) ‖ N(0, I)) per example.

    Args:
        mu: [b, d] posterior means.
        logvar: [b, d] posterior log-variances (natural log of σ²).

    Returns:
        [b] KL in nats per example, summed over latent dimensions.

    KL = ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²). The term σ² − 1 − log σ² is written expm1(logvar) − logvar, which
    keeps full relative precision when σ² ≈ 1 (the posterior collapsing onto the prior) where exp(·) − 1
    would cancel catastrophically.
    """
    _check_posterior(mu, logvar)
    return 0.5 * _sum_except_batch(mu.square() + torch.expm1(logvar) - logvar)


def bernoulli_log_lik(logits: Tensor, x: Tensor) -> Tensor:
    """log p(x|z) for a factorised Bernoulli decoder, per example.

    Args:
        logits: [b, *data_shape] decoder logits (pre-sigmoid).
        x: [b, *data_shape] targets in {0, 1} (values in [0, 1] give the cross-entropy, as for grey-level data).

    Returns:
        [b] log-likelihood in nats per example, summed over data dimensions.

    Computed from the logits with the stable log-sigmoid form (binary_cross_entropy_with_logits), never from
    sigmoid probabilities, so saturated logits do not produce log 0.
    """
    if logits.shape != x.shape:
        raise ValueError(
            f"logits and x must have the same shape [b, *data_shape]; got logits {tuple(logits.shape)} and "
            f"x {tuple(x.shape)} (reshape the decoder output to the data shape)"
        )
    return -_sum_except_batch(F.binary_cross_entropy_with_logits(logits, x.to(logits.dtype), reduction="none"))


def gaussian_log_lik(mean: Tensor, x: Tensor, logvar: Tensor | float) -> Tensor:
    """log N(x; mean, diag e^logvar) per example.

    Args:
        mean: [b, *data_shape] decoder means.
        x: [b, *data_shape] data.
        logvar: decoder log-variance, fixed or learned: a float or 0-d tensor (one shared variance), a tensor of
            shape data_shape (one per dimension) or [b, *data_shape] (per example and dimension) — anything that
            broadcasts against x without enlarging it.

    Returns:
        [b] log-likelihood in nats per example, summed over data dimensions.
    """
    if mean.shape != x.shape:
        raise ValueError(
            f"mean and x must have the same shape [b, *data_shape]; got mean {tuple(mean.shape)} and "
            f"x {tuple(x.shape)}"
        )
    logvar = scalar_like(logvar, mean)
    try:
        full = torch.broadcast_shapes(logvar.shape, x.shape)  # type: ignore[no-untyped-call]  # untyped in torch
    except RuntimeError:
        full = None
    if full != x.shape:
        raise ValueError(
            f"logvar of shape {tuple(logvar.shape)} does not broadcast to the data shape {tuple(x.shape)}; pass a "
            f"scalar, a tensor of shape {tuple(x.shape[1:])} or one of shape {tuple(x.shape)}"
        )
    # (x − mean)² e^{−logvar} rather than a division by exp(logvar): one exp, no overflow for large logvar.
    per_dim = _LOG_2PI + logvar + (x - mean).square() * torch.exp(-logvar)
    return -0.5 * _sum_except_batch(per_dim.expand(x.shape))


class ElboTerms(NamedTuple):
    """One-sample ELBO and its parts, each [b] in nats per example."""

    elbo: Tensor  # log_lik − kl
    log_lik: Tensor  # log p(x|z), z ~ q(z|x) (one reparameterised sample)
    kl: Tensor  # KL(q(z|x) ‖ N(0, I)), analytic


def elbo(x: Tensor, encode: Encoder, decode: Decoder, *, generator: Noise, log_lik: LogLik,
         samples: int = 1) -> ElboTerms:
    """Reparameterised ELBO with the analytic Gaussian KL, per example, averaged over ``samples`` draws of z.

    Args:
        x: [b, *data_shape] data.
        encode: x -> (mu [b, d], logvar [b, d]), the diagonal Gaussian q(z|x); called once, on the b examples.
        decode: z [s·b, d] -> decoder parameters accepted by ``log_lik`` (one call for all s = ``samples`` draws,
            draw-major: rows j·b … j·b + b − 1 are draw j of every example).
        generator: source of the noise ε ~ N(0, I) (the only randomness), drawn as [s, b, d].
        log_lik: (decoder parameters, x) -> [rows] log p(x|z) in nats per row.
        samples: draws of z per example whose log-likelihoods are averaged (1: the AEVB estimator). The result
            equals the ELBO of the batch repeated s times, draw-major, averaged per example — with the same noise,
            the same values — at one encoder pass instead of s.

    Returns:
        :class:`ElboTerms` (elbo, log_lik, kl), each [b] nats per example; differentiable in the encoder and
        decoder parameters and in x (reparameterisation z = μ + σ ⊙ ε).
    """
    if samples < 1:
        raise ValueError(f"samples must be a positive number of draws; got {samples}")
    b = x.shape[0]
    mu, logvar = encode(x)
    _check_posterior(mu, logvar, b)
    eps = randn((samples, *mu.shape), generator=generator, dtype=mu.dtype, device=mu.device)
    z = (mu + torch.exp(0.5 * logvar) * eps).reshape(samples * b, *mu.shape[1:])
    xs = x if samples == 1 else x.repeat(samples, *([1] * (x.dim() - 1)))
    ll = log_lik(decode(z), xs)
    if ll.shape != (samples * b,):
        raise ValueError(f"log_lik must return one value per example, shape [{samples * b}]; got {tuple(ll.shape)}")
    ll = ll.reshape(samples, b).mean(0)
    kl = gaussian_kl_std_normal(mu, logvar)
    return ElboTerms(ll - kl, ll, kl)


def iwae_bound(
    x: Tensor,
    encode: Encoder,
    decode: Decoder,
    k: int,
    *,
    generator: Noise,
    log_lik: LogLik,
    chunk_size: int = 100,
    dtype: torch.dtype = torch.float64,
    grad: bool = False,
) -> Tensor:
    """Importance-weighted bound L_k = log (1/k) Σ_i p(x, z_i)/q(z_i|x), z_i ~ q(z|x), per example.

    Args:
        x: [b, *data_shape] data.
        encode: x -> (mu [b, d], logvar [b, d]); called once.
        decode: z [c·b, d] -> decoder parameters; called once per chunk of c ≤ chunk_size samples.
        k: number of importance samples (5000 for the standard evaluation).
        generator: source of the noise. ε_i [b, d] is drawn one importance sample at a time, so the result does
            not depend on ``chunk_size`` (same generator state ⇒ same L_k for every chunking).
        log_lik: (decoder parameters, x [c·b, *data_shape]) -> [c·b] log p(x|z) in nats.
        chunk_size: importance samples per decoder call; memory is O(chunk_size · b), independent of k.
        dtype: precision of the log-weights and their accumulation (float64 by default).
        grad: keep the autograd graph (for IWAE training); by default runs under ``torch.no_grad()``.

    Returns:
        [b] L_k in nats per example, in ``dtype``.

    The log-weights are combined by a streaming logsumexp (running value updated with ``logaddexp`` chunk by
    chunk), which is exact — not an approximation of the full logsumexp — and stable when the weights span
    hundreds of nats, as they do for k = 5000 on images. log p(z) − log q(z|x) is evaluated from ε directly:
    Σ_j [−½ z_j² + ½ ε_j² + ½ logvar_j] (the log 2π terms cancel), in ``dtype``.
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer number of importance samples; got {k!r}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer; got {chunk_size!r}")
    b = x.shape[0]
    context = contextlib.nullcontext() if grad else torch.no_grad()
    with context:
        mu, logvar = encode(x)
        _check_posterior(mu, logvar, b)
        std = torch.exp(0.5 * logvar)
        logvar_hi = logvar.to(dtype)
        total = torch.full((b,), -math.inf, dtype=dtype, device=mu.device)
        for start in range(0, k, chunk_size):
            c = min(chunk_size, k - start)
            eps = torch.stack(
                [randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device) for _ in range(c)]
            )  # [c, b, d]
            z = mu + std * eps  # [c, b, d]
            params = decode(z.reshape(c * b, *mu.shape[1:]))
            x_rep = x.unsqueeze(0).expand(c, *x.shape).reshape(c * b, *x.shape[1:])
            ll = log_lik(params, x_rep)
            if ll.shape != (c * b,):
                raise ValueError(
                    f"log_lik must return one value per (sample, example) pair, shape [{c * b}]; got {tuple(ll.shape)}"
                )
            z_hi, eps_hi = z.to(dtype), eps.to(dtype)
            log_ratio = 0.5 * (eps_hi.square() - z_hi.square() + logvar_hi).reshape(c, b, -1).sum(dim=2)
            log_w = ll.to(dtype).reshape(c, b) + log_ratio  # [c, b]
            total = torch.logaddexp(total, torch.logsumexp(log_w, dim=0))
        return total - math.log(k)


class WakeSleepTerms(NamedTuple):
    """The two phases' objectives, each [b] nats per example (ascend both: their gradients touch disjoint models)."""

    wake: Tensor  # log p(x, z) = log p(x|z) + log N(z; 0, I) at z ~ q(z|x), q not differentiated
    sleep: Tensor  # log q(z|x̃) at a fantasy z ~ N(0, I), x̃ ~ p(x|z), p not differentiated


def wake_sleep(x: Tensor, encode: Encoder, decode: Decoder, *, generator: Noise, log_lik: LogLik,
               draw: Callable[[Any, Noise], Tensor]) -> WakeSleepTerms:
    """One draw of each phase of wake-sleep for a Gaussian recognition model q(z|x) and a N(0, I) prior.

    Args:
        x: [b, *data_shape] data.
        encode, decode, log_lik: as :func:`elbo` (the module docstring's conventions).
        generator: the noise: ε of z = μ + σ ⊙ ε (wake), then the fantasies' z and the draw of x̃ (sleep), in
            that order.
        draw: (decoder parameters, generator) -> x̃ [b, *data_shape], a draw of p(x|z) (not its mean: the sleep
            phase fits q to the model's joint).

    Returns:
        :class:`WakeSleepTerms`. ``wake`` is differentiable in the decoder only (z is detached), ``sleep`` in the
        encoder only (x̃ is detached): the sum of the two is one step's objective for one optimiser over both.
    """
    b = x.shape[0]
    mu, logvar = encode(x)
    _check_posterior(mu, logvar, b)
    mu, logvar = mu.detach(), logvar.detach()
    z = mu + torch.exp(0.5 * logvar) * randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    prior = gaussian_log_lik(torch.zeros_like(z), z, 0.0)
    wake = log_lik(decode(z), x) + prior
    z_f = randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    params = decode(z_f)
    params = tuple(t.detach() if isinstance(t, Tensor) else t for t in params) if isinstance(params, tuple) \
        else params.detach()
    x_f = draw(params, generator).detach()
    mu_f, logvar_f = encode(x_f)
    _check_posterior(mu_f, logvar_f, b)
    return WakeSleepTerms(wake, gaussian_log_lik(mu_f, z_f, logvar_f))


__all__ = ["bernoulli_log_lik", "elbo", "ElboTerms", "gaussian_kl_std_normal", "gaussian_log_lik", "iwae_bound",
           "wake_sleep", "WakeSleepTerms"]
