"""BiB — EBMs trained with bidirectional bounds (Geng, Wang, Gao, Frellsen, Hauberg, "Bounds all around",
NeurIPS 2021; extension "Exploring bidirectional bounds for minimax-training of energy-based models", 2025).

With the identity log Z_θ = −E_pg[E_θ] + H(p_g) + KL(p_g ‖ p_θ), true for any p_g, the data NLL is sandwiched:

    E_data[E] − E_pg[E] + Ĥ(p_g)  ≤  NLL(θ)  ≤  E_data[E] − E_pg[E] + H(p_g) + K̂,   Ĥ ≤ H, K̂ ≥ KL(p_g ‖ p_θ).

The generator (with its encoder for (ii)) maximises the lower bound, loss mean E(G(z)) − w_H·Ĥ; the energy
minimises the upper bound, loss mean E(x) − mean E(x_g) + K-term, with the generator's samples as constants.
Energy step first, then generator step (1:1, as in EBM-BB's ``train_toy.py``). ``lower`` and ``upper`` pick:
- (i) ``lower="jacobian"``: Ĥ = H(z) + mean log-volume of J_z — ``estimator`` ``logdet`` (exact ½ log det JᵀJ),
  ``smin`` (d log s_min, EBM-BB's toy default) or ``lobpcg`` (matrix-free s_min); ``bounds.entropy``.
- (ii) ``lower="mi"``: the noisy generator x = G(z) + σε and a Gaussian encoder give the Barber–Agakov bound
  (``bounds.mi``); its samples are the noisy ones everywhere (energy terms, ``sample``).
- (iii) ``upper="gp"``: K-term relu(w·gp − thre), gp the sliced latent score mismatch (``bounds.score``).
- (iv) ``upper="diffusion"``: a time-conditioned energy E(x, t) (the EBM is E(·, t_min)); K-term the denoising
  part of the VP-SDE bound on the generator samples, contrastive term at their t_min-perturbed copies
  (``bounds.diffusion``).
- ``upper="none"``: the one-sided baseline (lower bound only, as VGAN/VERA and EBM-BB's ``EBM_0gp``), with the
  zero-centred gradient penalty w_0·E_data‖∇E‖² (``onesided_penalty="zero_gp"``) or nothing.

What the reported numbers bound (``evaluate_extra``, keys beside the spine's exact ``nll``; n generator samples,
± one Monte-Carlo standard error of the generator-side average; the data term is the mean energy of the same
test split the exact NLL uses, so it is shared, not an error source). Write ℓ = log(p̃_θ(x)/q(x)) for the
generator's samples, so log Z = log E_q[e^ℓ] and KL(q ‖ p_θ) = log Z − E_q[ℓ]:
- ``nll_lower`` = E_data[E] + mean ℓ̂ with the training estimator: ℓ̂ = −E(x) − log N(z) + log-volume for (i),
  −E(x) + log q_φ(z|x) − log N(z) − log N(x; G(z), σ²I) for (ii) (per-sample −log N(z) and noise terms rather
  than their means: zero spread at p_g = p_θ).
  Valid for (ii) always (any normalised encoder). For (i) Ĥ ≤ H needs an injective G: a G that folds has
  H(p_g) ≤ H(z) + E log|det J| (preimages add up), so the Jacobian value can exceed H and the "bound" the NLL.
  ``fold_frac`` (d = D) is the fraction of samples on the minority side of sign det J (0: no fold was sampled).
- ``nll_upper_chi2`` = E_data[E] + ½ log mean e^{2ℓ}: log Z = log E e^ℓ ≤ ½ log E e^{2ℓ} (Jensen; the χ² or
  CUBO₂ bound). ℓ needs the generator's density: (i) −E − log N(z) + ½ log det JᵀJ (exact J on 2D; with folds
  this over-counts the density ratio, so the bound stays valid), (ii) −E − log p̂_g(x) with the importance-
  sampled marginal p̂_g(x) = mean_k p(z_k, x)/q_φ(z_k|x), z_k ~ q_φ(·|x) (``eval_inner_k`` draws): E p̂_g = p_g,
  so E[1/p̂_g] ≥ 1/p_g and the bound stays valid. Valid in expectation for every pairing;
  the Monte-Carlo estimate of log E e^{2ℓ} is biased low when the weights are heavy-tailed (a generator that
  misses a mode of p_θ), so its error bar is a delta-method one and optimistic there.
- ``nll_upper_diffusion`` ((iv)) = E_data[E(·, t_min)] − mean E(y_g, t_min) + mean L_diff(x_g), L_diff by
  Gauss–Legendre in log-SNR. L_diff bounds the cross-entropy of the diffusion model defined by the scores
  −∇E(·, t), so E_q L_diff ≥ H(q) always, but the sum bounds the EBM's NLL only if the time-conditioned
  energies are consistent: ``upper_note`` prints ``CONSISTENCY_CAVEAT`` with the number.
- ``nll_upper`` = the diffusion value for (iv), else the χ² value. The gp term of (iii) is not a bound on KL by
  itself: gp = ½ E‖∇_z log N − ∇_z log r‖² is half the relative Fisher information between N(0, I) and the latent
  pull-back r of p_θ, and KL ≤ C·gp holds only if r satisfies a log-Sobolev inequality with constant C (paper:
  a surrogate of its range bound log(sup r/inf r)). It is logged as ``score_mismatch``.

Deviations from EBM-BB (``train/train_toy.py``) and why:
- BatchNorm: every generator term (samples, ∇E at them, Jacobians, the latent score) is evaluated with G in eval
  mode, so they describe one map — the one ``sample`` and the evaluation use; the running statistics are
  refreshed by one gradient-free train-mode forward before each generator step. EBM-BB mixes train-mode samples
  with eval-mode Jacobians.
- The energy step does not back-propagate into G (samples, J v and the latent score are constants; EBM-BB
  builds and discards that graph). The generator step freezes E.
- EBM-BB's toy energy uses spectral normalisation with a learned output scale and a decaying gp weight
  0.7(2307 + step)^−0.55 (``--ada``); here a plain PReLU MLP and the constant w = 1e-3, thre = 1 of the brief.
- (ii) and (iv) have no public code; their use here follows METHODS.md §3 (our construction). With (ii)+(iii)
  the gp is taken at the clean G(z) (the latent score needs the manifold density) while the contrastive terms
  use the noisy samples. E(x, t) of (iv) is the network output itself, without the usual 1/σ_t output scaling:
  with it E(·, t_min) = f/σ_{t_min} is 1/σ_{t_min} ≈ 95× steeper, the contrastive term (which acts at t_min only)
  swamps the denoising term and the EBM decouples from its scores.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..bounds.diffusion import (CONSISTENCY_CAVEAT, T_MIN, diffusion_nll_bound, diffusion_nll_bound_quadrature,
                                perturb)
from ..bounds.entropy import batch_jacobian, lobpcg_entropy, logdet_entropy, smin_entropy_exact
from ..bounds.mi import gaussian_nll, mi_entropy_bound
from ..bounds.score import gp_upper_term, score_mismatch_gp, zero_centred_gp
from ..errors import EbmlabError
from ..nets import build
from ..nets.build import Net
from ..nets.gaussian_encoder import GaussianEncoder
from ..parallel import randn
from .base import LatentGenerator, Method, adam, frozen, optimizer_step

LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class BiBConfig:
    lower: Literal["jacobian", "mi"] = "jacobian"
    upper: Literal["gp", "diffusion", "none"] = "gp"
    estimator: Literal["logdet", "smin", "lobpcg"] = "smin"  # (i): the Jacobian term of the lower bound
    lobpcg_iters: int = 2
    jac_mode: Literal["auto", "fwd", "rev"] = "auto"  # exact Jacobians: auto = rev when D ≤ d (2D toys), else fwd
    score_volume: Literal["logdet", "smin", "lobpcg"] = "logdet"  # (iii): the latent score's log-volume
    z_dim: int = 2
    g_hidden: tuple[int, ...] = (100, 100)
    e_hidden: tuple[int, ...] = (100, 100)
    g_batchnorm: bool = True
    entropy_weight: float = 1.0  # w_H; 1 keeps the generator loss a bound
    gp_weight: float = 1e-3  # (iii) w
    gp_threshold: float = 1.0  # (iii) thre
    onesided_penalty: Literal["zero_gp", "none"] = "zero_gp"
    zero_gp_weight: float = 1e-3
    sigma: float = 0.01  # (ii) generator noise
    enc_hidden: tuple[int, ...] = (100, 100)
    t_min: float = T_MIN  # (iv)
    t_scheme: Literal["log_snr", "uniform"] = "log_snr"
    time_emb_dim: int = 32
    diffusion_weight: float = 1.0  # (iv); 1 keeps the energy loss a bound
    lr_g: float = 2e-4
    lr_e: float = 2e-4
    beta1: float = 0.0
    beta2: float = 0.9
    adam_eps: float = 1e-6
    bound_samples: int = 2000  # generator samples behind each reported bound (not the run's eval_samples)
    eval_n_t: int = 16  # Gauss–Legendre nodes of the diffusion bound at evaluation
    eval_inner_k: int = 16  # (ii): encoder draws behind each importance-sampled p_g(x) of the χ² bound
    net: Net = "auto"  # network family: auto (MLP for vectors/2D, conv for images), mlp, conv, dcgan
    width: int = 32  # conv/dcgan width (channels of the first layer)


@contextlib.contextmanager
def _mode(module: nn.Module, training: bool):
    prev = module.training
    module.train(training)
    try:
        yield module
    finally:
        module.train(prev)


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


class BiB(LatentGenerator, Method):
    name = "bib"
    progress_keys = ("loss_e", "loss_g", "entropy")  # shown on the progress bar
    Config = BiBConfig
    description = ("BiB (i)+(iii) by default: generator maximises a lower bound, energy minimises an upper bound "
                   "(lower=jacobian|mi, upper=gp|diffusion|none)")
    has_energy = True

    def __init__(self, config: BiBConfig, **kw):
        super().__init__(config, **kw)
        spec = self.spec
        c = config
        if c.lower == "jacobian" and c.z_dim > spec.dim:
            raise EbmlabError(f"the Jacobian lower bound needs z_dim ≤ data dimension ({spec.dim}), got z_dim="
                              f"{c.z_dim}; lower z_dim or use lower=mi")
        if c.sigma <= 0 or not 0 < c.t_min < 1:
            raise EbmlabError(f"need sigma > 0 and 0 < t_min < 1, got sigma={c.sigma}, t_min={c.t_min}")
        nk = {"net": c.net, "width": c.width}
        self.G = build.generator(spec, c.z_dim, hidden=c.g_hidden, act="prelu", batchnorm=c.g_batchnorm,
                                 **nk).to(self.device)
        if c.upper == "diffusion":
            self.E = build.time_energy(spec, hidden=c.e_hidden, emb_dim=c.time_emb_dim, act="prelu", **nk).to(self.device)
        else:
            self.E = build.critic(spec, 1, hidden=c.e_hidden, act="prelu", **nk).to(self.device)
        self.networks = {"generator": self.G, "energy": self.E}
        g_params = list(self.G.parameters())
        if c.lower == "mi":
            self.encoder = GaussianEncoder(spec, c.z_dim, c.enc_hidden, net=c.net, width=c.width).to(self.device)
            self.networks["encoder"] = self.encoder
            g_params += list(self.encoder.parameters())
        betas = (c.beta1, c.beta2)
        self.optimizers = {"energy": adam(self.E.parameters(), c.lr_e, betas, c.adam_eps),
                           "generator": adam(g_params, c.lr_g, betas, c.adam_eps)}  # + encoder for (ii)

    # --- the energy, its time-conditioned form, and the generator's map -------------------------------------
    def energy_t(self, x: Tensor, t: Tensor) -> Tensor:
        return self.E(x, t)

    def energy(self, x: Tensor) -> Tensor:
        if self.config.upper == "diffusion":
            return self.E(x, torch.full((x.shape[0],), self.config.t_min, dtype=x.dtype, device=x.device))
        return self.E(x).squeeze(1)

    def _g_samples(self, z: Tensor, generator: torch.Generator) -> Tensor:
        """Samples of the distribution the lower bound describes: G(z), or G(z) + σε for (ii)."""
        x = self.G(z)
        if self.config.lower == "mi":
            x = x + self.config.sigma * randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        return x

    def _entropy(self, z: Tensor, generator: torch.Generator):
        c = self.config
        if c.estimator == "logdet":
            return logdet_entropy(self.G, z, jac_mode=c.jac_mode)
        if c.estimator == "smin":
            return smin_entropy_exact(self.G, z, jac_mode=c.jac_mode)
        return lobpcg_entropy(self.G, z, n_iter=c.lobpcg_iters, generator=generator)

    # --- the two losses -----------------------------------------------------------------------------------
    def energy_loss(self, batch: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Upper-bound loss of the energy; G (and the encoder) are constants here."""
        c, b, gen = self.config, batch.shape[0], self.generator
        z = self.noise(b, c.z_dim)
        with frozen(*[m for k, m in self.networks.items() if k != "energy"]), _mode(self.G, False):
            if c.upper == "gp":
                sm = score_mismatch_gp(self.energy, self.G, z, generator=gen, volume=c.score_volume,
                                       n_iter=c.lobpcg_iters, jac_mode=c.jac_mode)
                x_g = sm.x if c.lower == "jacobian" else sm.x + c.sigma * randn(
                    sm.x.shape, generator=gen, dtype=sm.x.dtype, device=sm.x.device)
                e_real, e_fake = self.energy(batch).mean(), self.energy(x_g).mean()
                penalty = gp_upper_term(sm.gp, w=c.gp_weight, thre=c.gp_threshold)
                extra = {"score_mismatch": sm.gp.detach()}
            elif c.upper == "diffusion":
                with torch.no_grad():
                    x_g = self._g_samples(z, gen)
                db = diffusion_nll_bound(self.energy_t, x_g, generator=gen, t_min=c.t_min, scheme=c.t_scheme)
                e_real, e_fake = self.energy(batch).mean(), self.energy(db.x_tmin).mean()
                penalty = c.diffusion_weight * db.denoising.mean()
                extra = {"denoising": db.denoising.mean().detach()}
            else:
                with torch.no_grad():
                    x_g = self._g_samples(z, gen)
                e_real, e_fake = self.energy(batch).mean(), self.energy(x_g).mean()
                zgp = zero_centred_gp(self.energy, batch)
                penalty = c.zero_gp_weight * zgp if c.onesided_penalty == "zero_gp" else torch.zeros_like(e_real)
                extra = {"zero_gp": zgp.detach()}
        loss = e_real - e_fake + penalty
        return loss, {"loss_e": loss.detach(), "energy_real": e_real.detach(), "energy_fake": e_fake.detach(),
                      "penalty": penalty.detach(), **extra}

    def generator_loss(self, b: int) -> tuple[Tensor, dict[str, Tensor]]:
        """Negative lower bound (up to the data term) of the generator and encoder; E is a constant here."""
        c, gen = self.config, self.generator
        z = self.noise(b, c.z_dim)
        with frozen(self.E), _mode(self.G, False):
            if c.lower == "jacobian":
                h = self._entropy(z, gen)
                entropy, x_g = h.entropy, self.G(z)
                extra = {"valid_frac": h.valid.float().mean().detach()}
            else:
                mi = mi_entropy_bound(self.G, self.encoder, z, sigma=c.sigma, generator=gen)
                entropy, x_g = mi.entropy, mi.x
                extra = {"encoder_nll": mi.nll.detach()}
            e_gen = self.energy(x_g).mean()
        loss = e_gen - c.entropy_weight * entropy
        return loss, {"loss_g": loss.detach(), "energy_gen": e_gen.detach(), "entropy": entropy.detach(), **extra}

    def train_step(self, batch: Tensor, step: int) -> dict[str, Tensor | float]:
        c, b = self.config, batch.shape[0]
        # --- energy step: minimise the upper bound (or the one-sided loss) on detached generator samples ---
        loss_e, metrics_e = self.energy_loss(batch)
        optimizer_step(self.optimizers["energy"], loss_e)
        # --- refresh the generator's BatchNorm statistics: one train-mode forward, no gradient ---
        if c.g_batchnorm:
            with torch.no_grad(), _mode(self.G, True):
                self.G(self.noise(b, c.z_dim))
        # --- generator (+ encoder) step: maximise the lower bound −E_pg[E] + Ĥ with G in eval mode ---
        loss_g, metrics_g = self.generator_loss(b)
        optimizer_step(self.optimizers["generator"], loss_g)
        return {**metrics_e, **metrics_g}

    def features(self, x: Tensor) -> Tensor:
        if self.config.upper == "diffusion":
            raise EbmlabError("the time-conditioned energy of the diffusion pairings has no plain feature layer")
        return build.penultimate(self.E, x)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        gen = generator or self.generator
        with _mode(self.G, False):
            return self._g_samples(self.noise(n, self.config.z_dim, gen), gen)

    # --- the reported bounds --------------------------------------------------------------------------------
    def evaluate_extra(self, dataset: Any) -> dict[str, Any]:
        """Lower and upper bounds on the test NLL in nats, with Monte-Carlo standard errors (module docstring)."""
        c, n = self.config, self.config.bound_samples
        gen = torch.Generator(device=self.device).manual_seed(12345)  # own noise: training RNGs untouched
        out: dict[str, Any] = {}
        with torch.no_grad():
            e_data = float(torch.cat([self.energy(x) for x in dataset.test.to(self.device).split(4096)]).double().mean())
        z = self.noise(n, c.z_dim, gen)
        log_nz = -0.5 * (z**2).sum(1) - 0.5 * c.z_dim * LOG_2PI
        with _mode(self.G, False), torch.no_grad():
            if c.lower == "jacobian":
                x = self.G(z)
                e_gen = self.energy(x)
                h = self._entropy(z, gen)
                low = torch.where(h.valid, -e_gen - log_nz + h.log_volume, math.nan)
                J = batch_jacobian(self.G, z, mode=c.jac_mode)
                log_w = -e_gen - log_nz + 0.5 * torch.linalg.slogdet(J.transpose(1, 2) @ J)[1]
                if J.shape[1] == J.shape[2]:
                    pos = (torch.linalg.det(J) > 0).float().mean().item()
                    out["fold_frac"] = min(pos, 1 - pos)
            else:
                mean = self.G(z)
                eps = torch.randn(mean.shape, generator=gen, dtype=mean.dtype, device=mean.device)
                x = mean + c.sigma * eps
                e_gen = self.energy(x)
                mu, logvar = self.encoder(x)
                D = self.spec.dim
                log_px_z = -0.5 * (eps**2).flatten(1).sum(1) - D * (0.5 * LOG_2PI + math.log(c.sigma))
                # E[low] is exactly the Barber–Agakov bound of ``bounds.mi`` minus E_pg[E]
                low = -e_gen - gaussian_nll(z, mu, logvar) - log_nz - log_px_z
                # χ² weights p̃(x)/p̂_g(x) with p̂_g(x) = mean_k p(z_k, x)/q(z_k|x), z_k ~ q(·|x)
                k, d = c.eval_inner_k, c.z_dim
                xi = torch.randn((k,) + mu.shape, generator=gen, dtype=mu.dtype, device=mu.device)
                zk = (mu + torch.exp(0.5 * logvar) * xi).reshape(-1, d)
                rk = ((x.repeat(k, *[1] * (x.dim() - 1)) - self.G(zk)) / c.sigma).flatten(1)
                log_joint = (-0.5 * (zk**2).sum(1) - 0.5 * d * LOG_2PI - 0.5 * (rk**2).sum(1)
                             - D * (0.5 * LOG_2PI + math.log(c.sigma)))
                log_q = -gaussian_nll(zk, mu.repeat(k, 1), logvar.repeat(k, 1))
                log_pg = torch.logsumexp((log_joint - log_q).reshape(k, -1), 0) - math.log(k)
                log_w = -e_gen - log_pg
        m_low, se_low = _mean_se(low)
        out["nll_lower"], out["nll_lower_se"] = e_data + m_low, se_low
        log_z_chi2, se_chi2 = _chi2_log_z(log_w[torch.isfinite(log_w)])
        out["nll_upper_chi2"], out["nll_upper_chi2_se"] = e_data + log_z_chi2, se_chi2
        out["nll_upper"], out["nll_upper_se"] = out["nll_upper_chi2"], se_chi2
        if c.upper == "diffusion":
            l_diff = diffusion_nll_bound_quadrature(self.energy_t, x, n_t=c.eval_n_t, t_min=c.t_min, generator=gen)
            with torch.no_grad():
                u = l_diff.detach() - self.energy(perturb(x, c.t_min, generator=gen))
            m, se = _mean_se(u)
            out["nll_upper_diffusion"], out["nll_upper_diffusion_se"] = e_data + m, se
            out["nll_upper"], out["nll_upper_se"] = e_data + m, se
            out["upper_note"] = "nll_upper is the diffusion bound. " + CONSISTENCY_CAVEAT
        else:
            out["upper_note"] = "nll_upper is the chi-square bound 0.5 log E_pg[(p~/p_g)^2] (module docstring)"
        if c.upper == "gp":
            with _mode(self.G, False):
                out["score_mismatch"] = score_mismatch_gp(self.energy, self.G, z[:500], generator=gen,
                                                          volume=c.score_volume, n_iter=c.lobpcg_iters,
                                                          jac_mode=c.jac_mode).gp.item()
        return out


