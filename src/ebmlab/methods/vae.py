"""VAE — auto-encoding variational Bayes (Kingma & Welling, ICLR 2014), evaluated by the IWAE bound (Burda,
Grosse & Salakhutdinov, ICLR 2016).

Objective (Kingma & Welling eq. 10, analytic KL of their Appendix B): maximise, per example and in nats,

    ELBO(x) = E_{q(z|x)}[log p(x|z)] − KL(q(z|x) ‖ N(0, I)),     z = μ(x) + σ(x) ⊙ ε,  ε ~ N(0, I),

with one reparameterised sample per example, summed over data and latent dimensions (never averaged over
dimensions: that would reweight the KL). Decoders: Gaussian with a fixed or learned per-dimension variance
(continuous data), Bernoulli (binary data), or discretised Gaussian (8-bit images: the Gaussian's mass on each of
the 256 levels, a probability, so the NLL is ≥ 0). On 8-bit images a Gaussian decoder is trained and evaluated on
uniformly dequantised data and its bounds are shifted to the discrete data (``bounds.discrete``): a learned,
unfloored variance on the grid values themselves makes the density unbounded (a "negative NLL" of 8-bit images).

Training objective (``objective``): ``elbo`` — the ELBO above, averaged over ``train_k`` reparameterised draws
per example (1 by default, as AEVB); ``iwae`` — the importance-weighted bound L_k with k = ``train_k`` ≥ 2 as the
training objective (Burda et al. §3: its reparameterised gradient weights each sample's gradient by its
normalised importance weight; they train with k = 5 and 50). L_k is formed in the model's precision during
training (float64 only at evaluation). An IWAE step costs k decoder passes per example (``budget`` counts them), so
compare the two objectives at equal wall time or network evaluations, not equal steps. ``wake_sleep`` — the
baseline of Kingma & Welling §5 (Fig. 2), wake-sleep (Hinton et al. 1995) on the same encoder and decoder
(``bounds.elbo.wake_sleep``): the decoder ascends log p(x, z) at z ~ q(z|x), the encoder ascends log q(z|x̃) at
fantasies (z, x̃) drawn from the model (x̃ a draw of p(x|z), not its mean), one draw of each per example and one
Adam step over both networks (Hinton et al. alternate the phases; their gradients touch disjoint networks, so one
step takes both at once); two encoder and two decoder passes a step. Its ELBO is evaluated as the VAE's, as
the paper evaluates it (the lower bound of the wake-sleep model with its recognition model).

Evaluation (``evaluate_extra``): the ELBO and the importance-weighted bound L_k (Burda et al.) for each k in
``iwae_ks`` (the standard report uses k = 5000), in float64 and chunked, on the first ``iwae_points`` test points;
ELBO ≤ E L_k ≤ E L_2k ≤ log p(x) (their Theorem 1). On 2D data ``kl_iwae`` = mean(log p_data − L_kmax) bounds
KL(p_data ‖ p_model) from above in expectation, and ``nll_iwae`` = −mean L_kmax is to be read against the
data entropy (the real-data ``nll``).

The evaluation's ELBO is the Monte Carlo mean of ``elbo_samples`` log-weights log p(x, z) − log q(z|x) per point
(same expectation as the analytic-KL training ELBO; exact for the exact posterior). Defaults evaluate k ∈ {1, 10,
100, 1000} on 200 points so that every evaluation during training stays cheap; the standard report is
``iwae_ks=1,10,100,1000,5000`` (and ``iwae_points=10000`` for the whole test split).

Sampling: z ~ N(0, I), then the decoder mean (``sample_mode="mean"``, the usual picture of a VAE's samples) or a
draw from p(x|z) (``"sample"``, a sample of the model's actual density). The VAE has no closed-form energy
(log p(x) is an intractable integral), so ``has_energy`` is False and the exact-density metrics are replaced by
the bounds above.

Deviation: Adam rather than AdaGrad (the AEVB paper), as in every current implementation.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal

import torch
from torch import Tensor

from ..bounds.discrete import dequantise
from ..bounds.elbo import iwae_bound, wake_sleep
from ..errors import EbmlabError
from ..nets.vae import GaussianVAE
from ..metadata import Metric
from ..nets.build import Net
from ..rng import Noise, Tape
from .base import CompiledPair, CompiledSingle, Method, adam, optimizer_step
from .estimators import METRICS as ESTIMATOR_METRICS
from .estimators import VAEEstimator, check_eval_options, estimator_report
from ..data.base import Dataset


@dataclass(frozen=True)
class VAEConfig:
    z_dim: int = 2
    hidden: tuple[int, ...] = (128, 128)
    act: Literal["relu", "leaky_relu", "tanh", "prelu", "elu", "softplus"] = "tanh"
    decoder: Literal["gaussian", "bernoulli", "discretised"] = "gaussian"
    decoder_var: float = 0.01
    learn_decoder_var: bool = True
    sample_mode: Literal["mean", "sample"] = "mean"
    objective: Literal["elbo", "iwae", "wake_sleep"] = "elbo"
    train_k: int = 1
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    iwae_ks: tuple[int, ...] = (1, 10, 100, 1000)
    iwae_points: int = 200
    iwae_chunk: int = 100
    elbo_samples: int = 100
    eval_seed: int = 0
    net: Net = "auto"
    width: int = 32

    # range kind and meaning of each option not in ebmlab.options.SHARED (ebmlab.options explains)
    OPTIONS: ClassVar[dict[str, tuple[str, str]]] = {
        "hidden": ("ints1", "hidden layer widths of the encoder and decoder MLP (comma-separated; unused by conv nets)"),
        "decoder": ("choice", "decoder likelihood: gaussian, bernoulli, or discretised (8-bit images: a Gaussian's mass "
                           "on each level)"),
        "decoder_var": ("pos", "Gaussian decoder variance (initial value when learned)"),
        "learn_decoder_var": ("any", "learn the Gaussian decoder variance"),
        "objective": ("choice", "training objective: elbo (mean over train_k draws), iwae (the bound L_k, k = train_k) "
                                "or wake_sleep (wake-sleep on the same networks, AEVB's baseline)"),
        "train_k": ("int1", "samples z ~ q(z|x) per example in a training step (iwae: k of L_k, at least 2)"),
    }


ACTIVE_THRESHOLD = 1e-2  # Burda et al. 2016, §5.2: a unit is active when Cov_x(E_q[z_u | x]) exceeds it


class VAE(Method):
    name = "vae"
    compile_estimate = (1.13, 52.0)  # benchmarks/compile/results.md (1 thread, cold cache)
    sampling_networks = ("vae",)
    progress_keys = ("elbo", "log_lik", "loss")  # shown on the progress bar
    Config = VAEConfig
    metrics = {**ESTIMATOR_METRICS,
               "active_units": Metric("method", "", "↑", "active latent units: Var_x(E_q[z_u | x]) > 0.01 over the test "
                                                        "split (Burda et al. 2016, §5.2)")}
    description = "VAE (Gaussian encoder, Gaussian/Bernoulli decoder), evaluated by the IWAE bound L_k"

    def __init__(self, config: VAEConfig, **kw):
        super().__init__(config, **kw)
        self._single: CompiledSingle | None = None  # the compiled step (run option compile)
        c = config
        if c.decoder_var <= 0:
            raise EbmlabError(f"decoder_var must be a positive variance; got {c.decoder_var}")
        if c.objective == "iwae" and c.train_k < 2:
            raise EbmlabError(f"objective=iwae trains on the bound L_k and needs train_k ≥ 2 (the IWAE paper uses 5 "
                              f"and 50); got train_k={c.train_k}, with which L_1 is the ELBO — use objective=elbo")
        if c.objective == "wake_sleep" and c.train_k != 1:
            raise EbmlabError(f"objective=wake_sleep draws one z per example in each phase; got train_k={c.train_k} "
                              f"— leave train_k at 1")
        if c.decoder == "bernoulli" and self.spec.levels is not None:
            raise EbmlabError("decoder=bernoulli is the likelihood of binary data; these are 8-bit images, whose "
                              "cross-entropy under it is no likelihood of theirs — use decoder=discretised (or "
                              "gaussian), or binarised data")
        check_eval_options(c.iwae_ks, c.iwae_points, c.iwae_chunk, c.elbo_samples)
        self.vae = GaussianVAE(self.spec, c.z_dim, c.hidden, act=c.act, decoder=c.decoder, decoder_var=c.decoder_var,
                               learn_decoder_var=c.learn_decoder_var, net=c.net, width=c.width).to(self.device)
        self.estimator = VAEEstimator(self.vae, sample_mode=c.sample_mode, chunk_size=c.iwae_chunk,
                                       elbo_samples=c.elbo_samples)
        self.networks = {"vae": self.vae}
        # quantised data (8-bit images): a continuous decoder is trained and evaluated on dequantised data, so that
        # its density cannot collapse onto the grid and its NLL bounds the discrete one (bounds.discrete)
        self.quantised = None if self.spec.levels is None or c.decoder == "bernoulli" else \
            ("discretised" if c.decoder == "discretised" else "dequantised")
        self.optimizers = {"vae": adam(self.vae.parameters(), c.lr, (c.beta1, c.beta2))}

    def _dequantise(self, batch: Tensor, noise: Noise) -> Tensor:
        """The batch dequantised (``quantised == "dequantised"``: 8-bit data, whose range and levels are known)."""
        assert self.spec.value_range is not None and self.spec.levels is not None
        return dequantise(batch, self.spec.value_range, self.spec.levels, generator=noise)

    def train_step(self, batch: Tensor, step: int) -> dict[str, Tensor | float]:
        # --- one ascent step on the objective (vae_loss: the ELBO, L_k or the two wake-sleep phases) ---
        if self.quantised == "dequantised":
            batch = self._dequantise(batch, self.rng)
        loss, out = vae_loss(self, batch, self.rng)
        optimizer_step(self.optimizers["vae"], loss, self.recipe)
        return dict(out)

    # --- the compiled step (run option compile, ebmlab.compiled) ------------------------------------------------
    def compile_blocker(self) -> str | None:
        """The compiled step (``base.CompiledSingle``) runs :func:`vae_loss` — the eager step's ELBO or L_k — with
        the VAE's parameters traced, its gradient and Adam update in one function."""
        return CompiledPair.blocker(self)

    def compiled_train_step(self, batch: Tensor, step: int, noise: Tape, compile: Callable[..., Any]
                            ) -> dict[str, Tensor | float]:
        if self.quantised == "dequantised":
            batch = self._dequantise(batch, noise)
        if self._single is None:
            self._single = CompiledSingle(self, self.vae, "vae")
        return dict(self._single(functools.partial(vae_loss, self), compile, batch, noise))

    def log_likelihood_bounds(self, x: Tensor, *, generator: Noise) -> dict[str, Tensor]:
        """Per-example ELBO and L_k for each configured k, [b] each, float64 nats (the evaluation's own path)."""
        return self.estimator.log_density_bounds(x, generator=generator, ks=self.config.iwae_ks)

    def evaluate_extra(self, dataset: Dataset, count: int = 2500) -> dict[str, Any]:
        c = self.config
        out = estimator_report(self.estimator, dataset, ks=c.iwae_ks, n_points=c.iwae_points, seed=c.eval_seed,
                               with_modes=False, quantised=self.quantised)
        out["active_units"] = self.active_units(dataset.test)
        return out

    @torch.no_grad()
    def active_units(self, x: Tensor, threshold: float = ACTIVE_THRESHOLD, chunk: int = 1000) -> int:
        """Latent units u with Var_x(μ_u(x)) > ``threshold`` over the examples ``x`` (μ the posterior mean): the
        IWAE paper's count of the units a model uses (§5.2, threshold 10⁻²), in float64."""
        self.vae.train(False)
        dtype = next(self.vae.parameters()).dtype  # a float64 copy of the model encodes in float64
        try:
            mu = torch.cat([self.features(x[i:i + chunk].to(self.device, dtype)).double().cpu()
                            for i in range(0, len(x), chunk)])
        finally:
            self.vae.train(True)
        return int((mu.var(0, correction=0) > threshold).sum())

    def features(self, x: Tensor) -> Tensor:
        """The encoder's posterior mean μ(x) [b, z_dim]."""
        return self.vae.encode(x)[0]

    @torch.no_grad()
    def sample(self, n: int, *, generator: Noise | None = None) -> Tensor:
        return self.estimator.sample(n, generator=generator or self.rng)


