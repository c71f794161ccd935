"""BiHM — Bidirectional Helmholtz Machines (Bornschein, Shabanian, Fischer & Bengio, ICML 2016; code
jbornschein/bihm), and its baseline RWS — Reweighted Wake-Sleep (Bornschein & Bengio, ICLR 2015).

Both train a top-down sigmoid belief net p(x, h) and a bottom-up q(h | x) (``nets/sbn.py``) on binary data from K
samples h_k ~ q(h | x) per example. BiHM's model is not p but

    p*(x) = p̃*(x)² / Z²,    p̃*(x) = Σ_h √(p(x, h) q(h | x)),    Z² = Σ_x p̃*(x)² ≤ 1,

and it ascends 2 log p̃*(x) (a lower bound on log p*(x)): p gets Σ_k ω̃_k ∇ log p(x, h_k) and q gets
Σ_k (ω̃_k − 1/K) ∇ log q(h_k | x), ω̃ = softmax_k(½ log p(x, h_k)/q(h_k | x)) (paper §2, ``bounds/helmholtz.py``). RWS
models p itself and uses the ordinary weights softmax_k(log p/q) for both.

Evaluation (``evaluate_extra``) on the first ``eval_points`` test points, for every K of ``eval_ks``: the IS estimate
of log p(x), 2 log p̃*(x), log p*(x) = 2 log p̃* − log Z² (BiHM only; Z² from ``z2_samples`` outer × ``z2_inner``
inner draws, with its standard error) and the effective sample sizes of the weights of p and of p* as fractions of
K. The K-sample estimates use nested prefixes of one draw of max(eval_ks) samples per point, so the convergence in K
is read off one set of samples. All are per-example nats of the {0, 1} data; each is a stochastic lower bound (in
expectation) of the quantity it estimates, approaching it as K grows.

Sampling (``sample_mode``): ``sir`` — importance resampling from p* (the original ``sample``): draw
``sir_oversample``·n pairs (x, h) ~ p, weight each by p̃*(x)·√(q(h|x)/p(x, h)) (p̃* estimated with ``sir_inner``
samples), resample n; ``gibbs`` — Metropolis-within-Gibbs over layers on the extended target
π(x, h, h') ∝ √(p(x, h) q(h|x) p(x, h') q(h'|x)), whose x-marginal is exactly p*(x); each layer of each copy (and x)
is proposed from p's top-down conditional given the layer above and accepted by the Metropolis–Hastings ratio
(``gibbs_sweeps`` sweeps from an ancestral start); ``p`` — ancestral samples of the top-down model (RWS's model).
Samples are binary; ``sample_mean=True`` returns E[x | h_1] instead, the usual picture.

Deviations: RWS's q update is the wake phase alone by default (``q_update="wake"``, the importance-weighted q update
of the RWS paper); the RWS class of the BiHM code mixes half wake and half sleep (``q_update="wake_sleep"``, each
weighted ½ as there). Log-probabilities come from logits, not clipped probabilities (``nets/sbn.py``). The block
Gibbs sampler is our construction (the paper samples by resampling and inpaints with Gibbs-like chains; its exact
transition operator was not in the released code).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal

import torch
from torch import Tensor

from ..bounds.helmholtz import (bihm_surrogate, ess_fraction, log_mean_exp, log_mean_with_se, log_p_is, log_z2_terms,
                                rws_surrogate, two_log_p_tilde, two_log_p_tilde_from_log_w)
from ..errors import EbmlabError
from ..metadata import Metric
from ..nets.sbn import HelmholtzPair
from .base import CompiledPair, CompiledSingle, Method, adam, optimizer_step
from ..rng import Noise, rand, Tape
from ..data.base import Dataset


@dataclass(frozen=True)
class HelmholtzConfig:
    layers: tuple[int, ...] = (200, 100, 50)
    n_samples: int = 10
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    q_update: Literal["wake", "wake_sleep"] = "wake"  # RWS only (module docstring)
    eval_ks: tuple[int, ...] = (1, 10, 100, 1000, 10000)
    eval_points: int = 100
    z2_samples: int = 10000
    z2_inner: int = 10
    eval_chunk: int = 20000
    eval_seed: int = 0
    sample_mode: Literal["sir", "gibbs", "p"] = "sir"
    sir_oversample: int = 20
    sir_inner: int = 10
    gibbs_sweeps: int = 50
    sample_mean: bool = False

    # range kind and meaning of each option not in ebmlab.options.SHARED (ebmlab.options explains)
    OPTIONS: ClassVar[dict[str, tuple[str, str]]] = {
        "layers": ("ints1+", "hidden layer sizes of the Helmholtz machine, bottom-up (the visible layer is the data's)"),
        "n_samples": ("int1", "samples K of h ~ q(h|x) per example in training"),
        "q_update": ("choice", "RWS only: the q update, wake phase or half wake half sleep"),
        "eval_ks": ("ints1+", "sample counts K of the evaluation table"),
        "eval_points": ("int1", "test points behind the evaluation table"),
        "z2_samples": ("int1", "outer draws (x, h) ~ p of the Z² estimator"),
        "z2_inner": ("int1", "inner draws per outer draw of the Z² estimator"),
        "eval_chunk": ("int1", "rows per forward pass in evaluation"),
        "sir_oversample": ("int1", "sir: proposals per returned sample"),
        "sir_inner": ("int1", "sir: draws of q behind each proposal's weight"),
        "gibbs_sweeps": ("int1", "gibbs: sweeps over the layers per sample"),
        "sample_mean": ("any", "return Bernoulli means instead of binary samples"),
    }


class HelmholtzMethod(Method):
    """Abstract: the networks, evaluation and sampling of a Helmholtz machine; subclasses write ``train_step``."""

    sampling_networks = ("pair",)
    can_inpaint = True
    Config = HelmholtzConfig
    metrics = {
        "nll_is": Metric("density", "nats", "↓", "test NLL by importance sampling", True),
        "nll_pstar": Metric("density", "nats", "↓", "test NLL of p*", True),
        "log_z2": Metric("density", "nats", "", "log Z² of p*"),
        "log_z2_bias": Metric("density", "nats", "", "expected shortfall of the log Z² estimate (−se²/2, delta method)"),
        "d_b": Metric("method", "nats", "↓", "Bhattacharyya distance D_B(p(h|x), q(h|x)), test mean (½(log p − 2 log p̃*))"),
        # how fast each estimate converges (BiHM §4): its shortfall at K samples from its own value at the largest K
        # of eval_ks, the K samples being the first K of the same draws; test mean. The largest-K value is itself
        # short of the limit, by more for the slower estimate, so a shortfall understates that estimate's gap.
        "k{k}_shortfall_p": Metric("method", "nats", "↓", "how far the importance-sampling estimate of log p at "
                                   "K = {k} falls below its value at the largest K of eval_ks (same draws)"),
        "k{k}_shortfall_pstar": Metric("method", "nats", "↓", "BiHM: how far the estimate of log p* (2 log p̃*) at "
                                       "K = {k} falls below its value at the largest K of eval_ks (same draws)"),
    }
    bookkeeping = frozenset({"eval_k", "eval_points"})
    data_kinds = ("binary",)
    data_hint = ("Use a binarised set (digits_bin, fashion_bin, binarized_mnist, a *_dynbin set) or a user's .npz of "
                 "0/1 values")
    models_p_star = False  # True: the model is p*(x) ∝ p̃*(x)² (BiHM), else p(x) (RWS)

    def __init__(self, config: HelmholtzConfig, **kw):
        super().__init__(config, **kw)
        c = config
        for name in ("n_samples", "eval_points", "z2_samples", "z2_inner", "eval_chunk", "sir_oversample",
                     "sir_inner"):
            if getattr(c, name) < 1:
                raise EbmlabError(f"{name} must be ≥ 1; got {getattr(c, name)}")
        if c.gibbs_sweeps < 0 or not c.eval_ks or min(c.eval_ks) < 1:
            raise EbmlabError(f"gibbs_sweeps must be ≥ 0 and eval_ks a non-empty list of K ≥ 1; got "
                              f"{c.gibbs_sweeps} and {list(c.eval_ks)}")
        self.pair = HelmholtzPair((self.spec.dim, *c.layers)).to(self.device)
        self.networks = {"pair": self.pair}
        self.optimizers = {"pair": adam(self.pair.parameters(), c.lr, (c.beta1, c.beta2))}
        self._single: CompiledSingle | None = None  # the compiled step (run option compile)

    # --- shared pieces of a step -----------------------------------------------------------------------
    # --- the compiled step (run option compile, ebmlab.compiled) ------------------------------------------------
    def compile_blocker(self) -> str | None:
        """The compiled step (``base.CompiledSingle``) runs the method's loss (:func:`bihm_loss`, :func:`rws_loss`)
        with the pair's parameters traced, its gradient and Adam update in one function."""
        return CompiledPair.blocker(self)

    def compiled_train_step(self, batch: Tensor, step: int, noise: Tape, compile: Callable[..., Any]
                            ) -> dict[str, Tensor | float]:
        if self._single is None:
            self._single = CompiledSingle(self, self.pair, "pair")
        loss = bihm_loss if self.name == "bihm" else rws_loss
        return dict(self._single(functools.partial(loss, self), compile, batch, noise))

    def _log_pq(self, x: Tensor, k: int, generator: Noise | None = None) -> tuple[Tensor, Tensor]:
        """log p(x, h_k), log q(h_k | x) for K samples h_k ~ q(h|x) per example: [b, K] each."""
        b = x.shape[0]
        state, log_q = self.pair.sample_q(x.reshape(b, -1).repeat_interleave(k, 0), generator or self.rng)
        return self.pair.log_p(state).view(b, k), log_q.view(b, k)

    # --- evaluation -------------------------------------------------------------------------------------
    @torch.no_grad()
    def log_z2(self, *, generator: Noise) -> tuple[float, float]:
        """(log Z², its standard error) from ``z2_samples`` outer draws (BiHM's normaliser; 0 exactly for p)."""
        c = self.config
        per = max(1, c.eval_chunk // c.z2_inner)
        terms = [log_z2_terms(self.pair, min(per, c.z2_samples - i), c.z2_inner, generator)
                 for i in range(0, c.z2_samples, per)]
        return log_mean_with_se(torch.cat(terms))

    @torch.no_grad()
    def estimates(self, x: Tensor, ks: tuple[int, ...], *, generator: Noise) -> dict[str, Tensor]:
        """Per-example K-sample estimates for each K of ``ks`` (nested prefixes of one draw of max K samples):
        ``log_p_<K>``, ``two_log_pt_<K>``, ``ess_p_<K>``, ``ess_pstar_<K>`` → [b] float64 tensors."""
        kmax, b = max(ks), x.shape[0]
        rows = max(1, self.config.eval_chunk)
        log_w = torch.empty(b, kmax, dtype=torch.float64)
        flat = x.reshape(b, -1).to(self.device, next(self.pair.parameters()).dtype)
        for i in range(b):
            parts = []
            for j in range(0, kmax, rows):
                lp, lq = self._log_pq(flat[i:i + 1], min(rows, kmax - j), generator)
                parts.append((lp - lq).double().cpu())
            log_w[i] = torch.cat(parts, 1)[0]
        out = {}
        for k in sorted(ks):
            lw = log_w[:, :k]
            out[f"log_p_{k}"] = log_mean_exp(lw)
            out[f"two_log_pt_{k}"] = two_log_p_tilde_from_log_w(lw)
            out[f"ess_p_{k}"] = ess_fraction(lw)
            out[f"ess_pstar_{k}"] = ess_fraction(0.5 * lw)
        return out

    def evaluate_extra(self, dataset: Dataset, count: int = 2500) -> dict[str, Any]:
        """The K-table (means over the first ``eval_points`` test points) and the headline numbers at max K."""
        c = self.config
        gen = torch.Generator(device=self.device).manual_seed(c.eval_seed)
        x = dataset.test[:c.eval_points]
        est = self.estimates(x, c.eval_ks, generator=gen)
        out: dict[str, Any] = {}
        log_z2, log_z2_se = self.log_z2(generator=gen) if self.models_p_star else (0.0, 0.0)
        if self.models_p_star:
            out.update(log_z2=log_z2, log_z2_se=log_z2_se)
        top = max(c.eval_ks)
        for k in sorted(c.eval_ks):
            out[f"k{k}_log_p"] = float(est[f"log_p_{k}"].mean())
            out[f"k{k}_shortfall_p"] = float((est[f"log_p_{top}"] - est[f"log_p_{k}"]).mean())
            if self.models_p_star:
                # log Ẑ² is one number for every K: the shortfall of log p* is that of 2 log p̃*
                out[f"k{k}_shortfall_pstar"] = float((est[f"two_log_pt_{top}"] - est[f"two_log_pt_{k}"]).mean())
                out[f"k{k}_two_log_pt"] = float(est[f"two_log_pt_{k}"].mean())
                out[f"k{k}_log_pstar"] = out[f"k{k}_two_log_pt"] - log_z2
                out[f"k{k}_ess_pstar"] = float(est[f"ess_pstar_{k}"].mean())
            out[f"k{k}_ess_p"] = float(est[f"ess_p_{k}"].mean())
            # D_B(p(h|x), q(h|x)) of the pair, for RWS too (what BiHM's objective penalises and RWS's does not)
            out[f"k{k}_d_b"] = 0.5 * (out[f"k{k}_log_p"] - float(est[f"two_log_pt_{k}"].mean()))
        k = top
        n = len(x)
        se = lambda t: float(t.std() / n ** 0.5) if n > 1 else float("nan")  # noqa: E731
        # 2 log p̃*(x) = log p(x) − 2 D_B(p(h|x), q(h|x)) (paper eq. 5): D_B from the two K-sample estimates; both
        # are stochastic lower bounds at finite K and log p's converges more slowly, so D_B is biased low
        d_b = 0.5 * (est[f"log_p_{k}"] - est[f"two_log_pt_{k}"])
        out["d_b"], out["d_b_se"] = float(d_b.mean()), se(d_b)
        out["nll_is"] = -out[f"k{k}_log_p"]
        out["nll_is_se"] = se(est[f"log_p_{k}"])
        if self.models_p_star:
            out["nll_pstar"] = -out[f"k{k}_log_pstar"]
            # test-point spread and Z²'s own error, independent, added in quadrature
            out["nll_pstar_se"] = (se(est[f"two_log_pt_{k}"]) ** 2 + log_z2_se ** 2) ** 0.5
            # Ẑ² is unbiased, so log Ẑ² falls short of log Z² by ≈ Var(Ẑ²)/(2 Z⁴) = se²/2 (delta method): that
            # pushes log p* up and nll_pstar down (optimistic); 2 log p̃* is a Jensen lower bound at every K (the
            # K-table shows it rising), which pushes the other way and vanishes as K grows
            out["log_z2_bias"] = -0.5 * log_z2_se ** 2
            out["pstar_note"] = (f"log p* = 2 log p̃* − log Ẑ²: 2 log p̃* at K = {k} is a lower bound that rises with K "
                                 f"(K-table); log Ẑ² from {c.z2_samples}×{c.z2_inner} draws is biased low by about "
                                 f"{0.5 * log_z2_se ** 2:.3g} nats (delta method), which makes nll_pstar optimistic "
                                 f"by up to that much")
        out["eval_k"] = k
        out["eval_points"] = n
        return out

    # --- sampling ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def _sir(self, n: int, gen: torch.Generator) -> list[Tensor]:
        c = self.config
        m = n * c.sir_oversample
        state, lp = self.pair.sample_p(m, gen)
        lq = self.pair.log_q(state)
        inner, inner_lq = self.pair.sample_q(state[0].repeat_interleave(c.sir_inner, 0), gen)
        two_lpt = two_log_p_tilde(self.pair.log_p(inner).view(m, -1), inner_lq.view(m, -1))
        log_w = 0.5 * two_lpt + 0.5 * (lq - lp)  # p̃*(x)·√(q/p): target p̃*(x)√(p q)/Z², proposal p(x, h)
        idx = torch.multinomial(torch.softmax(log_w.double(), 0), n, replacement=True, generator=gen)
        return [s[idx.to(s.device)] for s in state]

    def _log_target(self, x: Tensor, ha: list[Tensor], hb: list[Tensor]) -> Tensor:
        if not self.models_p_star:  # RWS: the model is p itself, one chain (x, h)
            return self.pair.log_p([x, *ha])
        sa, sb = [x, *ha], [x, *hb]
        return 0.5 * (self.pair.log_p(sa) + self.pair.log_q(sa) + self.pair.log_p(sb) + self.pair.log_q(sb))

    @torch.no_grad()
    def _gibbs(self, n: int, gen: torch.Generator, x_obs: Tensor | None = None,
               missing: Tensor | None = None, sweeps: int | None = None) -> tuple[list[Tensor], float]:
        """Metropolis-within-Gibbs on π(x, h, h') (module docstring); returns the a-copy state and the mean
        acceptance rate. With ``x_obs`` [n, D] and ``missing`` [n, D] (True where a value is to be drawn), the
        observed values stay clamped and the chain's x-marginal is p*(x_missing | x_observed) (RWS: p's own
        conditional, on the single chain (x, h) with target p(x, h))."""
        pair = self.pair
        start, _ = pair.sample_p(n, gen)
        x, ha = start[0], start[1:]
        if x_obs is not None and missing is not None:
            x = torch.where(missing, x, x_obs)
            ha = pair.sample_q(x, gen)[0][1:]
        hb = pair.sample_q(x, gen)[0][1:]
        cur = self._log_target(x, ha, hb)
        acc, tries = 0.0, 0

        def mh(prop_logr, cur_logr, new_target):
            nonlocal cur, acc, tries
            log_alpha = new_target - cur + cur_logr - prop_logr
            ok = rand(n, generator=gen, device=x.device).log() < log_alpha
            cur = torch.where(ok, new_target, cur)
            acc += float(ok.float().mean())
            tries += 1
            return ok

        for _ in range(self.config.gibbs_sweeps if sweeps is None else sweeps):
            for h in ((ha, hb) if self.models_p_star else (ha,)):
                for l in reversed(range(pair.n_layers)):  # h[l] is hidden layer l + 1
                    if l == pair.n_layers - 1:
                        prop = pair.p_top.sample(n, gen)
                        lr_new, lr_old = pair.p_top.log_prob(prop), pair.p_top.log_prob(h[l])
                    else:
                        layer = pair.p_layer(l + 1)
                        prop = layer.sample(h[l + 1], gen)
                        lr_new, lr_old = layer.log_prob(prop, h[l + 1]), layer.log_prob(h[l], h[l + 1])
                    new_h = [*h[:l], prop, *h[l + 1:]]
                    tgt = self._log_target(x, new_h, hb) if h is ha else self._log_target(x, ha, new_h)
                    ok = mh(lr_new, lr_old, tgt)
                    h[l] = torch.where(ok[:, None], prop, h[l])
            prop = pair.p_layer(0).sample(ha[0], gen)
            if missing is not None:  # the observed values' proposal terms are equal in both directions and cancel
                prop = torch.where(missing, prop, x)
            p0 = pair.p_layer(0)
            ok = mh(p0.log_prob(prop, ha[0]), p0.log_prob(x, ha[0]), self._log_target(prop, ha, hb))
            x = torch.where(ok[:, None], prop, x)
        return [x, *ha], acc / max(tries, 1)

    @torch.no_grad()
    def inpaint(self, x_obs: Tensor, missing: Tensor, *, generator: torch.Generator,
                sweeps: int | None = None) -> tuple[Tensor, float]:
        """One draw of x_missing ~ p*(x_missing | x_observed) per row (RWS: p's conditional) by the block Gibbs
        chain with the observed values clamped (``gibbs_sweeps`` sweeps unless ``sweeps``); returns the completed
        binary x [n, *shape] (or E[x | h_1] on the missing values with ``sample_mean``) and the acceptance rate."""
        n = x_obs.shape[0]
        flat = x_obs.reshape(n, -1).to(self.device, next(self.pair.parameters()).dtype)
        miss = missing.reshape(n, -1).to(self.device, torch.bool)
        if flat.shape[1] != self.spec.dim or miss.shape != flat.shape:
            raise EbmlabError(f"inpaint needs x and a mask of {self.spec.dim} values per row, as the data; got "
                              f"{tuple(x_obs.shape)} and {tuple(missing.shape)}")
        state, acc = self._gibbs(n, generator, flat, miss, sweeps)
        x = state[0]
        if self.config.sample_mean:
            x = torch.where(miss, self.pair.mean_x(state[1]), x)
        return x.reshape(n, *self.spec.shape), acc

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        gen = generator or self.rng
        c = self.config
        if c.sample_mode == "sir" and self.models_p_star:
            state = self._sir(n, gen)
        elif c.sample_mode == "gibbs" and self.models_p_star:
            state, _ = self._gibbs(n, gen)
        else:  # "p", and RWS's model p itself
            state, _ = self.pair.sample_p(n, gen)
        x = self.pair.mean_x(state[1]) if c.sample_mean else state[0]
        return x.reshape(n, *self.spec.shape)


@dataclass(frozen=True)
class BiHMConfig(HelmholtzConfig):
    OPTIONS: ClassVar[dict[str, tuple[str, str]]] = {
        "sample_mode": ("choice", "sampling from p*: importance resampling (sir), block Gibbs, or p itself"),
    }


@dataclass(frozen=True)
class RWSConfig(HelmholtzConfig):
    OPTIONS: ClassVar[dict[str, tuple[str, str]]] = {
        "sample_mode": ("choice", "sampling: importance resampling (sir), block Gibbs, or p itself"),
    }


class BiHM(HelmholtzMethod):
    name = "bihm"
    compile_estimate = (2.05, 74.0)  # benchmarks/compile/results.md (digits_bin, 1 thread, cold cache)
    Config = BiHMConfig
    progress_keys = ("two_log_pt", "log_p_is", "ess_pstar")  # shown on the progress bar
    description = "BiHM (binary data): sigmoid belief nets p and q, model p* ∝ (Σ_h √(p q))², Z² estimate"
    models_p_star = True

    def train_step(self, batch: Tensor, step: int) -> dict[str, Tensor | float]:
        # --- one update of p and q from K samples h ~ q(h|x) with square-root importance weights ---
        loss, metrics = bihm_loss(self, batch, self.rng)
        optimizer_step(self.optimizers["pair"], loss, self.recipe)
        return dict(metrics)


class RWS(HelmholtzMethod):
    name = "rws"
    compile_estimate = (1.99, 63.0)  # benchmarks/compile/results.md (digits_bin, 1 thread, cold cache)
    Config = RWSConfig
    progress_keys = ("log_p_is",)  # shown on the progress bar
    description = "RWS (binary data): sigmoid belief nets p and q, importance-weighted wake updates of both"

    def train_step(self, batch: Tensor, step: int) -> dict[str, Tensor | float]:
        # --- wake phase (and, with q_update=wake_sleep, the sleep phase): rws_loss ---
        loss, metrics = rws_loss(self, batch, self.rng)
        optimizer_step(self.optimizers["pair"], loss, self.recipe)
        return dict(metrics)


def bihm_loss(m: HelmholtzMethod, batch: Tensor, generator: Any) -> tuple[Tensor, dict[str, Tensor]]:
    """BiHM's surrogate loss of one step (K samples h ~ q(h|x), square-root importance weights) and its metrics;
    ``generator``: the method's generator, or the compiled step's tape."""
    log_p, log_q = m._log_pq(batch, m.config.n_samples, generator)
    loss = bihm_surrogate(log_p, log_q)
    lp, lq = log_p.detach(), log_q.detach()
    tlp, lpi = two_log_p_tilde(lp, lq).mean(), log_p_is(lp, lq).mean()
    return loss, {"two_log_pt": tlp, "log_p_is": lpi, "d_b": 0.5 * (lpi - tlp),
                  "ess_pstar": ess_fraction(0.5 * (lp - lq)).mean()}


def rws_loss(m: HelmholtzMethod, batch: Tensor, generator: Any) -> tuple[Tensor, dict[str, Tensor]]:
    """RWS's loss of one step — the wake phase of p and q with ordinary importance weights; with
    q_update=wake_sleep, q's wake and sleep terms weighted ½ each, as the original — and its metrics."""
    log_p, log_q = m._log_pq(batch, m.config.n_samples, generator)
    loss = rws_surrogate(log_p, log_q)
    if m.config.q_update == "wake_sleep":
        # --- sleep phase: q fits (x, h) ~ p ---
        state, _ = m.pair.sample_p(batch.shape[0], generator)
        w = torch.softmax(log_p - log_q, 1).detach()
        loss = -(w * log_p).sum(1).mean() - 0.5 * (w * log_q).sum(1).mean() - 0.5 * m.pair.log_q(state).mean()
    lp, lq = log_p.detach(), log_q.detach()
    lpi = log_p_is(lp, lq).mean()
    return loss, {"log_p_is": lpi, "d_b": 0.5 * (lpi - two_log_p_tilde(lp, lq).mean()),
                  "ess_p": ess_fraction(lp - lq).mean()}
