"""EBGAN-LN — EBGAN with a ladder network as the energy, for semi-supervised classification (Zhao, Mathieu &
LeCun, "Energy-based Generative Adversarial Network", ICLR 2017, §4.3 and appendix: permutation-invariant MNIST
with 100, 200 and 1000 labels, reported 1.04 / 0.99 / 0.89 % test error).

The discriminator is a fully connected ladder network (:mod:`ebmlab.nets.ladder`) whose energy is its bottom-layer
denoising cost C(x) = λ₀‖x − ẑ⁽⁰⁾(x̃)‖²/D (the "bottom-layer-cost ladder" the paper builds on). For k labelled
examples (balanced per class, chosen by ``label_seed``), the whole training split as unlabelled data, and a batch
of generated G(z), one step minimises

    L_D = CE(noisy logits of x_l, y_l) + mean_u C(x_u) + mean_j [m − C(G(z_j))]⁺      (the ladder)
    L_G = mean_j C(G(z_j))                                                              (the generator)

— the ladder's own semi-supervised cost (classification + denoising) plus EBGAN's margin term on generated
examples, hinged per example as in :mod:`ebmlab.methods.ebgan`. The paper found it crucial to decay m to 0 during
training ("the discriminator should punish the generator less as p_G approaches the data"); at m = 0 EBGAN-LN *is*
the ladder network, so ``margin=0`` (with the constant schedule) trains the ladder alone and skips the generator —
the baseline the paper compares with, at the same steps and batches.

The classifier at test time is the ladder's clean path with population statistics; ``evaluate_extra`` reports its
``test_error`` on the whole test split.

Settings: the ladder 784-1000-500-250-250-250-10, noise σ = 0.3 on every layer, λ₀ = 1000, batches of 100
labelled and 100 unlabelled examples and Adam(0.002) are the ladder paper's MNIST settings; the generator is an MLP
z(100) → 500 → 500 → D with batch norm (the paper does not list its generator; this is the usual MNIST MLP
generator). Decisions where the paper is silent: pixels enter the ladder in [0, 1] (the ladder's MNIST scale;
data in [−1, 1] are mapped by (x + 1)/2); the margin's value — ``margin`` = 20 in units of C, twice the denoising
cost of real Fashion-MNIST training images after 1000 steps (≈ 10), so that a generated image is pushed until it is
reconstructed about twice as badly as a real one — and its linear decay to 0 over
``margin_decay_steps`` (the paper states only that m decays to 0); each batch (labelled, unlabelled, generated) is
normalised by its own statistics, as the ladder normalises its labelled and unlabelled batches. Deviations: no
learning-rate decay at the end (the run's ``lr_schedule`` can add one) and, on a CPU, far fewer than the ladder
paper's 150 epochs (stated beside every number in ``benchmarks/ebgan_ln``).

Energy for samplers and plots: C(x) without noise, population statistics (deterministic, per example); like
EBGAN's reconstruction energy it is not calibrated as a log-density.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..bounds.unroll import FunctionalModule
from ..data.labels import balanced_subset
from ..errors import EbmlabError
from ..metadata import Metric
from ..nets import build
from ..nets.ladder import Ladder
from ..rng import Noise, randint, Tape
from .base import CompiledPair, CompiledSingle, LatentGenerator, Method, adam, frozen, in_mode, optimizer_step
from .ebgan import MarginSchedule, margin_at
from ..data.base import Dataset


@dataclass(frozen=True)
class EBGANLNConfig:
    labels: int = 100
    label_seed: int = 0
    labelled_batch: int = 100
    hidden: tuple[int, ...] = (1000, 500, 250, 250, 250)
    noise_std: float = 0.3
    lambda0: float = 1000.0
    z_dim: int = 100
    g_hidden: tuple[int, ...] = (500, 500)
    margin: float = 20.0
    margin_schedule: Literal["constant", "linear", "cosine"] = "linear"
    margin_decay_start: int = 0
    margin_decay_steps: int = 3000
    lr_d: float = 2e-3
    lr_g: float = 2e-3
    beta1: float = 0.9
    beta2: float = 0.999

    # range kind and meaning of each option not in ebmlab.options.SHARED (ebmlab.options explains)
    OPTIONS: ClassVar[dict[str, tuple[str, str]]] = {
        "labels": ("int1", "number of labelled training examples (balanced per class)"),
        "label_seed": ("int0", "seed that chooses the labelled examples"),
        "labelled_batch": ("int1", "labelled examples per step"),
        "hidden": ("ints1", "hidden widths of the ladder network"),
        "noise_std": ("nonneg", "standard deviation of the ladder's corruption noise on every layer"),
        "lambda0": ("pos", "weight λ₀ of the input-layer denoising cost (the energy's scale)"),
        "margin": ("nonneg", "hinge margin m of the generated examples' energy (0 with the constant schedule: the "
                             "ladder alone)"),
        "margin_schedule": ("choice", "margin over training: constant, or linear/cosine decay to 0"),
        "margin_decay_start": ("int0", "step at which the margin starts to decay"),
        "margin_decay_steps": ("int0", "steps over which the margin decays to 0"),
    }


class EBGANLN(MarginSchedule, LatentGenerator, Method):
    compile_estimate = (2.02, 138.0)  # benchmarks/compile/results.md (1 thread, cold cache)
    name = "ebgan_ln"
    Config = EBGANLNConfig
    description = "EBGAN-LN: ladder-network energy, semi-supervised on k labels"
    has_energy = True
    data_kinds = ("image", "vectors", "binary")
    data_hint = "EBGAN-LN classifies: use a labelled data set (fashion, mnist, digits, or a .npz with y_train)."
    needs_labels = True
    progress_keys = ("ce", "energy_real", "energy_fake", "margin")
    metrics = {"test_error": Metric("method", "%", "↓", "test error of the clean ladder classifier", True)}
    bookkeeping = frozenset({"labels"})

    def __init__(self, config: EBGANLNConfig, **kw):
        super().__init__(config, **kw)
        c, spec = config, self.spec
        if c.margin < 0:
            raise EbmlabError(f"margin must be ≥ 0, got {c.margin}")
        margin_at(1, c.margin, c.margin_schedule, c.margin_decay_start, c.margin_decay_steps)  # validate early
        self.lo, self.hi = spec.value_range if spec.value_range is not None else (0.0, 1.0)
        self.n_classes: int | None = None
        self.x_lab: Tensor | None = None
        self.y_lab: Tensor | None = None
        self.G = build.generator(spec, c.z_dim, net="mlp", hidden=c.g_hidden, act="relu",
                                 batchnorm=True).to(self.device)
        self.networks = {"generator": self.G}
        self.optimizers = {"generator": adam(self.G.parameters(), c.lr_g, (c.beta1, c.beta2))}
        self._compiled: CompiledPair | CompiledSingle | None = None  # the compiled step (run option compile)

    # --- the labelled subset ------------------------------------------------------------------------------
    def attach_data(self, dataset: Dataset) -> None:
        """Choose the k labelled examples (balanced, by ``label_seed``) and build the ladder for the data's classes."""
        c = self.config
        y = dataset.train_labels
        n_classes = dataset.n_classes
        if y is None or not n_classes:
            raise EbmlabError(f"{dataset.name} has no class labels; {self.data_hint}")
        idx = balanced_subset(y.numpy(), c.labels, int(n_classes), c.label_seed)
        self.n_classes = int(n_classes)
        self.x_lab = dataset.train[torch.as_tensor(idx)].to(self.device)
        self.y_lab = y[torch.as_tensor(idx)].to(self.device)
        if "ladder" not in self.networks:
            self.L = Ladder(self.spec.dim, tuple(c.hidden), self.n_classes, noise_std=c.noise_std,
                            lambda0=c.lambda0).to(self.device)
            self.networks = {"ladder": self.L, "generator": self.G}
            self.optimizers = {"ladder": adam(self.L.parameters(), c.lr_d, (c.beta1, c.beta2)), **self.optimizers}

    def _ladder(self) -> Ladder:
        if "ladder" not in self.networks:
            raise EbmlabError("ebgan_ln needs its labelled data: build it with ebmlab.trainer.build_method (or call "
                              "attach_data(dataset) first)")
        return self.L

    def unit(self, x: Tensor) -> Tensor:
        """x in the ladder's [0, 1] scale (images and binary data) — unchanged for unbounded vectors."""
        return (x - self.lo) / (self.hi - self.lo)

    # --- training --------------------------------------------------------------------------------------------
    @property
    def adversarial(self) -> bool:
        c = self.config
        return not (c.margin == 0 and c.margin_schedule == "constant")

    def train_step(self, batch: Tensor, step: int) -> dict[str, Tensor | float]:
        c, lad = self.config, self._ladder()
        b, m = batch.shape[0], self.margin(step)
        x_l, y_l, x_u = self._inputs(batch, self.rng)
        loss_d, out = ladder_cost(lad, x_l, y_l, x_u, self.rng)
        if self.adversarial:
            with torch.no_grad():
                fake = self.G(self.noise(b, c.z_dim))
            e_fake = lad.cost(self.unit(fake), self.rng)
            loss_d = loss_d + F.relu(m - e_fake).mean()
            out.update({"energy_fake": e_fake.mean().detach(), "hinge_active": (e_fake < m).float().mean().detach()})
        optimizer_step(self.optimizers["ladder"], loss_d, self.recipe)
        if self.adversarial:
            with frozen(lad):
                e_gen = lad.cost(self.unit(self.G(self.noise(b, c.z_dim))), self.rng)
                loss_g = e_gen.mean()
                optimizer_step(self.optimizers["generator"], loss_g, self.recipe)
            out["loss_g"] = loss_g.detach()
        return {"loss_d": loss_d.detach(), "margin": self.margin_metric(m), **out}

    def _inputs(self, batch: Tensor, generator: Noise | Tape) -> tuple[Tensor, Tensor, Tensor]:
        """A step's labelled examples (drawn with replacement from the k), their labels and the unlabelled batch,
        in the ladder's scale."""
        assert self.x_lab is not None and self.y_lab is not None
        i = randint(0, len(self.x_lab), (self.config.labelled_batch,), generator=generator, device=self.device)
        return self.unit(self.x_lab[i]), self.y_lab[i], self.unit(batch)

    # --- the compiled step (run option compile, ebmlab.compiled) ------------------------------------------------
    def compile_blocker(self) -> str | None:
        """The compiled step is :meth:`train_step`'s arithmetic as one pure function: with the margin term,
        ``base.pair_core`` with :func:`ladder_loss` and :func:`generator_loss` (the ladder first); the ladder alone
        (margin 0), ``base.CompiledSingle`` over :func:`ladder_cost`. The ladder's noise is the eager step's draws,
        taken from the tape inside the compiled function; its population statistics and the generator's BatchNorm
        statistics are carried (``compiled.grad_carrying``); the margin enters as a tensor."""
        return CompiledPair.blocker(self)

    def compiled_train_step(self, batch: Tensor, step: int, noise: Tape, compile: Callable[..., Any]
                            ) -> dict[str, Tensor | float]:
        """:meth:`train_step` compiled (:meth:`compile_blocker`); the labelled examples' indices are the tape's
        first draw, taken before the compiled function."""
        lad = self._ladder()
        x_l, y_l, x_u = self._inputs(batch, noise)
        if not self.adversarial:
            if self._compiled is None:
                self._compiled = CompiledSingle(self, lad, "ladder")
            assert isinstance(self._compiled, CompiledSingle)
            return {**self._compiled(functools.partial(_ladder_alone, lad), compile, x_l, y_l, x_u, noise),
                    "margin": self.config.margin}
        m = self.margin(step)
        margin = m if isinstance(m, Tensor) else torch.full((1,), m, device=self.device)
        if self._compiled is None:
            self._compiled = CompiledPair(self, lad, "ladder", self.G, "generator")
        assert isinstance(self._compiled, CompiledPair)
        out: dict[str, Tensor | float] = dict(self._compiled(
            functools.partial(ladder_loss, self), functools.partial(generator_loss, self), [None, None], compile,
            x_l, y_l, x_u, margin, noise))
        out["margin"] = self.margin_metric(m)
        return out

    # --- the model ---------------------------------------------------------------------------------------------
    def energy(self, x: Tensor) -> Tensor:
        lad = self._ladder()
        with in_mode(False, lad):
            return lad.cost(self.unit(x), None, noise_std=0.0)

    def features(self, x: Tensor) -> Tensor:
        return self._ladder().features(self.unit(x))

    @torch.no_grad()
    def predict(self, x: Tensor, batch: int = 2000) -> Tensor:
        """Class predictions [n] of the clean ladder (population statistics)."""
        lad = self._ladder()
        with in_mode(False, lad):
            return torch.cat([lad(self.unit(x[i:i + batch].to(self.device))).argmax(1).cpu()
                              for i in range(0, len(x), batch)])

    def evaluate_extra(self, dataset: Dataset, count: int = 2500) -> dict[str, Any]:
        y = dataset.test_labels
        if y is None:
            return {}
        pred = self.predict(dataset.test)
        return {"test_error": float((pred != y).double().mean()), "labels": self.config.labels}