def vae_loss(m: VAE, batch: Tensor, noise: Noise) -> tuple[Tensor, dict[str, Tensor]]:
    """The loss of :meth:`VAE.train_step` (−ELBO, −L_k for objective=iwae, −(wake + sleep)) and its metrics, from
    ``noise``: run by the compiled step with the VAE's parameters swapped for the traced ones."""
    c = m.config
    if c.objective == "wake_sleep":
        t = wake_sleep(batch, m.vae.encode, m.vae.decode, generator=noise, log_lik=m.estimator.log_lik,
                       draw=m.estimator.draw)
        loss = -(t.wake.mean() + t.sleep.mean())
        return loss, {"loss": loss.detach(), "wake": t.wake.mean().detach(), "sleep": t.sleep.mean().detach()}
    if c.objective == "iwae":
        bound = iwae_bound(batch, m.vae.encode, m.vae.decode, c.train_k, generator=noise, log_lik=m.estimator.log_lik,
                           chunk_size=c.train_k, dtype=batch.dtype, grad=True)
        loss = -bound.mean()
        return loss, {"loss": loss.detach(), f"iwae_{c.train_k}": bound.mean().detach()}
    terms = m.estimator.elbo(m.vae, batch, generator=noise, samples=c.train_k)
    loss = -terms.elbo.mean()
    return loss, {"loss": loss.detach(), "elbo": terms.elbo.mean().detach(), "log_lik": terms.log_lik.mean().detach(),
                  "kl": terms.kl.mean().detach()}
