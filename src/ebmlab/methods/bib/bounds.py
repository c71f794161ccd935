"""The bounds BiB composes, each a small object with its own fields and networks (no reference to the method that
uses it): lower bounds of the generator's entropy — (i) :class:`JacobianLower`, (ii) :class:`MILower` — and the
energy's side — (iii) :class:`GPUpper`, (iv) :class:`DiffusionUpper`, and the one-sided baseline
:class:`OneSided`. The objective, the paper and what each reported number bounds: ``methods.bib.method``.
"""


from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from ...bounds.diffusion import (CONSISTENCY_CAVEAT, diffusion_nll_bound, diffusion_nll_bound_quadrature,
                                perturb)
from ...bounds.entropy import (EntropyBound, batch_jacobian, lobpcg_entropy, logdet_entropy, smin_entropy_exact,
                               svdvals_or_nan)
from ...bounds.mi import gaussian_nll, mi_entropy_bound
from ...bounds.score import gp_upper_term, score_mismatch_gp, zero_centred_gp
from ...errors import EbmlabError
from ...nets import build
from ...nets.gaussian_encoder import GaussianEncoder
from ...data.base import DataSpec
from ...rng import Noise, randn
from ...types import EnergyFn
from ..base import in_mode

LOG_2PI = math.log(2 * math.pi)

if TYPE_CHECKING:
    from .method import BiBConfig

def _mean_se(v: Tensor) -> tuple[float, float]:
    v = v[torch.isfinite(v)].double()
    n = v.numel()
    if n == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std() / math.sqrt(n)) if n > 1 else math.nan


def _chi2_log_z(log_w: Tensor) -> tuple[float, float]:
    """½ log mean e^{2ℓ} and its delta-method standard error."""
    a = 2 * log_w.double()
    m = a.max()
    r = torch.exp(a - m)
    n = r.numel()
    return float(0.5 * (m + torch.log(r.mean()))), float(0.5 * r.std() / (math.sqrt(n) * r.mean()))


def log_singular_values(J: Tensor) -> Tensor:
    """log s_i of each Jacobian J [b, D, d], float64, descending, 16 rows at a time (memory). ½ log det JᵀJ is their
    sum: forming JᵀJ in float32 squares J's condition number (1e5 for a 3072×128 image generator) and put that
    log-volume 100–180 nats off; the singular values give it to float64 precision. NaN rows for a non-finite J."""
    return torch.log(torch.cat([svdvals_or_nan(b.double()) for b in J.split(16)]))


def spectrum_summary(log_s: Tensor) -> dict[str, float]:
    """``jac_mean_log_s`` (log-volume per latent dimension) and ``jac_log10_cond`` (mean log10 condition number) over
    the rows whose singular values are all positive; empty when none is."""
    ok = torch.isfinite(log_s).all(1)
    if not ok.any():
        return {}
    return {"jac_mean_log_s": float(log_s[ok].mean()),
            "jac_log10_cond": float((log_s[ok, 0] - log_s[ok, -1]).mean() / math.log(10))}