def ladder_cost(lad: Any, x_l: Tensor, y_l: Tensor, x_u: Tensor, generator: Noise | Tape
                ) -> tuple[Tensor, dict[str, Tensor]]:
    """The ladder's own semi-supervised cost of a step — the noisy path's cross-entropy on the labelled examples
    plus the mean denoising cost C of the unlabelled batch —, after moving the clean encoder's population statistics
    on the unlabelled batch; ``lad``: the ladder or a functional view of it. Returns (cost, metrics)."""
    with torch.no_grad():
        lad(x_u, track=True)  # the clean encoder's population statistics
    logits_l, _ = lad.noisy(x_l, generator, decode=False)
    ce = F.cross_entropy(logits_l, y_l)
    e_real = lad.cost(x_u, generator, track=True)
    acc = (logits_l.detach().argmax(1) == y_l).float().mean()
    return ce + e_real.mean(), {"ce": ce.detach(), "energy_real": e_real.mean().detach(), "train_acc_labelled": acc}


def _ladder_alone(lad: Ladder, x_l: Tensor, y_l: Tensor, x_u: Tensor, noise: Tape) -> tuple[Tensor, dict[str, Tensor]]:
    loss, out = ladder_cost(lad, x_l, y_l, x_u, noise)
    return loss, {"loss_d": loss.detach(), **out}


