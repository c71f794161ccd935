"""EBGAN and EBGAN-PT — "Energy-based Generative Adversarial Network" (Zhao, Mathieu, LeCun; arXiv 1609.03126).

Energy (paper §2.3): the discriminator is an auto-encoder and its energy is the per-example reconstruction error

    D(x) = ‖Dec(Enc(x)) − x‖,

with the norm and the reduction over coordinates explicit in the config (``recon_norm`` ∈ {l2, l2sq, l1},
``recon_reduction`` ∈ {sum, mean}; the paper writes a norm and leaves both open).

Losses (paper eq. 1–2), for a batch of N real x and N generated G(z):

    L_D = 1/N Σ_i D(x_i) + 1/N Σ_j [m − D(G(z_j))]⁺        the hinge per example, then the batch mean
    L_G = 1/N Σ_j D(G(z_j))  (+ λ_PT f_PT(Enc(G(z))) for EBGAN-PT)

The hinge is applied to each generated example before averaging: hinging the batch mean (as one public
re-implementation does) lets a few badly reconstructed fakes cancel the margin violations of the others.
L_G differentiates D(G(z)) fully, through the auto-encoder *and* through the reconstruction target G(z), as
the paper writes it (the target is not detached).

Pull-away term (paper §2.4, the repelling regularizer): f_PT = 1/(N(N−1)) Σ_{i≠j} cos²(S_i, S_j) on the encoder codes S of the
generated batch, generator loss only, weight 0.1 (``ebgan_pt``; shared implementation
:func:`ebmlab.bounds.pullaway.pullaway_term`). ``ebgan`` logs f_PT (a measure of code diversity) but does not
train on it.

Margin: m is in the units of D. The paper used m = 10 (MNIST, from its grid search), 20 (CelebA), 80 (LSUN),
and found a decay of m to 0 crucial for semi-supervised use; ``margin_schedule`` = linear or cosine decays m from
``margin`` at ``margin_decay_start`` to exactly 0 at ``margin_decay_start + margin_decay_steps`` (0 afterwards).

Toy defaults (2D, MLP auto-encoder), chosen here because the paper has no 2D experiments:
- ``recon_norm = "l2sq"``, ``recon_reduction = "sum"``: D(x) = ‖Dec(Enc(x)) − x‖², the squared distance in the
  units of the data (the mean-squared-error form of the public re-implementations). Near a point the
  auto-encoder maps to a fixed reconstruction c, exp(−D/τ) is a Gaussian of variance τ/2 around c, the family
  the toy mixtures are made of; far away the reconstruction of piecewise-linear layers grows at most linearly,
  so D grows quadratically and exp(−D/τ) is normalisable unless some direction is reconstructed exactly. The
  gradient of ``l2`` has unit norm everywhere, even at a mode, which keeps the generator jittering around it
  (``recon_norm = "l2"`` gives the paper's literal norm).
- ``margin`` is therefore a squared distance. Default 1.0 (unit-scale data); the toy presets set it from the
  spacing s of neighbouring modes: ring8 0.5 (s² = 0.59), grid25 2.0 (s²/2 = 2). A fake is pushed until it is
  reconstructed about a mode spacing away.
- encoder 2 → (128, 128) → code 16, decoder mirrored; generator as in ``gan``; Adam lr 1e-3, β = (0.5, 0.999)
  (the paper's MNIST setting is Adam lr 1e-3), one auto-encoder step per generator step.
Real and generated examples go through the auto-encoder as one concatenated batch; with no batch-dependent
layers this is the same computation as two passes.

Energy for evaluation and samplers: ``energy(x) = D(x) / tau`` (nats). The paper does not calibrate D as a
log-density; a temperature makes exp(−D/τ) a model one can score. With ``tau_search=true``,
``evaluate_extra`` reports, on 2D data, the exact test NLL by grid quadrature (:mod:`ebmlab.metrics.density`)
for τ = 1 (``nll_tau1``) and for the τ that minimises the test NLL (``best_tau``, ``nll_best_tau``). The search scans log τ and refines by golden section:
with β = 1/τ, NLL(β) = β·mean D(x_test) + log ∫ exp(−βD) is convex (a log-partition function is convex in β),
so it is unimodal in log τ; τ = 1 is always a candidate, so ``nll_best_tau`` ≤ ``nll_tau1`` whenever both are
on R². Choosing τ on the test split makes ``nll_best_tau`` an optimistic, oracle-τ
number — it says how good the *shape* of the energy is, and is labelled as such. When exp(−D/τ) is not
normalisable on R² the density code raises :class:`~ebmlab.errors.NonNormalisableError`; the numbers are then
those of the model restricted to the data set's box and carry the suffix ``_box``. The search is off by default:
it is an oracle diagnostic, and its ~30 quadratures took a 2D evaluation from ~3 s to ~20 s (the standard
density metrics at the configured τ are always reported).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..bounds.pullaway import pullaway_term
from ..errors import EbmlabError
from ..nets import build
from ..nets.build import Net
from ..rng import Tape
from .base import CompiledPair, LatentGenerator, Method, adam, frozen, optimizer_step
from ..data.base import Dataset

# --- pure pieces (tested on their own) -------------------------------------------------------------------


def reconstruction_error(x: Tensor, recon: Tensor, norm: str = "l2", reduction: str = "sum") -> Tensor:
    """Per-example reconstruction error [N] of x and recon [N, *shape].

    norm "l2": ‖r‖₂ (reduction "mean": ‖r‖₂/√d, the root-mean-square); "l2sq": Σ r² or mean r²;
    "l1": Σ |r| or mean |r|, with r = recon − x flattened to d coordinates.
    """
    r = (recon - x).flatten(1)
    d = r.shape[1]
    if norm == "l2":
        e = torch.linalg.vector_norm(r, dim=1)  # its gradient at r = 0 is 0, not NaN
        return e / math.sqrt(d) if reduction == "mean" else e
    if norm == "l2sq":
        e = r.square()
    elif norm == "l1":
        e = r.abs()
    else:
        raise EbmlabError(f"recon_norm must be one of 'l2', 'l2sq', 'l1', got {norm!r}")
    return e.mean(1) if reduction == "mean" else e.sum(1)


def margin_loss(e_real: Tensor, e_fake: Tensor, margin: float | Tensor) -> Tensor:
    """L_D = mean_i D(x_i) + mean_j [m − D(G(z_j))]⁺ — the hinge is taken per example, then averaged."""
    return e_real.mean() + F.relu(margin - e_fake).mean()


def margin_at(step: int, margin: float, schedule: str = "constant", start: int = 0, steps: int = 0) -> float:
    """The margin at training step ``step`` (1-based): ``margin`` until ``start``, then decayed to exactly 0
    at ``start + steps`` (linear or half-cosine), and 0 afterwards. ``constant`` ignores start and steps."""
    if schedule == "constant":
        return margin
    if steps < 1:
        raise EbmlabError(f"margin_schedule={schedule!r} needs margin_decay_steps ≥ 1, got {steps}")
    frac = min(max((step - start) / steps, 0.0), 1.0)  # 0 before the decay, 1 at its end and after
    if schedule == "linear":
        return margin * (1.0 - frac)
    if schedule == "cosine":
        return 0.0 if frac >= 1.0 else margin * 0.5 * (1.0 + math.cos(math.pi * frac))
    raise EbmlabError(f"margin_schedule must be one of 'constant', 'linear', 'cosine', got {schedule!r}")


class MarginSchedule:
    """The margin over training for methods whose Config has margin, margin_schedule, margin_decay_start and
    margin_decay_steps (EBGAN, EBGAN-PT, EBGAN-LN). A constant margin is a Python number; a decaying one is a
    one-element tensor on the method's device (shape [1], not 0-d: dynamo traces a compiled step twice for a 0-d
    float64 input) that ``prepare_step`` fills before each step, outside the step, so that a step replayed from a
    captured graph (``ebmlab.graphs``) reads the margin of its own step (the same float32 value the number would be
    rounded to in the loss). Put it before :class:`Method` in the bases."""

    config: Any
    device: torch.device
    _margin_now: Tensor | None = None
    _margin_step: int | None = None

    def prepare_step(self, step: int) -> None:
        c = self.config
        if c.margin_schedule == "constant":
            return
        if self._margin_now is None:
            self._margin_now = torch.zeros(1, device=self.device)
        self._margin_now.fill_(margin_at(step, c.margin, c.margin_schedule, c.margin_decay_start,
                                         c.margin_decay_steps))
        self._margin_step = step

    @staticmethod
    def margin_metric(m: float | Tensor) -> float | Tensor:
        """The margin ``m`` of :meth:`margin` as a step reports it: a number, or a 0-d copy of the [1] tensor."""
        return m if isinstance(m, float) else m.clone().reshape(())

    def margin(self, step: int) -> float | Tensor:
        c = self.config
        if c.margin_schedule == "constant":
            return c.margin
        if self._margin_step != step:  # a caller that did not prepare the step (the trainer always does)
            self.prepare_step(step)
        assert self._margin_now is not None
        return self._margin_now


# --- config and method -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EBGANConfig:
    z_dim: int = 2
    g_hidden: tuple[int, ...] = (128, 128, 128)
    d_hidden: tuple[int, ...] = (128, 128)
    code_dim: int = 16
    act: Literal["relu", "leaky_relu", "tanh", "prelu", "elu", "softplus"] = "leaky_relu"
    recon_norm: Literal["l2", "l2sq", "l1"] = "l2sq"
    recon_reduction: Literal["sum", "mean"] = "sum"
    margin: float = 1.0
    margin_schedule: Literal["constant", "linear", "cosine"] = "constant"
    margin_decay_start: int = 0
    margin_decay_steps: int = 0
    lr_g: float = 1e-3
    lr_d: float = 1e-3
    beta1: float = 0.5
    beta2: float = 0.999
    n_critic: int = 1
    tau: float = 1.0  # energy(x) = D(x) / tau
    tau_search: bool = False
    net: Net = "auto"
    width: int = 32

    # range kind and meaning of each option not in ebmlab.options.SHARED (ebmlab.options explains)
    OPTIONS: ClassVar[dict[str, tuple[str, str]]] = {
        "d_hidden": ("ints1", "hidden widths of the auto-encoder's encoder (the decoder mirrors them)"),
        "margin": ("nonneg", "hinge margin m of the fake-sample energy"),
        "margin_schedule": ("choice", "margin over training: constant, or linear/cosine decay to 0"),
        "margin_decay_start": ("int0", "step at which the margin starts to decay"),
        "margin_decay_steps": ("int0", "steps over which the margin decays to 0"),
        "recon_norm": ("choice", "reconstruction energy: l2 norm, squared l2, or l1"),
        "recon_reduction": ("choice", "how the reconstruction error is reduced over the dimensions"),
        "tau": ("pos", "temperature: energy(x) = D(x) / tau"),
        "tau_search": ("any", "2D: also the quadrature NLL at the oracle temperature chosen on the test split (slow)"),
    }


@dataclass(frozen=True)
class EBGANPTConfig(EBGANConfig):
    pt_weight: float = 0.1  # paper: 0.1

    OPTIONS: ClassVar[dict[str, tuple[str, str]]] = {
        "pt_weight": ("nonneg", "weight of the pull-away term in the generator loss"),
    }


class EBGAN(MarginSchedule, LatentGenerator, Method):
    name = "ebgan"
    compile_estimate = (1.48, 57.0)  # benchmarks/compile/results.md (1 thread, cold cache)
    progress_keys = ("loss_d", "energy_real", "energy_fake", "margin")  # shown on the progress bar
    Config = EBGANConfig
    description = "EBGAN: auto-encoder energy, per-example margin loss"
    has_energy = True

    def __init__(self, config: EBGANConfig, **kw):
        super().__init__(config, **kw)
        self._pair: CompiledPair | None = None  # the compiled step (run option compile)
        spec = self.spec
        c = config
        if c.margin < 0 or c.tau <= 0:
            raise EbmlabError(f"need margin ≥ 0 and tau > 0, got margin={c.margin}, tau={c.tau}")
        margin_at(1, c.margin, c.margin_schedule, c.margin_decay_start, c.margin_decay_steps)  # validate early
        self.G = build.generator(spec, c.z_dim, net=c.net, hidden=c.g_hidden, act=c.act, width=c.width,
                                 batchnorm=build.default_batchnorm(spec, c.net)).to(self.device)
        self.AE = build.autoencoder(spec, c.code_dim, net=c.net, hidden=c.d_hidden, act=c.act,
                                    width=c.width).to(self.device)
        self.networks = {"generator": self.G, "autoencoder": self.AE}
        self.optimizers = {
            "generator": adam(self.G.parameters(), c.lr_g, (c.beta1, c.beta2)),
            "autoencoder": adam(self.AE.parameters(), c.lr_d, (c.beta1, c.beta2)),
        }

    @property
    def pt_weight(self) -> float:
        return 0.0

    def energy_and_code(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """D(x) [N] (reconstruction error, gradient through the target x too) and the codes Enc(x) [N, k]."""
        recon, code = self.AE(x)
        return reconstruction_error(x, recon, self.config.recon_norm, self.config.recon_reduction), code

    def train_step(self, batch: Tensor, step: int) -> dict[str, Tensor | float]:
        c, b = self.config, batch.shape[0]
        m = self.margin(step)
        # --- auto-encoder (discriminator) step(s): L_D = mean D(x) + mean [m − D(G(z))]⁺ ---
        for _ in range(c.n_critic):
            with torch.no_grad():
                fake = self.G(self.noise(b, c.z_dim))
            e, _ = self.energy_and_code(torch.cat([batch, fake]))
            e_real, e_fake = e[:b], e[b:]
            loss_d = margin_loss(e_real, e_fake, m)
            optimizer_step(self.optimizers["autoencoder"], loss_d, self.recipe)
        # --- generator step: L_G = mean D(G(z)) (+ λ f_PT of the codes), D differentiated through its target ---
        with frozen(self.AE):
            e_gen, code_gen = self.energy_and_code(self.G(self.noise(b, c.z_dim)))
            f_pt = pullaway_term(code_gen)
            loss_g = e_gen.mean()
            if self.pt_weight > 0:
                loss_g = loss_g + self.pt_weight * f_pt
            optimizer_step(self.optimizers["generator"], loss_g, self.recipe)
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "energy_real": e_real.mean().detach(),
                "energy_fake": e_fake.mean().detach(), "hinge_active": (e_fake < m).float().mean().detach(),
                "margin": self.margin_metric(m), "pullaway": f_pt.detach()}

    # --- the compiled step (run option compile, ebmlab.compiled) ------------------------------------------------
    def compile_blocker(self) -> str | None:
        """The compiled step is :meth:`train_step`'s arithmetic as one pure function (``base.pair_core`` with
        :func:`ae_loss` and :func:`gen_loss`); the margin, scheduled or not, enters as a tensor."""
        return CompiledPair.blocker(self)

    def compiled_train_step(self, batch: Tensor, step: int, noise: Tape, compile: Callable[..., Any]
                            ) -> dict[str, Tensor | float]:
        """:meth:`train_step` compiled: the auto-encoder's step(s) and the generator's, their gradients and Adam
        updates in one function; the latents are the eager step's draws (``noise``)."""
        c, b = self.config, batch.shape[0]
        m = self.margin(step)
        margin = m if isinstance(m, Tensor) else torch.tensor(m, device=self.device)
        if self._pair is None:
            self._pair = CompiledPair(self, self.AE, "autoencoder", self.G, "generator")
        zs = [self.noise(b, c.z_dim, noise) for _ in range(c.n_critic + 1)]
        out: dict[str, Tensor | float] = dict(self._pair(functools.partial(ae_loss, self),
                                                         functools.partial(gen_loss, self), zs, compile, batch,
                                                         margin))
        out["margin"] = self.margin_metric(m)
        return out

    def energy(self, x: Tensor) -> Tensor:
        return self.energy_and_code(x)[0] / self.config.tau

    def features(self, x: Tensor) -> Tensor:
        """The auto-encoder's code of x [b, code_dim] (the energy's bottleneck features)."""
        return self.AE(x)[1]


    def evaluate_extra(self, dataset: Dataset, count: int = 2500) -> dict[str, Any]:
        """With ``tau_search``, the family exp(−D/τ) for the evaluator's temperature report (2D data)."""
        if not self.config.tau_search:
            return {}
        return {"tempered_energy": lambda x: self.energy_and_code(x)[0]}