# --- lower bounds: the generator's side ------------------------------------------------------------------------
class LowerBound:
    """A lower bound Ĥ ≤ H(p_g) on the entropy of the generator's distribution: what the generator (and its own
    networks) maximise, −E_pg[E] + Ĥ. One object per bound; :class:`BiB` composes one with an :class:`UpperBound`.

    ``perturb`` maps clean G(z) to samples of the distribution the bound describes; ``training_term`` gives
    (Ĥ, the samples E is evaluated at, logged extras); ``evaluation`` gives, per generator sample, the lower-bound
    integrand ℓ̂ and the log-weight ℓ = log(p̃_θ/p_g) of the χ² upper bound (module docstring)."""

    key: ClassVar[str]
    clean: ClassVar[bool] = True  # its samples are G(z) itself (``perturb`` is the identity)

    def __init__(self, G: nn.Module, spec: DataSpec, config: BiBConfig, device: torch.device):
        self.G, self.spec, self.config = G, spec, config
        self.networks: dict[str, nn.Module] = {}  # trained with the generator, by its optimizer

    def perturb(self, x: Tensor, generator: Noise) -> Tensor:
        return x

    def sample(self, z: Tensor, generator: Noise) -> Tensor:
        return self.perturb(self.G(z), generator)

    def training_term(self, z: Tensor, generator: Noise) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        raise NotImplementedError

    def evaluation(self, energy: EnergyFn, z: Tensor, log_nz: Tensor, generator: Noise,
                   out: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
        """(samples x, ℓ̂ per sample, ℓ per sample) under the energy E (``energy``: x → E(x) [b]); may add keys
        to ``out``."""
        raise NotImplementedError


class JacobianLower(LowerBound):
    """(i) Ĥ = H(z) + mean log-volume of J_z (``estimator``: logdet, smin or lobpcg; ``bounds.entropy``)."""

    key = "jacobian"

    def __init__(self, G: nn.Module, spec: DataSpec, config: BiBConfig, device: torch.device):
        super().__init__(G, spec, config, device)
        if config.z_dim > spec.dim:
            raise EbmlabError(f"the Jacobian lower bound needs z_dim ≤ data dimension ({spec.dim}), got z_dim="
                              f"{config.z_dim}; lower z_dim or use lower=mi")

    def entropy(self, z: Tensor, generator: Noise, sync_free: bool = False):
        c, G = self.config, self.G
        if c.estimator == "logdet":
            return logdet_entropy(G, z, jac_mode=c.jac_mode)
        if c.estimator == "smin":
            return smin_entropy_exact(G, z, jac_mode=c.jac_mode)
        return lobpcg_entropy(G, z, n_iter=c.lobpcg_iters, generator=generator, sync_free=sync_free)

    def training_term(self, z, generator):
        k = self.config.entropy_batch
        sub = 0 < k < z.shape[0]  # the Jacobian term at the first k latents; the energy term sees the whole batch
        h = self.entropy(z[:k] if sub else z, generator, sync_free=True)  # no host synchronisation in a step
        x = h.x if h.x is not None and not sub else self.G(z)  # the exact estimators computed G(z) with J
        return h.entropy, x, {"valid_frac": h.valid.float().mean().detach()}

    def entropy_and_score(self, z: Tensor, generator: Noise) -> tuple[EntropyBound, Tensor]:
        """One LOBPCG estimate for both players (``share_jacobian``): Ĥ with its graph to G's parameters, kept for
        the generator step, and from the same graph the latent score ∇_z(−log p_g(G(z))) = z + d ∇_z log s_min,
        detached, for bound (iii) — what ``latent_score(volume="lobpcg")`` and ``entropy`` give from two separate
        estimates with the same random start. Sync-free, as a training step must be."""
        with torch.enable_grad():
            zz = z.detach().requires_grad_(True)
            h = self.entropy(zz, generator, sync_free=True)
            lv = torch.where(h.valid, h.log_volume, torch.zeros_like(h.log_volume))
            g = torch.autograd.grad(lv.sum(), zz, retain_graph=True, allow_unused=True, materialize_grads=True)[0]
        return h, (zz.detach() + g).detach()

    def evaluation(self, energy, z, log_nz, generator, out):
        c = self.config
        x = self.G(z)
        e_gen = energy(x)
        J = batch_jacobian(self.G, z, mode=c.jac_mode)
        log_s = log_singular_values(J)
        base, half_logdet = -e_gen.double() - log_nz.double(), log_s.sum(1)
        log_w = base + half_logdet
        # the estimator's bound at J's exact singular values: ½ log det JᵀJ (logdet) or d·log s_min (smin, lobpcg).
        # LOBPCG's Ritz value is never below s_min, so its own few-iteration d·log ŝ is no bound (on a 128-dimensional
        # image generator at 2 iterations it was about 1000 nats above): how far above is logged
        log_volume = half_logdet if c.estimator == "logdet" else z.shape[1] * log_s[:, -1]
        if c.estimator == "lobpcg":
            h = self.entropy(z, generator)
            out["lobpcg_excess"] = float((h.log_volume.double() - log_volume)[h.valid].mean())
        low = base + log_volume
        low = torch.where(torch.isfinite(low), low, math.nan)
        out.update(spectrum_summary(log_s))  # a generator whose Jacobian shrinks or degenerates shows it here first
        if J.shape[1] == J.shape[2]:
            pos = (torch.linalg.det(J) > 0).float().mean().item()
            out["fold_frac"] = min(pos, 1 - pos)
        return x, low, log_w


class MILower(LowerBound):
    """(ii) the noisy generator x = G(z) + σε and a Gaussian encoder q_φ(z|x): the Barber–Agakov bound
    (``bounds.mi``). Its samples are the noisy ones everywhere (energy terms, ``sample``)."""

    key = "mi"
    clean = False

    def __init__(self, G: nn.Module, spec: DataSpec, config: BiBConfig, device: torch.device):
        super().__init__(G, spec, config, device)
        c = config
        self.encoder = GaussianEncoder(spec, c.z_dim, c.enc_hidden, net=c.net, width=c.width).to(device)
        self.networks = {"encoder": self.encoder}

    def perturb(self, x, generator):
        return x + self.config.sigma * randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)

    def training_term(self, z, generator):
        mi = mi_entropy_bound(self.G, self.encoder, z, sigma=self.config.sigma, generator=generator)
        return mi.entropy, mi.x, {"encoder_nll": mi.nll.detach()}

    def evaluation(self, energy, z, log_nz, generator, out):
        c = self.config
        mean = self.G(z)
        eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        x = mean + c.sigma * eps
        e_gen = energy(x)
        mu, logvar = self.encoder(x)
        D = self.spec.dim
        log_px_z = -0.5 * (eps**2).flatten(1).sum(1) - D * (0.5 * LOG_2PI + math.log(c.sigma))
        # E[low] is exactly the Barber–Agakov bound of ``bounds.mi`` minus E_pg[E]
        low = -e_gen - gaussian_nll(z, mu, logvar) - log_nz - log_px_z
        # χ² weights p̃(x)/p̂_g(x) with p̂_g(x) = mean_k p(z_k, x)/q(z_k|x), z_k ~ q(·|x)
        k, d = c.eval_inner_k, c.z_dim
        xi = torch.randn((k,) + mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        zk = (mu + torch.exp(0.5 * logvar) * xi).reshape(-1, d)
        rk = ((x.repeat(k, *[1] * (x.dim() - 1)) - self.G(zk)) / c.sigma).flatten(1)
        log_joint = (-0.5 * (zk**2).sum(1) - 0.5 * d * LOG_2PI - 0.5 * (rk**2).sum(1)
                     - D * (0.5 * LOG_2PI + math.log(c.sigma)))
        log_q = -gaussian_nll(zk, mu.repeat(k, 1), logvar.repeat(k, 1))
        log_pg = torch.logsumexp((log_joint - log_q).reshape(k, -1), 0) - math.log(k)
        return x, low, -e_gen - log_pg


# --- upper bounds: the energy's side ---------------------------------------------------------------------------
class UpperBound:
    """An upper bound on the NLL through a K-term K̂ ≥ KL(p_g ‖ p_θ) (or none): what the energy minimises,
    mean E(x) − mean E(x_g) + K̂. The bound owns the energy network ``E``, whose form it fixes (E(x), or E(x, t)
    for the diffusion bound). ``energy_term`` gives (mean E on data, mean E on the samples of the ``lower`` bound's
    distribution, the K-term or penalty, logged extras) with the generator's networks frozen; ``evaluation`` adds
    its reported numbers."""

    key: ClassVar[str]
    time_conditioned: ClassVar[bool] = False  # E(x, t) instead of E(x)

    def __init__(self, G: nn.Module, spec: DataSpec, config: BiBConfig, device: torch.device):
        self.G, self.config = G, config
        c = config
        if self.time_conditioned:
            if c.e_out_scale or c.e_spectral_norm:
                raise EbmlabError("e_out_scale and e_spectral_norm shape the plain energy; the diffusion "
                                  "pairings' time-conditioned energy does not take them")
            self.E = build.time_energy(spec, hidden=c.e_hidden, emb_dim=c.time_emb_dim, act="prelu", net=c.net,
                                       width=c.width).to(device)
        else:
            self.E = build.critic(spec, 1, hidden=c.e_hidden, act="prelu", out_scale=c.e_out_scale,
                                  spectral_norm=c.e_spectral_norm, net=c.net, width=c.width).to(device)

    def energy(self, x: Tensor) -> Tensor:
        """E(x) [b] in nats: the EBM (for a time-conditioned energy, E(·, t_min))."""
        if self.time_conditioned:
            return self.E(x, torch.full((x.shape[0],), self.config.t_min, dtype=x.dtype, device=x.device))
        return self.E(x).squeeze(1)

    def energy_t(self, x: Tensor, t: Tensor) -> Tensor:
        return self.E(x, t)

    def energy_term(self, lower: LowerBound, batch: Tensor, z: Tensor, generator: Noise,
                    score: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
        """``score``: the latent score at z when the lower bound computed it (``share_jacobian``; bound (iii))."""
        raise NotImplementedError

    def evaluation(self, x: Tensor, z: Tensor, e_data: float, generator: Noise,
                   out: dict[str, Any]) -> None:
        out["upper_note"] = "nll_upper is the chi-square bound 0.5 log E_pg[(p~/p_g)^2] (module docstring)"


class GPUpper(UpperBound):
    """(iii) K-term relu(w·gp − thre), gp the sliced latent score mismatch (``bounds.score``), taken at the clean
    G(z); the contrastive term uses the lower bound's samples."""

    key = "gp"

    def energy_term(self, lower, batch, z, generator, score=None):
        c = self.config
        sm = score_mismatch_gp(self.energy, self.G, z, generator=generator, volume=c.score_volume,
                               n_iter=c.lobpcg_iters, jac_mode=c.jac_mode, score=score)
        if lower.clean and sm.energy is not None:  # the contrastive term is at the same G(z): reuse E(x) from the
            e_fake = sm.energy.mean()  # score mismatch
        else:
            e_fake = self.energy(lower.perturb(sm.x, generator)).mean()
        e_real = self.energy(batch).mean()
        return e_real, e_fake, gp_upper_term(sm.gp, w=c.gp_weight, thre=c.gp_threshold), \
            {"score_mismatch": sm.gp.detach()}

    def evaluation(self, x, z, e_data, generator, out):
        super().evaluation(x, z, e_data, generator, out)
        c = self.config
        with in_mode(False, self.G):
            out["score_mismatch"] = score_mismatch_gp(self.energy, self.G, z[:500], generator=generator,
                                                      volume=c.score_volume, n_iter=c.lobpcg_iters,
                                                      jac_mode=c.jac_mode).gp.item()


class DiffusionUpper(UpperBound):
    """(iv) a time-conditioned energy E(x, t) (the EBM is E(·, t_min)); K-term the denoising part of the VP-SDE
    bound on the generator samples, contrastive term at their t_min-perturbed copies (``bounds.diffusion``)."""

    key = "diffusion"
    time_conditioned = True

    def energy_term(self, lower, batch, z, generator, score=None):
        c = self.config
        with torch.no_grad():
            x_g = lower.sample(z, generator)
        db = diffusion_nll_bound(self.energy_t, x_g, generator=generator, t_min=c.t_min, scheme=c.t_scheme)
        e_real, e_fake = self.energy(batch).mean(), self.energy(db.x_tmin).mean()
        return e_real, e_fake, c.diffusion_weight * db.denoising.mean(), {"denoising": db.denoising.mean().detach()}

    def evaluation(self, x, z, e_data, generator, out):
        c = self.config
        l_diff = diffusion_nll_bound_quadrature(self.energy_t, x, n_t=c.eval_n_t, t_min=c.t_min, generator=generator)
        with torch.no_grad():
            u = l_diff.detach() - self.energy(perturb(x, c.t_min, generator=generator))
        m, se = _mean_se(u)
        out["nll_upper_diffusion"], out["nll_upper_diffusion_se"] = e_data + m, se
        out["nll_upper"], out["nll_upper_se"] = e_data + m, se
        out["upper_note"] = "nll_upper is the diffusion bound. " + CONSISTENCY_CAVEAT


class OneSided(UpperBound):
    """No upper bound: the one-sided baseline (VGAN/VERA, EBM-BB's ``EBM_0gp``), with the zero-centred gradient
    penalty w_0·E_data‖∇E‖² (``onesided_penalty="zero_gp"``) or nothing."""

    key = "none"

    def energy_term(self, lower, batch, z, generator, score=None):
        c = self.config
        with torch.no_grad():
            x_g = lower.sample(z, generator)
        e_real, e_fake = self.energy(batch).mean(), self.energy(x_g).mean()
        zgp = zero_centred_gp(self.energy, batch)
        penalty = c.zero_gp_weight * zgp if c.onesided_penalty == "zero_gp" else torch.zeros_like(e_real)
        return e_real, e_fake, penalty, {"zero_gp": zgp.detach()}


LOWER_BOUNDS: dict[str, type[LowerBound]] = {b.key: b for b in (JacobianLower, MILower)}
UPPER_BOUNDS: dict[str, type[UpperBound]] = {b.key: b for b in (GPUpper, DiffusionUpper, OneSided)}


