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

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.labels import balanced_subset
from ..errors import EbmlabError
from ..metadata import Metric
from ..nets import build
from ..nets.ladder import Ladder
from ..rng import randint
from .base import LatentGenerator, Method, adam, frozen, optimizer_step
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
        "margin_schedule": ("any", "margin over training: constant, or linear/cosine decay to 0"),
        "margin_decay_start": ("int0", "step at which the margin starts to decay"),
        "margin_decay_steps": ("int0", "steps over which the margin decays to 0"),
    }


class EBGANLN(MarginSchedule, LatentGenerator, Method):
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
        assert self.x_lab is not None and self.y_lab is not None
        b, m = batch.shape[0], self.margin(step)
        i = randint(0, len(self.x_lab), (c.labelled_batch,), generator=self.rng, device=self.device)
        x_l, y_l = self.unit(self.x_lab[i]), self.y_lab[i]
        x_u = self.unit(batch)
        with torch.no_grad():
            lad(x_u, track=True)  # the clean encoder's population statistics
        logits_l, _ = lad.noisy(x_l, self.rng, decode=False)
        ce = F.cross_entropy(logits_l, y_l)
        _, e_real = lad.noisy(x_u, self.rng, track=True)
        loss_d = ce + e_real.mean()
        out: dict[str, Tensor | float] = {}
        if self.adversarial:
            with torch.no_grad():
                fake = self.G(self.noise(b, c.z_dim))
            _, e_fake = lad.noisy(self.unit(fake), self.rng)
            loss_d = loss_d + F.relu(m - e_fake).mean()
            out = {"energy_fake": e_fake.mean().detach(), "hinge_active": (e_fake < m).float().mean().detach()}
        optimizer_step(self.optimizers["ladder"], loss_d, self.recipe)
        if self.adversarial:
            with frozen(lad):
                _, e_gen = lad.noisy(self.unit(self.G(self.noise(b, c.z_dim))), self.rng)
                loss_g = e_gen.mean()
                optimizer_step(self.optimizers["generator"], loss_g, self.recipe)
            out["loss_g"] = loss_g.detach()
        acc = (logits_l.detach().argmax(1) == y_l).float().mean()
        return {"loss_d": loss_d.detach(), "ce": ce.detach(), "energy_real": e_real.mean().detach(),
                "margin": m if isinstance(m, float) else m.clone(), "train_acc_labelled": acc, **out}

    # --- the model ---------------------------------------------------------------------------------------------
    def energy(self, x: Tensor) -> Tensor:
        lad = self._ladder()
        was = lad.training
        lad.eval()
        try:
            return lad.noisy(self.unit(x), None, noise_std=0.0)[1]
        finally:
            lad.train(was)

    def features(self, x: Tensor) -> Tensor:
        return self._ladder().features(self.unit(x))

    @torch.no_grad()
    def predict(self, x: Tensor, batch: int = 2000) -> Tensor:
        """Class predictions [n] of the clean ladder (population statistics)."""
        lad = self._ladder()
        was = lad.training
        lad.eval()
        try:
            return torch.cat([lad(self.unit(x[i:i + batch].to(self.device))).argmax(1).cpu()
                              for i in range(0, len(x), batch)])
        finally:
            lad.train(was)

    def evaluate_extra(self, dataset: Dataset) -> dict[str, Any]:
        y = dataset.test_labels
        if y is None:
            return {}
        pred = self.predict(dataset.test)
        return {"test_error": float((pred != y).double().mean()), "labels": self.config.labels}