class EBGANPT(EBGAN):
    name = "ebgan_pt"
    Config = EBGANPTConfig
    description = "EBGAN-PT: EBGAN + pull-away term on the codes of generated samples"

    @property
    def pt_weight(self) -> float:
        return self.config.pt_weight


def _energy_and_code(m: EBGAN, p_ae: dict[str, Tensor], x: Tensor) -> tuple[Tensor, Tensor]:
    """:meth:`EBGAN.energy_and_code` at the auto-encoder parameters ``p_ae``."""
    recon, code = torch.func.functional_call(m.AE, p_ae, (x,))
    return reconstruction_error(x, recon, m.config.recon_norm, m.config.recon_reduction), code


def ae_loss(m: EBGAN, p_ae: dict[str, Tensor], p_g: dict[str, Tensor], z: Tensor, batch: Tensor, margin: Tensor
            ) -> tuple[Tensor, dict[str, Tensor]]:
    """The auto-encoder's margin loss of :meth:`EBGAN.train_step` at ``p_ae`` (the generator's ``p_g``: no
    gradient), as the compiled step computes it."""
    b = batch.shape[0]
    fake = torch.func.functional_call(m.G, p_g, (z,)).detach()
    e, _ = _energy_and_code(m, p_ae, torch.cat([batch, fake]))
    e_real, e_fake = e[:b], e[b:]
    loss = margin_loss(e_real, e_fake, margin)
    return loss, {"loss_d": loss.detach(), "energy_real": e_real.mean().detach(),
                  "energy_fake": e_fake.mean().detach(), "hinge_active": (e_fake < margin).float().mean().detach()}


def gen_loss(m: EBGAN, p_g: dict[str, Tensor], p_ae: dict[str, Tensor], z: Tensor, batch: Tensor, margin: Tensor
             ) -> tuple[Tensor, dict[str, Tensor]]:
    """The generator's loss of :meth:`EBGAN.train_step` (plus λ × the pull-away term of EBGAN-PT) through the
    updated auto-encoder ``p_ae``, the energy differentiated through its target too."""
    e_gen, code = _energy_and_code(m, p_ae, torch.func.functional_call(m.G, p_g, (z,)))
    f_pt = pullaway_term(code)
    loss = e_gen.mean()
    if m.pt_weight > 0:
        loss = loss + m.pt_weight * f_pt
    return loss, {"loss_g": loss.detach(), "pullaway": f_pt.detach()}