# --- registered pairings: the same class with other Config defaults ----------------------------------------------
def _variant(name: str, description: str, **defaults: Any) -> type[BiB]:
    hints = typing.get_type_hints(BiBConfig)
    camel = "".join(p.title() for p in name.split("_"))
    cfg = dataclasses.make_dataclass(f"{camel}Config", [(k, hints[k], dataclasses.field(default=v))
                                                       for k, v in defaults.items()],
                                     bases=(BiBConfig,), frozen=True)
    cfg.__module__ = __name__
    return type(camel, (BiB,), {"name": name, "Config": cfg, "description": description, "__module__": __name__})


BIB_METHODS: dict[str, type[Method]] = {
    "bib": BiB,
    "bib_jac_diff": _variant("bib_jac_diff", "BiB (i)+(iv): Jacobian lower bound, diffusion upper bound",
                             lower="jacobian", upper="diffusion"),
    "bib_mi_gp": _variant("bib_mi_gp", "BiB (ii)+(iii): mutual-information lower bound, gradient-penalty upper bound",
                          lower="mi", upper="gp"),
    "bib_mi_diff": _variant("bib_mi_diff", "BiB (ii)+(iv): mutual-information lower bound, diffusion upper bound",
                            lower="mi", upper="diffusion"),
    "bib_onesided": _variant("bib_onesided", "BiB one-sided baseline: Jacobian lower bound only, zero-centred GP",
                             lower="jacobian", upper="none"),
}
