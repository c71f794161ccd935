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

Structure: each bound is a small object with its training term and its evaluation term — ``JacobianLower`` (i)
and ``MILower`` (ii) are :class:`LowerBound` s (with the networks they train, e.g. (ii)'s encoder),
``GPUpper`` (iii), ``DiffusionUpper`` (iv) and ``OneSided`` are :class:`UpperBound` s — and :class:`BiB` is
their composition, picked by ``lower`` and ``upper``; it owns only the shared flow (noise, frozen players,
optimizer steps, the χ² bound every pairing reports). The registered pairings are subclasses that change those
two defaults. A new bound is a new subclass entered in ``LOWER_BOUNDS`` / ``UPPER_BOUNDS`` (and in the option's
list of values), not a new branch.

What the reported numbers bound (``evaluate_extra``, keys beside the spine's exact ``nll``; n generator samples,
± one Monte-Carlo standard error of the generator-side average; the data term is the mean energy of the same
test split the exact NLL uses, so it is shared, not an error source). Write ℓ = log(p̃_θ(x)/q(x)) for the
generator's samples, so log Z = log E_q[e^ℓ] and KL(q ‖ p_θ) = log Z − E_q[ℓ]:
- ``nll_lower`` = E_data[E] + mean ℓ̂ with the training estimator's bound: ℓ̂ = −E(x) − log N(z) + log-volume for
  (i), −E(x) + log q_φ(z|x) − log N(z) − log N(x; G(z), σ²I) for (ii) (per-sample −log N(z) and noise terms
  rather than their means: zero spread at p_g = p_θ). The log-volume is the estimator's bound at J's singular
  values in float64: ½ log det JᵀJ (logdet), d·log s_min (smin, lobpcg). LOBPCG's Ritz value is never below
  s_min, so its few-iteration estimate is no bound (``lobpcg_excess`` logs how far above the exact value it is at
  the evaluation's samples; ``jac_mean_log_s`` and ``jac_log10_cond`` the spectrum itself, over the samples
  whose singular values are all positive).
  Valid for (ii) always (any normalised encoder). For (i) Ĥ ≤ H needs an injective G: a G that folds has
  H(p_g) ≤ H(z) + E log|det J| (preimages add up), so the Jacobian value can exceed H and the "bound" the NLL.
  ``fold_frac`` (d = D) is the fraction of samples on the minority side of sign det J (0: no fold was sampled).
- ``nll_upper_chi2`` = E_data[E] + ½ log mean e^{2ℓ}: log Z = log E e^ℓ ≤ ½ log E e^{2ℓ} (Jensen; the χ² or
  CUBO₂ bound). ℓ needs the generator's density: (i) −E − log N(z) + ½ log det JᵀJ, the sum of the logs of J's
  singular values in float64 (not a float32 JᵀJ, whose squared condition number put it 100–180 nats off on a
  3072×128 image Jacobian; on 2D exact either way; with folds this over-counts the density ratio, so the bound
  stays valid), (ii) −E − log p̂_g(x) with the importance-sampled marginal p̂_g(x) = mean_k p(z_k, x)/q_φ(z_k|x),
  z_k ~ q_φ(·|x) (``eval_inner_k`` draws): E p̂_g = p_g, so E[1/p̂_g] ≥ 1/p_g and the bound stays valid. Valid in
  expectation for every pairing;
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
- EBM-BB's toy energy is a PReLU MLP followed by a learned scalar (a bias-free Linear(1, 1), initialised in
  U(−1, 1)); its generator puts BatchNorm after the activation. Both are options here (``e_out_scale``,
  ``g_bn_position=post``), off by default: the plain energy and the usual Linear → BN → activation order.
  Spectral normalisation (``--sn``) and the decaying gp weight 0.7(2307 + step)^−0.55 (``--ada``) exist there
  but are off by default, as here (``e_spectral_norm``; the gp weight is the constant w = 1e-3, thre = 1).
  ``benchmarks/official`` runs both codes side by side with these options switched either way.
