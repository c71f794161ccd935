"""Score-mismatch ("gradient-penalty-like") upper-bound term of BiB (bound (iii)) and the zero-centred GP.

Geng et al., "Bounds all around" (NeurIPS 2021) close their upper bound on the NLL with a gradient-penalty-like
term that penalises the mismatch between the scores of p_g and p_θ; their code (EBM-BB, ``train/train_toy.py``,
``EBM_BB.compute_gp`` and the energy step) measures it in latent coordinates. With the generator density on
its manifold

    log p_g(G(z)) := log N(z; 0, std² I) − ½ log det(J_zᵀ J_z)      (or − d · log s_min(J_z)),

the chain rule gives ∇_z E(G(z)) = J_zᵀ ∇_x E(G(z)); E = −log p_g + const would make it equal to
∇_z(−log p_g(G(z))). The sliced (Hutchinson) penalty

    gp = ½ E_{z,v}[(⟨∇_x E(G(z)), J_z v⟩ − ⟨∇_z(−log p_g(G(z))), v⟩)²],   v ~ N(0, I_d),

is an unbiased estimate of ½ E_z ‖J_zᵀ(∇_x E − ∇_x(−log p_g))‖². J v and the latent score are detached, so
only the energy receives gradient. The energy loss in EBM-BB is
mean E(x_data) − mean E(G(z)) + relu(w · gp − thre) with w = 1e-3, thre = 1 on toys (``gp_upper_term``).

As coded in EBM-BB, with these deviations:
- the samples G(z) are detached here (EBM-BB back-propagates the energy loss into G, then discards it);
- J v and G(z) come from one ``torch.func.jvp`` of G in whatever mode the caller put G in; EBM-BB computes
  ∇_x E at train-mode BatchNorm samples but J and log det in eval mode. Use one mode for every term;
- besides the exact ½ slogdet (EBM-BB's toy choice) the latent score may use d · log s_min (exact SVD or
  LOBPCG), matching the entropy estimator of the generator step.

``zero_centred_gp`` is the baseline penalty E_data ‖∇_x E‖² (EBM-BB's ``EBM_0gp``), weighted by the caller.
G must act on rows independently (see ``ebmlab.bounds.entropy``).
"""

from __future__ import annotations

from typing import Any, Callable, Literal, NamedTuple

import torch
from torch import Tensor
from torch.func import jvp as _jvp

from ..nets.jacobian import piecewise_linear, propagate_jacobian, propagates
from .entropy import JacMode, jacobian_and_output, lobpcg_smin, svdvals_or_nan
from .input_grad import energy_and_input_grad
from ..rng import Noise, randn
from ..types import EnergyFn

jvp: Any = _jvp  # torch's stubs type it by its has_aux form (three values); here it returns (output, tangent)

Volume = Literal["logdet", "smin", "lobpcg"]


class ScoreMismatch(NamedTuple):
    """gp: scalar, the sliced score mismatch ½ mean (⟨∇E, J v⟩ − ⟨s, v⟩)² (squared nats per latent unit);
    per_example: [b]; x: [b, ...] the detached samples G(z) at which ∇_x E was taken; energy: [b] E(x) with its
    graph to the energy's parameters (a contrastive term at the same samples needs no second forward)."""

    gp: Tensor
    per_example: Tensor
    x: Tensor
    energy: Tensor | None = None


def _latent_score(G: Callable[[Tensor], Tensor], z: Tensor, volume: Volume, z_std: float, n_iter: int,
                  generator: Noise | None, jac_mode: JacMode) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """(score, G(z), J) — the last two detached, from the same pass, when an exact volume formed them."""
    if z.dim() != 2:
        raise ValueError(f"Expected latents z of shape [b, d], got {tuple(z.shape)}.")
    d, x, J = z.shape[1], None, None
    if volume in ("logdet", "smin") and jac_mode in ("auto", "prop") and piecewise_linear(G):
        with torch.no_grad():  # ∇_z log-volume = 0 exactly (``piecewise_linear``): no backward to take
            x, J = propagate_jacobian(G, z.detach())
        return z.detach() / z_std**2, x, J
    with torch.enable_grad():
        zz = z.detach().requires_grad_(True)
        if volume in ("logdet", "smin"):
            x, J = jacobian_and_output(G, zz, mode=jac_mode)
            log_volume = (0.5 * torch.linalg.slogdet(J.transpose(1, 2) @ J)[1] if volume == "logdet"
                          else d * torch.log(svdvals_or_nan(J)[:, -1]))
        elif volume == "lobpcg":
            # sync-free: only z-gradients are taken here, and a row-wise G keeps each row's to itself
            est = lobpcg_smin(G, zz, n_iter=n_iter, generator=generator, sync_free=True)
            safe = torch.where(est.valid, est.s_min, torch.ones_like(est.s_min))
            log_volume = d * torch.log(safe)
        else:
            raise ValueError(f"volume must be one of 'logdet', 'smin', 'lobpcg'; got {volume!r}.")
        # allow_unused: a J of an affine (or piecewise-linear) G may not depend on z (its volume gradient is 0)
        # (and a double-backward J v of an affine G carries no graph at all)
        grad_volume = (torch.autograd.grad(log_volume.sum(), zz, allow_unused=True, materialize_grads=True)[0]
                       if log_volume.requires_grad else torch.zeros_like(zz))
    score = (z.detach() / z_std**2 + grad_volume).detach()
    return score, (None if x is None else x.detach()), (None if J is None else J.detach())