def ladder_loss(m: EBGANLN, p_l: dict[str, Tensor], p_g: dict[str, Tensor], _: None, x_l: Tensor, y_l: Tensor,
                x_u: Tensor, margin: Tensor, noise: Tape) -> tuple[Tensor, dict[str, Tensor]]:
    """The ladder's loss of :meth:`EBGANLN.train_step` at ``p_l`` — its cost plus the hinge [m − C(G(z))]⁺ on
    generated examples (the generator's ``p_g``: no gradient) —, every draw from ``noise``."""
    lad = FunctionalModule(m.L, p_l, dict(m.L.named_buffers()))
    loss, out = ladder_cost(lad, x_l, y_l, x_u, noise)
    fake = torch.func.functional_call(m.G, p_g, (m.noise(x_u.shape[0], m.config.z_dim, noise),)).detach()
    e_fake = lad.cost(m.unit(fake), noise)
    loss = loss + F.relu(margin - e_fake).mean()
    return loss, {"loss_d": loss.detach(), **out, "energy_fake": e_fake.mean().detach(),
                  "hinge_active": (e_fake < margin).float().mean().detach()}


def generator_loss(m: EBGANLN, p_g: dict[str, Tensor], p_l: dict[str, Tensor], _: None, x_l: Tensor, y_l: Tensor,
                   x_u: Tensor, margin: Tensor, noise: Tape) -> tuple[Tensor, dict[str, Tensor]]:
    """The generator's loss of :meth:`EBGANLN.train_step`: the mean denoising cost of G(z) through the updated
    ladder ``p_l``."""
    lad = FunctionalModule(m.L, p_l, dict(m.L.named_buffers()))
    gen = torch.func.functional_call(m.G, p_g, (m.noise(x_u.shape[0], m.config.z_dim, noise),))
    e_gen = lad.cost(m.unit(gen), noise)
    loss = e_gen.mean()
    return loss, {"loss_g": loss.detach()}