- Images (z_dim < data dimension): the (iii) K-term sees the energy only along J v, the tangent directions of the
  generator's d-dimensional surface; the data lie off that surface, so nothing in the bound stops the energy from
  falling at the data and rising at the samples along the normal directions, and it drifts. EBM-BB's own image
  trainer (``train/train_image.py``, its defaults) drifts the same way on the same task (``benchmarks/official``,
  stacked Fashion-MNIST: E(real) to −10⁵ within 200 steps). ``data_gp_weight`` (a zero-centred gradient penalty
  at the data, R1, beyond the paper) keeps the energy bounded there; spectral normalisation does not.
- ``share_jacobian`` (off by default, ``auto`` on images — on where the pairing is (i)+(iii) with LOBPCG —
  since it matched the per-step estimates' quality at equal CPU time with 1.12× their steps,
  ``benchmarks/images/bib_share_jacobian/results.md``): EBM-BB's image trainer
  (``train/train_image.py``, ``compute_gp``) makes one s_min estimate per iteration, at the energy step's latents,
  and uses it twice — its z-gradient in the energy's gp, its graph in the generator's entropy term. Here, by
  default, each step makes its own (the generator's at its own latents), which costs a second LOBPCG per step;
  with ``share_jacobian=true`` the step makes one, as EBM-BB does, and runs the BatchNorm refresh before the
  energy step instead of between the steps (the kept graph must not see the running statistics change). The
  entropy term then sits at other latents than the generator's energy term: both are unbiased for their
  expectations, so the generator's loss is the same bound, estimated from two batches.
- ``entropy_batch`` (0, off, by default; not in EBM-BB): the generator step's Jacobian term at the batch's first k
  latents, its energy term at all of them. The mean log-volume over k draws is unbiased for the same
  expectation, so the loss is the same bound with a noisier entropy estimate; it makes the exact estimators
  (``smin``, ``logdet``: one d-column Jacobian per latent) affordable on a 3072×128 image generator, where the
  LOBPCG estimate that EBM-BB trains with is hundreds of nats above d·log s_min.
- (ii) and (iv) have no public code; their use here follows METHODS.md §3 (our construction). With (ii)+(iii)
  the gp is taken at the clean G(z) (the latent score needs the manifold density) while the contrastive terms
  use the noisy samples. E(x, t) of (iv) is the network output itself, without the usual 1/σ_t output scaling:
  with it E(·, t_min) = f/σ_{t_min} is 1/σ_{t_min} ≈ 95× steeper, the contrastive term (which acts at t_min only)
  swamps the denoising term and the EBM decouples from its scores.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal

import torch
from torch import Tensor, nn

from ...bounds.diffusion import (T_MIN)
from ...bounds.entropy import EntropyBound
from ...bounds.score import zero_centred_gp
from ...errors import EbmlabError
from ...metadata import Metric
from ...nets import build
from ...nets.calls import in_blocks
from ...nets.build import Net
from ...rng import Noise, Tape
from ..base import CompiledPair, LatentGenerator, Method, adam, frozen, in_mode, optimizer_step
from .bounds import LOG_2PI, LOWER_BOUNDS, UPPER_BOUNDS, JacobianLower, MILower, _chi2_log_z, _mean_se
from ...data.base import Dataset

@dataclass(frozen=True)
class BiBConfig:
    lower: Literal["jacobian", "mi"] = "jacobian"
    upper: Literal["gp", "diffusion", "none"] = "gp"
    estimator: Literal["logdet", "smin", "lobpcg"] = "smin"
    lobpcg_iters: int = 2
    entropy_batch: int = 0
    jac_mode: Literal["auto", "prop", "fwd", "rev"] = "auto"
    score_volume: Literal["logdet", "smin", "lobpcg"] = "logdet"
    share_jacobian: bool | Literal["auto"] = False
    z_dim: int = 2
    g_hidden: tuple[int, ...] = (100, 100)
    e_hidden: tuple[int, ...] = (100, 100)
    g_batchnorm: bool = True
    g_bn_position: Literal["pre", "post"] = "pre"
    e_out_scale: bool = False
    e_spectral_norm: bool = False
    entropy_weight: float = 1.0
    gp_weight: float = 1e-3  # (iii) w
    gp_threshold: float = 1.0  # (iii) thre
    onesided_penalty: Literal["zero_gp", "none"] = "zero_gp"
    zero_gp_weight: float = 1e-3
    data_gp_weight: float = 0.0
    sigma: float = 0.01  # (ii) generator noise
    enc_hidden: tuple[int, ...] = (100, 100)
    t_min: float = T_MIN  # (iv)
    t_scheme: Literal["log_snr", "uniform"] = "log_snr"
    time_emb_dim: int = 32
    diffusion_weight: float = 1.0
    lr_g: float = 2e-4
    lr_e: float = 2e-4
    beta1: float = 0.0
    beta2: float = 0.9
    adam_eps: float = 1e-6
    bound_samples: int = 2000
    eval_n_t: int = 16
    eval_inner_k: int = 16
    net: Net = "auto"
    width: int = 32

    # range kind and meaning of each option not in ebmlab.options.SHARED (ebmlab.options explains)
    OPTIONS: ClassVar[dict[str, tuple[str, str]]] = {
        "enc_hidden": ("ints1", "hidden layer widths of the encoder MLP (comma-separated; unused by conv nets)"),
        "g_batchnorm": ("any", "batch normalisation in the generator MLP"),
        "g_bn_position": ("choice", "generator MLP: BatchNorm before the activation (pre) or after it (post)"),
        "e_out_scale": ("any", "a learned scalar factor after the energy MLP (EBM-BB's toy energy)"),
        "e_spectral_norm": ("any", "spectral normalisation of every layer of the energy (MLP or conv)"),
        "time_emb_dim": ("int1", "dimension of the diffusion time embedding"),
        "adam_eps": ("pos", "Adam ε"),
        "lower": ("choice", "lower bound of the entropy: jacobian (i) or mi (ii)"),
        "upper": ("choice", "upper bound of the log-likelihood: gp (iii), diffusion (iv), or none (one-sided)"),
        "estimator": ("choice", "the Jacobian term of bound (i): logdet, smallest singular value, or lobpcg"),
        "lobpcg_iters": ("int1", "LOBPCG iterations of the smallest-singular-value estimate"),
        "entropy_batch": ("int0", "bound (i) in the generator step: the first k of the batch's latents carry the "
                                  "Jacobian term (0: all); unbiased for its mean, it makes the exact estimators "
                                  "affordable on image generators"),
        "jac_mode": ("choice",
                     "exact Jacobians: auto (tangent propagation through MLP generators, else reverse mode when data dim ≤ latent dim, else forward), prop, fwd, or rev"),
        "score_volume": ("choice", "bound (iii): how the latent score's log-volume is computed"),
        "share_jacobian": ("any", "(i)+(iii) with estimator=score_volume=lobpcg: one LOBPCG estimate per step gives the "
                                   "energy's latent score and the generator's entropy term (as EBM-BB's image trainer); "
                                   "auto: where the pairing allows it (the image default), true, or false"),
        "gp_weight": ("nonneg", "bound (iii): weight w of the gradient penalty"),
        "gp_threshold": ("nonneg", "bound (iii): threshold of the gradient penalty"),
        "onesided_penalty": ("choice", "one-sided pairing: zero-centred gradient penalty on the energy, or none"),
        "zero_gp_weight": ("nonneg", "weight of the zero-centred gradient penalty"),
        "data_gp_weight": ("nonneg", "two-sided pairings: weight of a zero-centred gradient penalty at the data added to "
                                     "the energy loss (a stabiliser beyond the paper; the loss is then no longer the bound)"),
        "sigma": ("pos", "bound (ii): standard deviation of the generator's output noise"),
        "t_min": ("open01", "bound (iv): smallest diffusion time"),
        "t_scheme": ("choice", "bound (iv): time sampling, uniform in log-SNR or in t"),
        "diffusion_weight": ("nonneg", "bound (iv): weight (1 keeps the energy loss a bound)"),
        "eval_n_t": ("int1", "Gauss–Legendre nodes of the diffusion bound at evaluation"),
        "eval_inner_k": ("int1", "bound (ii): encoder draws behind each importance-sampled p_g(x) at evaluation"),
        "bound_samples": ("int2", "generator samples behind each reported bound (BiB)"),
    }


# --- the method: one lower bound and one upper bound -----------------------------------------------------------
class BiB(LatentGenerator, Method):
    name = "bib"
    compile_estimate = (2.89, 69.0)  # benchmarks/compile/results.md (1 thread, cold cache)
    progress_keys = ("loss_e", "loss_g", "entropy")  # shown on the progress bar
    Config = BiBConfig
    metrics = {
        "nll_lower": Metric("density", "nats", "", "lower bound of the generator's test NLL", True),
        "nll_upper": Metric("density", "nats", "", "upper bound of the generator's test NLL", True),
        "nll_upper_chi2": Metric("density", "nats", "", "χ² upper bound of the test NLL"),
        "nll_upper_diffusion": Metric("density", "nats", "", "diffusion upper bound of the test NLL"),
        "manifold_nll_lower": Metric("manifold", "nats", "", "lower bound of −log of the generator's density on its "
                                     "d-dimensional image, at test points (z_dim < data dimension)", True),
        "manifold_nll_upper": Metric("manifold", "nats", "", "upper bound of the same manifold quantity", True),
        "manifold_nll_upper_chi2": Metric("manifold", "nats", "", "χ² upper bound of the same manifold quantity"),
        "manifold_nll_upper_diffusion": Metric("manifold", "nats", "", "diffusion upper bound of the same manifold "
                                               "quantity"),
        "score_mismatch": Metric("method", "", "↓", "score mismatch of the gp upper bound"),
        "fold_frac": Metric("method", "%", "", "fraction of generator samples folded into the box"),
        "lobpcg_excess": Metric("method", "nats", "", "mean d·log s_min of the training's LOBPCG estimate above the "
                                "exact one, at the evaluation's samples"),
        "jac_mean_log_s": Metric("method", "", "", "mean log singular value of the generator's Jacobian (log-volume "
                                 "per latent dimension)"),
        "jac_log10_cond": Metric("method", "", "", "mean log10 condition number of the generator's Jacobian"),
    }
    # run directories written before the rename (it shared its name with the run option) still load
    renamed_options = {"eval_samples": "bound_samples"}
    description = ("BiB (i)+(iii) by default: generator maximises a lower bound, energy minimises an upper bound "
                   "(lower=jacobian|mi, upper=gp|diffusion|none)")
    has_energy = True

    def __init__(self, config: BiBConfig, **kw):
        super().__init__(config, **kw)
        spec = self.spec
        c = config
        if c.sigma <= 0 or not 0 < c.t_min < 1:
            raise EbmlabError(f"need sigma > 0 and 0 < t_min < 1, got sigma={c.sigma}, t_min={c.t_min}")
        can_share = c.lower == "jacobian" and c.upper == "gp" and c.estimator == "lobpcg" and c.score_volume == "lobpcg"
        if c.share_jacobian not in (True, False, "auto"):
            raise EbmlabError(f"share_jacobian must be true, false or auto; got {c.share_jacobian!r}")
        # the one switch the step reads: shared where asked, or under auto where the pairing allows it
        self.shared_jacobian = c.share_jacobian is True or (c.share_jacobian == "auto" and can_share)
        if c.share_jacobian is True and not can_share:
            raise EbmlabError(f"share_jacobian=true shares one LOBPCG estimate between the energy's latent score and "
                              f"the generator's entropy: it needs lower=jacobian, upper=gp, estimator=lobpcg and "
                              f"score_volume=lobpcg (got lower={c.lower}, upper={c.upper}, estimator={c.estimator}, "
                              f"score_volume={c.score_volume}); set those or share_jacobian=false")
        if c.entropy_batch and (c.lower != "jacobian" or self.shared_jacobian):
            raise EbmlabError(f"entropy_batch subsamples bound (i)'s Jacobian term in the generator step; it needs "
                              f"lower=jacobian and share_jacobian=false (got lower={c.lower}, share_jacobian="
                              f"{c.share_jacobian}); set those or entropy_batch=0")
        if c.data_gp_weight > 0 and c.upper == "none":
            raise EbmlabError("data_gp_weight adds a data gradient penalty to the two-sided pairings; the one-sided "
                              "pairing has its own (onesided_penalty=zero_gp, weight zero_gp_weight)")
        self.G = build.generator(spec, c.z_dim, hidden=c.g_hidden, act="prelu", batchnorm=c.g_batchnorm,
                                 bn_position=c.g_bn_position, net=c.net, width=c.width).to(self.device)
        # the upper bound builds the energy (its form depends on the bound), then the lower bound its networks
        self.upper = UPPER_BOUNDS[c.upper](self.G, spec, c, self.device)
        self.E = self.upper.E
        self.lower = LOWER_BOUNDS[c.lower](self.G, spec, c, self.device)
        self.networks = {"generator": self.G, "energy": self.E, **self.lower.networks}
        g_params = list(self.G.parameters()) + [p for m in self.lower.networks.values() for p in m.parameters()]
        betas = (c.beta1, c.beta2)
        self.optimizers = {"energy": adam(self.E.parameters(), c.lr_e, betas, c.adam_eps),
                           "generator": adam(g_params, c.lr_g, betas, c.adam_eps)}  # + the lower bound's networks
        self._pair: CompiledPair | None = None  # the compiled step (run option compile)
        self._sides: tuple[nn.Module, nn.Module] | None = None  # the two optimizers' modules

    @property
    def encoder(self) -> nn.Module:
        """(ii)'s encoder q_φ(z|x)."""
        if not isinstance(self.lower, MILower):
            raise EbmlabError(f"lower={self.config.lower} has no encoder; only lower=mi does")
        return self.lower.encoder

    # --- the energy and its time-conditioned form -------------------------------------------------------------
    def energy_t(self, x: Tensor, t: Tensor) -> Tensor:
        return self.upper.energy_t(x, t)

    def energy(self, x: Tensor) -> Tensor:
        return self.upper.energy(x)

    # --- the two losses -----------------------------------------------------------------------------------
    def energy_loss(self, batch: Tensor, z: Tensor | None = None, score: Tensor | None = None,
                    generator: Noise | Tape | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """Upper-bound loss of the energy; G (and the lower bound's networks) are constants here. ``z`` and
        ``score``: the latents and their latent score when the step shares its Jacobian estimate; ``generator``:
        where its draws come from (the method's, or a compiled step's tape)."""
        gen = generator or self.rng
        if z is None:
            z = self.noise(batch.shape[0], self.config.z_dim, gen)
        with frozen(*[m for k, m in self.networks.items() if k != "energy"]), in_mode(False, self.G):
            e_real, e_fake, penalty, extra = self.upper.energy_term(self.lower, batch, z, gen, score=score)
        loss = e_real - e_fake + penalty
        if self.config.data_gp_weight > 0:  # a stabiliser beyond the bound (R1 of Mescheder et al. 2018)
            data_gp = zero_centred_gp(self.energy, batch)
            loss = loss + self.config.data_gp_weight * data_gp
            extra = {**extra, "data_gp": data_gp.detach()}
        return loss, {"loss_e": loss.detach(), "energy_real": e_real.detach(), "energy_fake": e_fake.detach(),
                      "penalty": penalty.detach(), **extra}

    def generator_loss(self, b: int, shared: EntropyBound | None = None,
                       generator: Noise | Tape | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """Negative lower bound (up to the data term) of the generator and its networks; E is a constant here.
        ``shared``: the entropy estimate the energy step made (``share_jacobian``), at its own latents."""
        gen = generator or self.rng
        z = self.noise(b, self.config.z_dim, gen)
        with frozen(self.E), in_mode(False, self.G):
            if shared is None:
                entropy, x_g, extra = self.lower.training_term(z, gen)
            else:
                entropy, x_g = shared.entropy, self.G(z)
                extra = {"valid_frac": shared.valid.float().mean().detach()}
            e_gen = self.energy(x_g).mean()
        loss = e_gen - self.config.entropy_weight * entropy
        return loss, {"loss_g": loss.detach(), "energy_gen": e_gen.detach(), "entropy": entropy.detach(), **extra}

    def train_step(self, batch: Tensor, step: int) -> dict[str, Tensor | float]:
        c, b = self.config, batch.shape[0]
        shared = z = score = None
        if self.shared_jacobian:
            # one LOBPCG estimate at the energy step's latents: its score feeds bound (iii), its entropy (graph
            # kept) the generator step; the BatchNorm refresh comes first, so the kept graph never sees the
            # running statistics change under it
            self._refresh_batchnorm(b)
            z = self.noise(b, c.z_dim)
            assert isinstance(self.lower, JacobianLower)
            with in_mode(False, self.G):
                shared, score = self.lower.entropy_and_score(z, self.rng)
        # --- energy step: minimise the upper bound (or the one-sided loss) on detached generator samples ---
        loss_e, metrics_e = self.energy_loss(batch, z=z, score=score)
        optimizer_step(self.optimizers["energy"], loss_e, self.recipe)
        if not self.shared_jacobian:
            self._refresh_batchnorm(b)
        # --- generator (+ its networks) step: maximise the lower bound −E_pg[E] + Ĥ with G in eval mode ---
        loss_g, metrics_g = self.generator_loss(b, shared=shared)
        optimizer_step(self.optimizers["generator"], loss_g, self.recipe)
        return {**metrics_e, **metrics_g}

    def _refresh_batchnorm(self, b: int, generator: Noise | Tape | None = None) -> None:
        """The generator's BatchNorm statistics: one train-mode forward, no gradient."""
        if self.config.g_batchnorm:
            with torch.no_grad(), in_mode(True, self.G):
                self.G(self.noise(b, self.config.z_dim, generator))

    # --- the compiled step (run option compile, ebmlab.compiled) ------------------------------------------------
    def compile_blocker(self) -> str | None:
        """The compiled step is :meth:`train_step`'s arithmetic as one pure function (``base.pair_core``: the
        energy's update, then the generator's and its lower bound's networks', through :func:`energy_side` and
        :func:`generator_side`, which run the eager losses with the parameters swapped in and every draw from the
        tape; the generator's BatchNorm statistics carried; the energy's input gradients by
        ``bounds.input_grad``; LOBPCG's Jacobian products by ``torch.func``, ``bounds.entropy._FuncLinearisedG``).
        The latent score's LOBPCG volume (score_volume lobpcg, and the step that shares it, ``share_jacobian``) is
        differentiated in z through the iteration and trains eagerly."""
        c = self.config
        if c.score_volume == "lobpcg" or self.shared_jacobian:
            return ("its latent score's LOBPCG volume (score_volume lobpcg, and the shared estimate of "
                    "share_jacobian) is differentiated in z through the iteration by autograd, which torch.func's "
                    "traced gradients refuse; score_volume logdet or smin compiles (estimator lobpcg included)")
        return CompiledPair.blocker(self)

    def compiled_train_step(self, batch: Tensor, step: int, noise: Tape, compile: Callable[..., Any]
                            ) -> dict[str, Tensor | float]:
        """:meth:`train_step` compiled (:meth:`compile_blocker`)."""
        if self._pair is None:
            self._sides = (nn.ModuleDict({"energy": self.E}),
                           nn.ModuleDict({"generator": self.G, **self.lower.networks}))
            self._pair = CompiledPair(self, self._sides[0], "energy", self._sides[1], "generator")
        return dict(self._pair(functools.partial(energy_side, self), functools.partial(generator_side, self),
                               [None, None], compile, batch, noise))

    def features(self, x: Tensor) -> Tensor:
        if self.upper.time_conditioned:
            raise EbmlabError("the time-conditioned energy of the diffusion pairings has no plain feature layer")
        return build.penultimate(self.E, x)

    @torch.no_grad()
    def sample(self, n: int, *, generator: Noise | None = None) -> Tensor:
        gen = generator or self.rng
        with in_mode(False, self.G):
            return self.lower.sample(self.noise(n, self.config.z_dim, gen), gen)

    # --- the reported bounds --------------------------------------------------------------------------------
    def evaluate_extra(self, dataset: Dataset, count: int = 2500) -> dict[str, Any]:
        """Lower and upper bounds on the test NLL in nats, with Monte-Carlo standard errors (module docstring)."""
        c, n = self.config, self.config.bound_samples
        gen = torch.Generator(device=self.device).manual_seed(12345)  # own noise: training RNGs untouched
        out: dict[str, Any] = {}
        with torch.no_grad():
            # forward_rows: 128 images a call on the CPU (26,000 stacked test triples: 14.5 → 8.8 s, same mean)
            e_data = float(in_blocks(self.energy, dataset.test.to(self.device), self.forward_rows or 4096).double().mean())
        z = self.noise(n, c.z_dim, gen)
        log_nz = -0.5 * (z**2).sum(1) - 0.5 * c.z_dim * LOG_2PI
        with in_mode(False, self.G), torch.no_grad():
            x, low, log_w = self.lower.evaluation(self.energy, z, log_nz, gen, out)
        m_low, se_low = _mean_se(low)
        out["nll_lower"], out["nll_lower_se"] = e_data + m_low, se_low
        log_z_chi2, se_chi2 = _chi2_log_z(log_w[torch.isfinite(log_w)])
        out["nll_upper_chi2"], out["nll_upper_chi2_se"] = e_data + log_z_chi2, se_chi2
        out["nll_upper"], out["nll_upper_se"] = out["nll_upper_chi2"], se_chi2
        self.upper.evaluation(x, z, e_data, gen, out)
        if c.z_dim < self.spec.dim:
            # a generator of d < D latent dimensions puts its mass on a d-dimensional surface: its "density" is one
            # with respect to that surface's measure, and the bounds bracket that, not an NLL of the D-dimensional
            # data — they go under their own label, never into an NLL column
            out = {(f"manifold_{k}" if k.startswith("nll_") else k): v for k, v in out.items()}
            out["manifold_note"] = (f"z_dim = {c.z_dim} < data dimension {self.spec.dim}: the bounds are of −log of "
                                    f"the energy model on the generator's {c.z_dim}-dimensional surface (nats w.r.t. "
                                    f"its surface measure), not a likelihood of the {self.spec.dim}-dimensional data")
        return out


# --- registered pairings: BiB with other defaults for the two bounds -------------------------------------------
@dataclass(frozen=True)
class BiBJacDiffConfig(BiBConfig):
    upper: Literal["gp", "diffusion", "none"] = "diffusion"


@dataclass(frozen=True)
class BiBMiGpConfig(BiBConfig):
    lower: Literal["jacobian", "mi"] = "mi"


@dataclass(frozen=True)
class BiBMiDiffConfig(BiBConfig):
    lower: Literal["jacobian", "mi"] = "mi"
    upper: Literal["gp", "diffusion", "none"] = "diffusion"


@dataclass(frozen=True)
class BiBOneSidedConfig(BiBConfig):
    upper: Literal["gp", "diffusion", "none"] = "none"


class BiBJacDiff(BiB):
    name, Config = "bib_jac_diff", BiBJacDiffConfig
    description = "BiB (i)+(iv): Jacobian lower bound, diffusion upper bound"


class BiBMiGp(BiB):
    name, Config = "bib_mi_gp", BiBMiGpConfig
    description = "BiB (ii)+(iii): mutual-information lower bound, gradient-penalty upper bound"


class BiBMiDiff(BiB):
    name, Config = "bib_mi_diff", BiBMiDiffConfig
    description = "BiB (ii)+(iv): mutual-information lower bound, diffusion upper bound"


class BiBOneSided(BiB):
    name, Config = "bib_onesided", BiBOneSidedConfig
    description = "BiB one-sided baseline: Jacobian lower bound only, zero-centred GP"


BIB_METHODS: dict[str, type[Method]] = {m.name: m for m in (BiB, BiBJacDiff, BiBMiGp, BiBMiDiff, BiBOneSided)}


def energy_side(m: BiB, p_e: dict[str, Tensor], p_g: dict[str, Tensor], _: None, batch: Tensor, noise: Tape
                ) -> tuple[Tensor, dict[str, Tensor]]:
    """The energy's loss of :meth:`BiB.train_step` (:meth:`BiB.energy_loss`) at ``p_e``, the generator side at
    ``p_g`` (no gradient), its draws from ``noise``."""
    from torch.nn.utils.stateless import _reparametrize_module

    assert m._sides is not None
    with _reparametrize_module(m._sides[0], p_e), _reparametrize_module(m._sides[1], p_g):
        return m.energy_loss(batch, generator=noise)


def generator_side(m: BiB, p_g: dict[str, Tensor], p_e: dict[str, Tensor], _: None, batch: Tensor, noise: Tape
                   ) -> tuple[Tensor, dict[str, Tensor]]:
    """The generator's BatchNorm refresh and loss of :meth:`BiB.train_step` (:meth:`BiB.generator_loss`) at ``p_g``,
    through the updated energy ``p_e``."""
    from torch.nn.utils.stateless import _reparametrize_module

    assert m._sides is not None
    with _reparametrize_module(m._sides[0], p_e), _reparametrize_module(m._sides[1], p_g):
        m._refresh_batchnorm(batch.shape[0], noise)
        return m.generator_loss(batch.shape[0], generator=noise)