def latent_score(G: Callable[[Tensor], Tensor], z: Tensor, *, volume: Volume = "logdet", z_std: float = 1.0,
                 n_iter: int = 20, generator: Noise | None = None,
                 jac_mode: JacMode = "auto") -> Tensor:
    """∇_z(−log p_g(G(z))) = z / std² + ∇_z log_volume(z), detached, [b, d].

    G: row-wise generator z[b, d] → x[b, ...]; z: [b, d]. ``volume`` picks log_volume: ``"logdet"`` the exact
    ½ slogdet(JᵀJ); ``"smin"`` d · log s_min(J) from svdvals; ``"lobpcg"`` d · log ‖J v‖ with v from
    ``lobpcg_smin`` (n_iter iterations, random start from ``generator``), whose z-gradient at fixed v is that
    of d · log s_min when v has converged (Hellmann–Feynman). The second derivatives of G come from
    differentiating the Jacobian (``jacobian_and_output``, picked by ``jac_mode``) with ordinary autograd;
    summing over the batch before the gradient is exact because G is row-wise. For a piecewise-linear MLP
    ((Leaky/P)ReLU, BatchNorm in eval mode) that gradient is exactly 0 (``nets.jacobian.piecewise_linear``) and
    is not computed.
    """
    return _latent_score(G, z, volume, z_std, n_iter, generator, jac_mode)[0]


def score_mismatch_gp(energy_fn: EnergyFn, G: Callable[[Tensor], Tensor], z: Tensor, *,
                      generator: Noise | None = None, v: Tensor | None = None,
                      score: Tensor | None = None, volume: Volume = "logdet", z_std: float = 1.0,
                      n_iter: int = 20, jac_mode: JacMode = "auto") -> ScoreMismatch:
    """Sliced latent score mismatch between E and the generator density (EBM-BB's ``gp_loss``).

    energy_fn: x[b, ...] → [b] (nats); G: row-wise generator; z: [b, d]; v: optional [b, d] slicing directions
    (else N(0, I) from ``generator``); score: optional precomputed ``latent_score`` [b, d] (else computed with
    ``volume``, ``z_std``, ``n_iter``). Gradient flows into the energy's parameters only (create_graph on
    ∇_x E); G(z), J v and the score are constants. With an exact ``volume`` the score's Jacobian pass also
    gives G(z) and J v; otherwise J v comes from one JVP, or from the full Jacobian when ``jac_mode`` (``auto``:
    tangent propagation for MLP chains) forms it.
    """
    if z.dim() != 2:
        raise ValueError(f"Expected latents z of shape [b, d], got {tuple(z.shape)}.")
    if v is None:
        if generator is None:
            raise ValueError("score_mismatch_gp draws the slicing directions v from an explicit generator: pass "
                             "generator=torch.Generator().manual_seed(...) or v.")
        v = randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)
    elif v.shape != z.shape:
        raise ValueError(f"v must have the shape of z {tuple(z.shape)}, got {tuple(v.shape)}.")
    x: Any = None
    J: Any = None
    if score is None:
        score, x, J = _latent_score(G, z, volume, z_std, n_iter, generator, jac_mode)
    with torch.no_grad():
        if J is None:  # the score did not form J: take G(z) and J v here
            # auto: the propagated J of an MLP chain, else one JVP (J v is all that is needed)
            mode = jac_mode if jac_mode != "auto" else ("prop" if propagates(G) else "fwd")
            if mode == "fwd":
                # G(z) and J_z v in one forward-mode pass (contiguous: forward AD rejects expanded inputs)
                x, Jv = jvp(G, (z.detach().contiguous(),), (v.contiguous(),))
            else:
                x, J = jacobian_and_output(G, z.detach(), mode=mode)
        if J is not None:
            Jv = (J @ v.unsqueeze(-1)).reshape(x.shape)
    b = z.shape[0]
    x = x.detach()
    energy, grad_x = energy_and_input_grad(energy_fn, x)
    mismatch = (grad_x * Jv).reshape(b, -1).sum(dim=1) - (score * v).sum(dim=1)
    per_example = 0.5 * mismatch**2
    return ScoreMismatch(gp=per_example.mean(), per_example=per_example, x=x.detach(), energy=energy)


def gp_upper_term(gp: Tensor, *, w: float = 1e-3, thre: float = 1.0) -> Tensor:
    """relu(w · gp − thre): the hinge EBM-BB adds to the energy loss (w = 1e-3; thre = 1 on toys, 0 on images).

    Below the threshold the term is zero, so it only restrains the energy once the mismatch is large.
    EBM-BB's optional decaying weight (``--ada``: w = 0.7 (2307 + step)^−0.55) is passed in as ``w``.
    """
    return torch.relu(w * gp - thre)


def zero_centred_gp(energy_fn: EnergyFn, x: Tensor) -> Tensor:
    """Baseline zero-centred gradient penalty mean_i ‖∇_x E(x_i)‖², differentiable in the energy's parameters.

    energy_fn: x[b, ...] → [b]; x: [b, ...] data samples (detached here). Returns a scalar; the caller
    multiplies it by its weight (EBM-BB's ``gp_weight``).
    """
    _, grad_x = energy_and_input_grad(energy_fn, x)
    return grad_x.reshape(x.shape[0], -1).pow(2).sum(dim=1).mean()
