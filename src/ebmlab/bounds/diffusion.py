"""Diffusion upper bound on the NLL of a time-conditioned energy (BiB bound (iv)).

The energy E_θ(x, t) defines the scores s_θ(x, t) = −∇_x E_θ(x, t) of a reverse-time VP-SDE; the EBM is
E_θ(·, t_min). Forward process (Song et al., "Score-based generative modeling through SDEs", ICLR 2021):
dx = −½β(t) x dt + √β(t) dW, β(t) = β_min + (β_max − β_min) t with β_min = 0.1, β_max = 20, so that

    x_t = α_t x_0 + σ_t ε,   α_t = exp(−½ B(t)),  σ_t² = 1 − α_t²,  B(t) = ∫_0^t β = β_min t + ½(β_max − β_min) t².

Bound. Song, Durkan, Murray & Ermon, "Maximum likelihood training of score-based diffusion models"
(NeurIPS 2021) bound the KL of the model in their Theorem 1 and, pointwise, −log p_θ^SDE(y) by L^SM_θ(y)
(and its denoising form L^DSM_θ). For the model process run from π = N(0, I) at t = 1 down to t_min:
−log p_θ,t_min(y) ≤ −E[log π(x_1)] + ½ ∫_{t_min}^1 E[2β ∇·s_θ + β‖s_θ‖² + βD] dt, expectations over the forward
process started at y at time t_min (the βD term is −2∇·f for the drift f = −½βx). Average over
y ~ N(α_{t_min} x, σ_{t_min}² I); by the Markov property the inner expectations become expectations over
x_t ~ N(α_t x, σ_t² I) from time 0, and Stein's identity for that Gaussian (E[∇·s] = E[⟨s, ε⟩]/σ_t) turns
the divergence into the denoising form. With ε̂ = σ_t ∇_x E_θ(x_t, t):

    L_diff(x) = E[−log N(x_1; 0, I)] + ½ ∫_{t_min}^1 E_ε[(β/σ_t²)(‖ε − ε̂‖² − ‖ε‖²) + βD] dt
              ≥ E_{y ~ N(α_{t_min} x, σ_{t_min}² I)}[−log p_θ,t_min(y)]                 (nats per example).

So L_diff bounds the cross-entropy of the t_min-perturbed point, not −log p at x itself (σ_{t_min} ≈ 0.0105
for t_min = 1e-3). Two exact consequences used here:
- Bidirectional bound. For any q, log Z_θ = E_q[−log p_θ] − E_q[E_θ]; with q the law of the perturbed
  generator sample y = α_{t_min} x_g + σ_{t_min} ε (``DiffusionBound.x_tmin``),
      NLL_data(θ) ≤ mean E_θ(x_data, t_min) − mean E_θ(y_g, t_min) + mean L_diff(x_g)
  if p_θ,t_min ∝ exp(−E_θ(·, t_min)) (the consistency caveat below). H(p_g) cancels: no entropy estimate.
- Clean-point bound. L_diff(x) + (D/2) B(t_min) ≥ −log p_dec(x) for the decoder
  p_dec(x) = ∫ p_θ,t_min(y) N(x; y/α_{t_min}, (σ_{t_min}/α_{t_min})² I) dy (Jensen; ``decoder_nll_offset``).
Known answer (tested): for data N(m, s² I) and the exact scores, E_data[L_diff] = H(p_{t_min}) + KL(p_1 ‖ π),
p_t = N(α_t m, (α_t² s² + σ_t²) I), because ½∫(−β E‖∇log p_t‖² + βD) dt = H(p_{t_min}) − H(p_1) along the
Fokker–Planck flow; a wrong score adds exactly ½ ∫ β E_{p_t}‖s_θ − ∇log p_t‖² dt.

Estimators. The prior term is computed in closed form from the exact marginal N(α_1 x, σ_1² I):
(D/2) log 2π + ½(α_1²‖x‖² + D σ_1²). The ε-part is computed as ‖ε̂‖² − 2⟨ε, ε̂⟩ (= ‖ε − ε̂‖² − ‖ε‖², no
cancellation). Because E‖ε‖² = D, the βD term equals ½ ∫ (β/σ_t²) E[σ_t²‖ε‖²] dt, and we estimate it with the
same ε, so that each sample is (β/σ_t²)(‖ε − ε̂‖² − α_t²‖ε‖²): the subtracted α_t²‖ε‖² is a control variate
that cancels ‖ε − ε̂‖² ≈ ‖ε‖² near t_min (ε̂ small) and vanishes near t = 1 (ε̂ ≈ ε), where subtracting
‖ε‖² would only add noise. Same expectation as the form above, lower variance. The weight β/σ_t² is exactly −dλ/dt for
the log-SNR λ(t) = log(α_t²/σ_t²) = −log(e^{B(t)} − 1), so
- ``scheme="log_snr"`` (default): λ ~ U[λ(1), λ(t_min)], t = t(λ), constant weight λ(t_min) − λ(1) ≈ 19.2 —
  the importance sampling of Song et al. 2021 (density ∝ β/σ²), equivalently uniform log-SNR;
- ``scheme="uniform"``: t ~ U[t_min, 1] with weight (1 − t_min) β(t)/σ_t² (heavier tail near t_min);
- ``diffusion_nll_bound_quadrature``: Gauss–Legendre in λ, for low-variance evaluation.
One t and one ε per example; gradients reach the energy's parameters through ∇_x E (create_graph).
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..rng import Noise, rand, randn
from .input_grad import energy_and_input_grad
from ..syncs import scalar_like
from ..types import TimeEnergyFn

BETA_MIN = 0.1
BETA_MAX = 20.0
T_MIN = 1e-3
LOG_2PI = math.log(2 * math.pi)

CONSISTENCY_CAVEAT = (
    "It bounds the diffusion model's likelihood, which equals the EBM's only if the time-conditioned energies "
    "are consistent (the reverse SDE driven by -grad_x E(x, t) from N(0, I) at t = 1 must have the marginal "
    "exp(-E(x, t_min))/Z at t_min)."
)

Scheme = Literal["log_snr", "uniform"]


# --- the VP schedule ------------------------------------------------------------------------------------
def int_beta(t: Tensor) -> Tensor:
    """B(t) = ∫_0^t β(s) ds = β_min t + ½(β_max − β_min) t² (dimensionless)."""
    return BETA_MIN * t + 0.5 * (BETA_MAX - BETA_MIN) * t**2


def beta(t: Tensor) -> Tensor:
    """β(t) = β_min + (β_max − β_min) t."""
    return BETA_MIN + (BETA_MAX - BETA_MIN) * t


def alpha_sigma(t: Tensor) -> tuple[Tensor, Tensor]:
    """(α_t, σ_t) of the VP marginal x_t = α_t x_0 + σ_t ε; σ_t² = −expm1(−B(t)) keeps accuracy for small t."""
    B = int_beta(t)
    return torch.exp(-0.5 * B), torch.sqrt(-torch.expm1(-B))


def log_snr(t: Tensor) -> Tensor:
    """λ(t) = log(α_t²/σ_t²) = −log(e^{B(t)} − 1); decreasing, with dλ/dt = −β(t)/σ_t²."""
    return -torch.log(torch.expm1(int_beta(t)))


def t_from_log_snr(lam: Tensor) -> Tensor:
    """Inverse of ``log_snr``: B = log(1 + e^{−λ}) = softplus(−λ), then the positive root of
    ½(β_max − β_min) t² + β_min t − B = 0 in the cancellation-free form t = 2B / (β_min + √(β_min² + 2ΔβB))."""
    B = torch.nn.functional.softplus(-lam)
    return 2 * B / (BETA_MIN + torch.sqrt(BETA_MIN**2 + 2 * (BETA_MAX - BETA_MIN) * B))


def _need_generator(generator: Noise | None, who: str) -> None:
    if generator is None:
        raise ValueError(f"{who} draws its noise from an explicit generator: pass "
                         "generator=torch.Generator().manual_seed(...) (or the noise itself where accepted).")


def _check_t_min(t_min: float) -> None:
    if not 0.0 < t_min < 1.0:
        raise ValueError(f"t_min must lie in (0, 1), got {t_min}; the bound integrates over [t_min, 1] and "
                         "its estimator's variance grows without limit as t_min → 0.")


# --- the three terms ------------------------------------------------------------------------------------
def prior_nll(x: Tensor) -> Tensor:
    """E[−log N(x_1; 0, I)] for x_1 ~ N(α_1 x, σ_1² I), closed form, nats per example. x: [b, ...] → [b]."""
    xf = x.reshape(x.shape[0], -1)
    D = xf.shape[1]
    a1, s1 = alpha_sigma(scalar_like(1.0, x))
    return 0.5 * D * LOG_2PI + 0.5 * (a1**2 * xf.pow(2).sum(dim=1) + D * s1**2)


def beta_d_term(D: int, t_min: float = T_MIN) -> float:
    """½ ∫_{t_min}^1 β D dt = (D/2)(B(1) − B(t_min)), nats (the −2∇·f term of the VP drift). The estimators
    carry this term inside the control variate σ_t²‖ε‖² (module docstring); the closed form is for reference."""
    t = torch.tensor([t_min, 1.0], dtype=torch.float64)
    B = int_beta(t)
    return 0.5 * D * float(B[1] - B[0])


def decoder_nll_offset(D: int, t_min: float = T_MIN) -> float:
    """−D log α_{t_min} = (D/2) B(t_min): L_diff(x) plus this bounds −log p_dec(x) of the clean point x
    under the Gaussian decoder N(y/α_{t_min}, (σ_{t_min}/α_{t_min})² I) (see the module docstring)."""
    return 0.5 * D * float(int_beta(torch.tensor(t_min, dtype=torch.float64)))


def denoising_mismatch(energy_fn: TimeEnergyFn, x: Tensor, t: Tensor, eps: Tensor, *,
                       create_graph: bool = True) -> Tensor:
    """‖ε − ε̂‖² − ‖ε‖² per example, computed as ‖ε̂‖² − 2⟨ε, ε̂⟩, with ε̂ = σ_t ∇_x E(α_t x + σ_t ε, t).

    energy_fn: (x_t [b, ...], t [b]) → [b] (nats); x: [b, ...] clean points (treated as constants); t: [b] in
    (0, 1]; eps: [b, ...] standard normal. Returns [b] (dimensionless); with ``create_graph`` it is
    differentiable in the energy's parameters.
    """
    if eps.shape != x.shape or t.shape != (x.shape[0],):
        raise ValueError(f"Expected x and eps of one shape [b, ...] and t of shape [b]; got x {tuple(x.shape)}, "
                         f"eps {tuple(eps.shape)}, t {tuple(t.shape)}.")
    alpha, sigma = alpha_sigma(t)
    shape = (-1,) + (1,) * (x.dim() - 1)
    x_t = (alpha.reshape(shape) * x.detach() + sigma.reshape(shape) * eps).detach()
    _, grad_x = energy_and_input_grad(lambda y: energy_fn(y, t), x_t, create_graph)
    eps_hat = (sigma.reshape(shape) * grad_x).reshape(x.shape[0], -1)
    e = eps.reshape(x.shape[0], -1)
    return eps_hat.pow(2).sum(dim=1) - 2 * (e * eps_hat).sum(dim=1)


def sample_t(n: int, *, generator: Noise | None, t_min: float = T_MIN, scheme: Scheme = "log_snr",
             dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """Times t [n] in [t_min, 1] and weights w [n] with E[w f(t)] = ∫_{t_min}^1 (β/σ_t²) f(t) dt for any f."""
    _check_t_min(t_min)
    _need_generator(generator, "sample_t")
    u = rand(n, generator=generator, dtype=dtype, device=device)
    lam_hi, lam_lo = log_snr(scalar_like(t_min, u)), log_snr(scalar_like(1.0, u))
    if scheme == "log_snr":
        t = t_from_log_snr(lam_lo + u * (lam_hi - lam_lo)).clamp(t_min, 1.0)
        return t, (lam_hi - lam_lo).expand(n)
    if scheme == "uniform":
        t = t_min + (1.0 - t_min) * u
        _, sigma = alpha_sigma(t)
        return t, (1.0 - t_min) * beta(t) / sigma**2
    raise ValueError(f"scheme must be 'log_snr' or 'uniform', got {scheme!r}.")


class DiffusionBound(NamedTuple):
    """l_diff: [b], nats — the per-example upper bound L_diff(x) (one t, one ε per example);
    denoising: [b], nats — its Monte-Carlo part ½ w(t)(‖ε − ε̂‖² − ‖ε‖²), the only part that depends on θ
    (its mean is the energy's denoising loss); x_tmin: [b, ...] the points α_{t_min} x + σ_{t_min} ε' (fresh ε'),
    at which to evaluate E(·, t_min) for the generator term of ``diffusion_upper_bound``."""

    l_diff: Tensor
    denoising: Tensor
    x_tmin: Tensor


def perturb(x: Tensor, t: float, *, generator: Noise | None) -> Tensor:
    """A draw of x_t = α_t x + σ_t ε, ε ~ N(0, I), for one time t. x: [b, ...] → [b, ...]."""
    _need_generator(generator, "perturb")
    alpha, sigma = alpha_sigma(scalar_like(t, x))
    return alpha * x + sigma * randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def diffusion_nll_bound(energy_fn: TimeEnergyFn, x: Tensor, *, generator: Noise | None,
                        t_min: float = T_MIN, scheme: Scheme = "log_snr") -> DiffusionBound:
    """Per-example diffusion upper bound L_diff(x) in nats, with one t and one ε per example.

    energy_fn: (x_t [b, ...], t [b]) → [b]; x: [b, ...] points (detached: generator samples in the energy
    step, or data); generator: the source of t, ε and ε'. See the module docstring for what it bounds and for
    ``scheme``. Differentiable in the energy's parameters.
    """
    _check_t_min(t_min)
    x = x.detach()
    b = x.shape[0]
    t, w = sample_t(b, generator=generator, t_min=t_min, scheme=scheme, dtype=x.dtype, device=x.device)
    eps = randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    denoising = 0.5 * w * denoising_mismatch(energy_fn, x, t, eps)
    _, sigma = alpha_sigma(t)
    # βD term carried by the control variate σ_t²‖ε‖² (module docstring); it holds no parameters.
    l_diff = prior_nll(x) + denoising + 0.5 * w * sigma**2 * eps.reshape(b, -1).pow(2).sum(dim=1)
    return DiffusionBound(l_diff=l_diff, denoising=denoising, x_tmin=perturb(x, t_min, generator=generator))


def diffusion_nll_bound_quadrature(energy_fn: TimeEnergyFn, x: Tensor, *, n_t: int = 64, t_min: float = T_MIN,
                                   generator: Noise | None = None, eps: Tensor | None = None,
                                   create_graph: bool = False) -> Tensor:
    """L_diff(x) [b] in nats with the t-integral done by n_t-point Gauss–Legendre quadrature in log-SNR.

    In λ the integrand ½ E_ε[‖ε − ε̂‖² − ‖ε‖²] is smooth (α² = sigmoid(λ), σ² = sigmoid(−λ)), so the
    rule converges fast; only the ε-expectation is sampled (with the control variate of the module
    docstring). eps: optional standard normal noise, [b, ...]
    (shared by all nodes) or [n_t, b, ...]; else drawn per node from ``generator``. One energy-gradient call
    per node, each on the b points.
    """
    _check_t_min(t_min)
    x = x.detach()
    b = x.shape[0]
    nodes, weights = np.polynomial.legendre.leggauss(n_t)
    lam_hi = float(log_snr(torch.tensor(t_min, dtype=torch.float64)))
    lam_lo = float(log_snr(torch.tensor(1.0, dtype=torch.float64)))
    lams = lam_lo + 0.5 * (nodes + 1.0) * (lam_hi - lam_lo)
    ws = 0.5 * (lam_hi - lam_lo) * weights
    if eps is not None and eps.shape not in (x.shape, (n_t,) + tuple(x.shape)):
        raise ValueError(f"eps must have shape {tuple(x.shape)} or {(n_t,) + tuple(x.shape)}, got "
                         f"{tuple(eps.shape)}.")
    if eps is None:
        _need_generator(generator, "diffusion_nll_bound_quadrature")
    integral = x.new_zeros(b)
    for k in range(n_t):
        t = t_from_log_snr(torch.full((b,), lams[k], dtype=x.dtype, device=x.device))
        if eps is None:
            e = randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        else:
            e = eps if eps.shape == x.shape else eps[k]
        _, sigma = alpha_sigma(t)
        sample = denoising_mismatch(energy_fn, x, t, e, create_graph=create_graph)
        integral = integral + ws[k] * (sample + sigma**2 * e.reshape(b, -1).pow(2).sum(dim=1))
    return prior_nll(x) + 0.5 * integral


def diffusion_upper_bound(energy_data_tmin: Tensor, energy_gen_tmin: Tensor, l_diff_gen: Tensor) -> Tensor:
    """Bidirectional upper bound on the EBM's data NLL, nats per example:
    mean E(x_data, t_min) − mean E(y_g, t_min) + mean L_diff(x_g).

    energy_data_tmin: [n] energies of data points at t_min; energy_gen_tmin: [b] energies at t_min of the
    perturbed generator samples y_g = ``DiffusionBound.x_tmin`` (the bound is exact for those; E at the clean
    x_g differs by O(σ_{t_min}²)); l_diff_gen: [b] ``DiffusionBound.l_diff`` of the generator samples x_g.

    Caveat (print it with the number, ``CONSISTENCY_CAVEAT``): it bounds the diffusion model's likelihood,
    which equals the EBM's only if the time-conditioned energies are consistent.
    """
    for name, val in (("energy_data_tmin", energy_data_tmin), ("energy_gen_tmin", energy_gen_tmin),
                      ("l_diff_gen", l_diff_gen)):
        if val.dim() != 1:
            raise ValueError(f"{name} must be a per-example vector [n], got shape {tuple(val.shape)}.")
    if energy_gen_tmin.shape != l_diff_gen.shape:
        raise ValueError(f"energy_gen_tmin and l_diff_gen must describe the same generator samples; got shapes "
                         f"{tuple(energy_gen_tmin.shape)} and {tuple(l_diff_gen.shape)}.")
    return energy_data_tmin.mean() - energy_gen_tmin.mean() + l_diff_gen.mean()
