"""Explicit density estimators: the interface LBT trains through, the VAE that implements it, and their
evaluation against an exact data density.

An estimator is a module plus a training objective written in *functional* form: ``loss(model, x)`` where
``model`` is either the module itself or a :class:`~ebmlab.bounds.unroll.FunctionalModule` view of it at other
parameters. The same function therefore serves an ordinary optimizer step (``model = module``) and LBT's
unrolled look-ahead (``model`` = the module at φ_k(ψ), through ``torch.func.functional_call``), so a flow or a
mixture can replace the VAE later by implementing the same four members.

The VAE (Kingma & Welling 2014, eq. 10 with the analytic KL of Appendix B) is evaluated with the
importance-weighted bound of Burda et al. (2016), L_k, for several k, in float64 and chunked
(``bounds.elbo.iwae_bound``): ELBO ≤ E L_k ≤ E L_2k ≤ log p(x). On 2D data the exact data log-density is known,
so E_data[log p_data(x) − L_k(x)] is reported too: an upper bound on KL(p_data ‖ p_model) in expectation
(L_k under-estimates log p_model), the estimator's counterpart of the exact KL reported for energies.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from ..bounds.discrete import bits_per_dim, dequantisation_offset, dequantise, discretized_gaussian_log_lik
from ..bounds.elbo import ElboTerms, bernoulli_log_lik, elbo, gaussian_log_lik, iwae_bound
from ..errors import EbmlabError
from ..metadata import Metric
from ..nets.vae import GaussianVAE
from ..rng import Noise, rand, randn
from ..data.base import Dataset
from ..data.toy import ToyDataset


METRICS = {  # what estimator_report returns (with the caller's prefix)
    "elbo": Metric("density", "nats", "↑", "test ELBO"),
    "nll_iwae": Metric("density", "nats", "↓", "test NLL by the IWAE bound at the largest K", True),
    "iwae_{k}": Metric("density", "nats", "↑", "IWAE bound L_K at K = {k}"),
    "kl_iwae": Metric("density", "nats", "↓", "KL(data ‖ model) bound: mean log p_data − L_K at the largest K"),
    "bpd_iwae": Metric("density", "bits/dim", "↓", "nll_iwae of 8-bit data in bits per dimension", True),
}


@runtime_checkable
class DensityEstimator(Protocol):
    """An explicit density model p_φ(x) with a (bound on the) log-likelihood as its training objective."""

    @property
    def module(self) -> nn.Module:
        """Every trainable tensor of the estimator (what an unroll differentiates through)."""
        ...

    def loss(self, model: Any, x: Tensor, *, generator: Noise) -> Tensor:
        """Scalar: mean over the batch x [b, D] of an upper bound on −log p_φ(x) in nats per example (−ELBO for a
        VAE, the exact NLL for a flow), evaluated with ``model`` (the module, or a FunctionalModule view)."""
        ...

    def log_density_bounds(self, x: Tensor, *, generator: Noise, ks: tuple[int, ...]) -> dict[str, Tensor]:
        """Evaluation: name -> [b] per-example log-density estimates (nats) of x [b, D], in float64."""
        ...

    def sample(self, n: int, *, generator: Noise) -> Tensor:
        """n samples [n, D] from the estimator (no gradient)."""
        ...


# Test points per IWAE call: a decoder call then holds chunk_size · 10 rows (1000 at the default chunk) whatever the
# number of points. A convolutional decoder in float64 needs ~1 MB per row: 1000 points at once (10⁵ rows) and then
# blocks of 100 (10⁴ rows, ~11 GB) were both ended by the OOM killer. Fixed, so that L_k stays independent of
# chunk_size for a given generator state.
POINTS_PER_CALL = 10


class VAEEstimator:
    """A :class:`GaussianVAE` as a :class:`DensityEstimator`: one-sample ELBO for training, IWAE for evaluation.

    Args:
        module: the VAE.
        sample_mode: "mean" draws z ~ N(0, I) and returns the decoder mean (sigmoid of the logits for a Bernoulli
            decoder); "sample" draws x ~ p(x|z) as well.
        chunk_size: importance samples per decoder call in the IWAE bound (a call holds chunk_size · POINTS_PER_CALL rows).
        elbo_samples: draws per example of the evaluation ELBO (see ``log_density_bounds``).
        eval_dtype: precision of the evaluation; float64 evaluates a float64 copy of the module, so the decoder
            log-likelihoods as well as the log-weights are in double precision.
    """

    def __init__(self, module: GaussianVAE, *, sample_mode: Literal["mean", "sample"] = "mean",
                 chunk_size: int = 100, elbo_samples: int = 100, eval_dtype: torch.dtype = torch.float64):
        if sample_mode not in ("mean", "sample"):
            raise ValueError(f"sample_mode must be 'mean' or 'sample'; got {sample_mode!r}")
        if chunk_size < 1 or elbo_samples < 1:
            raise ValueError(f"chunk_size and elbo_samples must be positive; got {chunk_size} and {elbo_samples}")
        self.module = module
        self.sample_mode = sample_mode
        self.chunk_size = chunk_size
        self.elbo_samples = elbo_samples
        self.eval_dtype = eval_dtype

    # --- training objective (functional) ------------------------------------------------------------------
    def log_lik(self, params: Any, x: Tensor) -> Tensor:
        """log p(x|z) [b] from the decoder output: Bernoulli logits, or (mean, logvar) for the Gaussian decoder."""
        if self.module.decoder_kind == "bernoulli":
            return bernoulli_log_lik(params, self.to_unit(x))
        mean, logvar = params
        if self.module.decoder_kind == "discretised":
            vr, levels = self.module.value_range, self.module.levels
            assert vr is not None and levels is not None  # GaussianVAE builds this decoder for quantised data only
            return discretized_gaussian_log_lik(mean, x, logvar, value_range=vr, levels=levels)
        return gaussian_log_lik(mean, x, logvar)

    def to_unit(self, x: Tensor) -> Tensor:
        """Data in the module's value range (lo, hi) as Bernoulli targets in [0, 1] (unchanged without a range; binary
        data, range (0, 1), map onto themselves exactly): the release of LBT decodes grey levels in [0, 1] with a
        Bernoulli cross-entropy, ebmlab's images lie in (−1, 1)."""
        vr = self.module.value_range
        return x if vr is None else (x - vr[0]) / (vr[1] - vr[0])

    def from_unit(self, p: Tensor) -> Tensor:
        """The inverse of :meth:`to_unit`: a Bernoulli decoder's means and draws in the data's value range."""
        vr = self.module.value_range
        return p if vr is None else vr[0] + (vr[1] - vr[0]) * p

    def elbo(self, model: Any, x: Tensor, *, generator: Noise, samples: int = 1) -> ElboTerms:
        """Reparameterised ELBO [b] (analytic KL) of x [b, D] under ``model``, averaged over ``samples`` draws."""
        return elbo(x, model.encode, model.decode, generator=generator, log_lik=self.log_lik, samples=samples)

    def loss(self, model: Any, x: Tensor, *, generator: Noise) -> Tensor:
        return -self.elbo(model, x, generator=generator).elbo.mean()

    # --- evaluation ---------------------------------------------------------------------------------------
    def log_density_bounds(self, x: Tensor, *, generator: Noise, ks: tuple[int, ...]) -> dict[str, Tensor]:
        """{"elbo": ELBO [b], "iwae_<k>": L_k [b] for each k}, per example, nats, in ``eval_dtype``.

        The ELBO here is the Monte Carlo average over ``elbo_samples`` draws z_s ~ q(z|x) of
        log p(x, z_s) − log q(z_s|x) (= the mean of L_1 over independent draws): the same expectation as the
        analytic-KL form used for training, but with a variance that vanishes when q is the exact posterior, where
        log p(x, z) − log q(z|x) = log p(x) for every z. Each L_k uses its own fresh importance samples (one
        ``iwae_bound`` call per k), so the bounds are independent estimates; the cost is elbo_samples + Σ k
        decoder passes per example.
        """
        if not ks or any(not isinstance(k, int) or k < 1 for k in ks):
            raise ValueError(f"ks must be a non-empty tuple of positive integers; got {ks!r}")
        model = copy.deepcopy(self.module).to(self.eval_dtype)
        model.eval()
        x = x.to(device=next(model.parameters()).device, dtype=self.eval_dtype)
        with torch.no_grad():
            out = {"elbo": self._mc_elbo(model, x, generator)}
            for k in ks:  # blocks of points, so that a decoder call holds at most chunk_size · POINTS_PER_CALL rows
                out[f"iwae_{k}"] = torch.cat([
                    iwae_bound(x[i:i + POINTS_PER_CALL], model.encode, model.decode, k, generator=generator,
                               log_lik=self.log_lik, chunk_size=self.chunk_size, dtype=self.eval_dtype)
                    for i in range(0, x.shape[0], POINTS_PER_CALL)])
        return out

    def _mc_elbo(self, model: Any, x: Tensor, generator: Noise) -> Tensor:
        s, b = self.elbo_samples, x.shape[0]
        per_chunk = max(1, (self.chunk_size * POINTS_PER_CALL) // s)  # rows per call: ≤ chunk_size · POINTS_PER_CALL
        parts = []
        for i in range(0, b, per_chunk):
            xi = x[i:i + per_chunk]
            # L_1 on s stacked copies of the points gives s independent log-weights per point. The posterior is the
            # same for every copy, so the points are encoded once and (μ, log σ²) repeated: s − 1 encoder passes
            # fewer, the same noise and the same numbers as encoding the stacked copies.
            mu, logvar = model.encode(xi)
            reps = (s, *([1] * (mu.dim() - 1)))
            stacked = (mu.repeat(*reps), logvar.repeat(*reps))

            def posterior(_x: Tensor, post: tuple[Tensor, Tensor] = stacked) -> tuple[Tensor, Tensor]:
                return post

            log_w = iwae_bound(xi.repeat(s, *([1] * (x.dim() - 1))), posterior, model.decode, 1,
                               generator=generator, log_lik=self.log_lik, dtype=self.eval_dtype)
            parts.append(log_w.reshape(s, xi.shape[0]).mean(dim=0))
        return torch.cat(parts)

    @torch.no_grad()
    def sample(self, n: int, *, generator: Noise) -> Tensor:
        m = self.module
        ref = next(m.parameters())
        z = randn(n, m.z_dim, generator=generator, device=ref.device, dtype=ref.dtype)
        out = m.decode(z)
        if self.sample_mode == "mean":
            return self.from_unit(torch.sigmoid(out)) if isinstance(out, Tensor) else out[0]
        return self.draw(out, generator)

    def draw(self, out: Any, generator: Noise) -> Tensor:
        """A draw of p(x|z) from the decoder's output ``out`` (Bernoulli logits, or (mean, logvar)): binary values,
        a Gaussian draw, or for the discretised decoder the level whose bin the Gaussian draw falls in."""
        m = self.module
        if isinstance(out, Tensor):  # Bernoulli logits
            p = torch.sigmoid(out)
            return self.from_unit((rand(p.shape, generator=generator, device=p.device, dtype=p.dtype) < p).to(p.dtype))
        mean, logvar = out
        noise = randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        x = mean + torch.exp(0.5 * logvar) * noise
        if m.decoder_kind == "discretised":  # a draw of the discrete model: the level whose bin x falls in
            assert m.value_range is not None and m.levels is not None  # built for quantised data only
            lo, hi = m.value_range
            w = (hi - lo) / (m.levels - 1)
            x = lo + torch.round((x - lo) / w).clamp(0, m.levels - 1) * w
        return x


def check_eval_options(ks: tuple[int, ...], n_points: int, chunk_size: int, elbo_samples: int) -> None:
    """Reject evaluation options that cannot work, with the fix (at construction, not at the end of a run)."""
    if not ks or any(k < 1 for k in ks) or n_points < 1 or chunk_size < 1 or elbo_samples < 1:
        raise EbmlabError(f"iwae_ks must be a non-empty list of positive integers and iwae_points, iwae_chunk, "
                          f"elbo_samples positive integers; got iwae_ks={ks}, iwae_points={n_points}, "
                          f"iwae_chunk={chunk_size}, elbo_samples={elbo_samples}")


def estimator_report(estimator: DensityEstimator, dataset: Dataset, *, ks: tuple[int, ...], n_points: int, seed: int,
                     prefix: str = "", with_modes: bool = True, n_samples: int = 2500,
                     quantised: str | None = None) -> dict[str, Any]:
    """The estimator's own numbers on a 2D data set with an exact log-density (nats, per example).

    On the first ``n_points`` points of the fixed test split: ``elbo`` and ``iwae_<k>`` (means of the bounds);
    for the largest k, ``nll_iwae`` = −mean L_k (an upper bound, in expectation, on the estimator's test NLL; its
    floor is the data entropy reported as the real-data ``nll``) with its standard error ``nll_iwae_se``, and
    ``kl_iwae`` = mean(log p_data(x) − L_k(x)) ≥ KL(p_data ‖ p_model) in expectation (paired per point, so the
    data's own sampling noise cancels). For mixtures and ``with_modes``, the mode metrics (``modes``, ``hq``,
    ``mode_kl``) of ``n_samples`` estimator samples too.
    Every key carries ``prefix``.

    Quantised data (8-bit images, ``dataset.spec.levels``) get likelihoods of the discrete data (bounds.discrete):
    ``quantised="discretised"`` — the estimator's likelihood already is one; ``"dequantised"`` — the test points
    are dequantised with uniform noise and every bound is shifted by D·log w, so that each is a lower bound on
    log P(x) of the 8-bit data in expectation. Either way ``nll_iwae`` is an upper bound on the discrete NLL
    (≥ 0 in expectation) and ``bpd_iwae`` is it in bits per dimension.
    """
    if n_points < 1:
        raise ValueError(f"n_points must be a positive number of test points; got {n_points}")
    x = dataset.test[:n_points].to(torch.float64)
    gen = torch.Generator(device=next(estimator.module.parameters()).device).manual_seed(seed)
    spec = dataset.spec
    shift = 0.0
    if quantised == "dequantised":
        assert spec.value_range is not None and spec.levels is not None  # callers pass it for quantised data only
        x = dequantise(x, spec.value_range, spec.levels, generator=torch.Generator().manual_seed(seed + 1))
        shift = -dequantisation_offset(spec.dim, spec.value_range, spec.levels)  # D·log w (< 0)
    bounds = estimator.log_density_bounds(x, generator=gen, ks=ks)
    out: dict[str, Any] = {f"{prefix}elbo": float(bounds["elbo"].mean()) + shift}
    for k in ks:
        out[f"{prefix}iwae_{k}"] = float(bounds[f"iwae_{k}"].mean()) + shift
    l_k = bounds[f"iwae_{max(ks)}"].cpu() + shift
    out[f"{prefix}nll_iwae"] = -float(l_k.mean())
    if quantised is not None:
        out[f"{prefix}bpd_iwae"] = bits_per_dim(out[f"{prefix}nll_iwae"], spec.dim)
        how = ("a discretised Gaussian decoder: P(x) of the 8-bit values" if quantised == "discretised" else
               f"uniform dequantisation of the test points, bounds shifted by D·log w = {shift:.1f} nats")
        out[f"{prefix}likelihood_note"] = (f"nats per image of the 8-bit data ({how}); nll_iwae is the IWAE bound at "
                                           f"K = {max(ks)} on {len(x)} test images, an upper bound on the NLL")
    out[f"{prefix}nll_iwae_se"] = float(l_k.std() / math.sqrt(len(l_k))) if len(l_k) > 1 else float("nan")
    if isinstance(dataset, ToyDataset):  # data with an exact density
        out[f"{prefix}kl_iwae"] = float((dataset.log_prob(x) - l_k).mean())
    if with_modes and dataset.has_modes:  # scored by the evaluator (metrics ``{prefix}*``)
        out["samples"] = {prefix.rstrip("_"): estimator.sample(n_samples, generator=gen).cpu()}
    return out
