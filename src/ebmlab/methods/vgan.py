"""VGAN — GANs as variational training of EBMs (Zhai, Cheng, Feris, Zhang; arXiv 1611.01799).

Objective (paper eq. 3–5): NLL(θ) ≥ E_data[E_θ] − E_q[E_θ] + H(q); the game is min_E max_q with the
generator q as the *inner* player: ``k_gen`` generator ascent steps, then one energy descent step.

- Energy: the bounded multi-modal form E(x) = Σ_j H_b(σ(w_jᵀφ(x) + b_j)), K experts (paper 100, code 128),
  σ clipped to [1e-4, 1 − 1e-4]; its range is [0, K log 2]. The paper shows an unbounded energy makes the game
  ill-posed (E → −∞ by scaling); boundedness is what keeps it well-posed.
- Entropy: the batch surrogate H̃(batch) = Σ_j H_b(mean_i σ_j(x_i)) replaces H(q) (not a true bound).
- Generator loss: mean E(G(z)) − H̃(G(z)). Energy loss: mean E(x) − mean E(G(z)) − H̃(x) — the data-side
  surrogate keeps each expert half-active on real data, so the experts code for modes.

Deviation from the original code: the original trains images with Adadelta (lr 0.1, batch 100); that is
available (``optimizer="adadelta"``), but on the 2D toys with the step budgets used here Adam converges far
faster, so the default is Adam(lr 1e-3, β = (0.5, 0.999)) — the toy presets record the choice.
The transition-operator (VCD) variant belongs with the image methods.

Caveat for density metrics: a bounded energy is not normalisable on R² (far from the data the experts saturate
and E tends to a constant near 0), so exact NLL is reported for the model restricted to the data set's box.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal, cast

import torch
from torch import Tensor, nn

from ..bounds.unroll import FunctionalModule
from ..nets import BoundedExpertHead, ScaledTanh, build
from ..nets.build import Net
from ..rng import Tape
from .base import CompiledPair, LatentGenerator, Method, frozen, make_optimizer, optimizer_step


@dataclass(frozen=True)
class VGANConfig:
    z_dim: int = 2
    g_hidden: tuple[int, ...] = (128, 128, 128)
    e_hidden: tuple[int, ...] = (128, 128)
    n_experts: int = 128
    act: Literal["relu", "leaky_relu", "tanh", "prelu", "elu", "softplus"] = "leaky_relu"
    optimizer: Literal["adam", "adadelta"] = "adam"
    lr_g: float = 1e-3
    lr_e: float = 1e-3
    beta1: float = 0.5
    beta2: float = 0.999
    k_gen: int = 1
    entropy_weight: float = 1.0
    out_bound: float = 0.0
    net: Net = "auto"
    width: int = 32

    # range kind and meaning of each option not in ebmlab.options.SHARED (ebmlab.options explains)
    OPTIONS: ClassVar[dict[str, tuple[str, str]]] = {
        "k_gen": ("int1", "generator updates per energy update"),
        "out_bound": ("nonneg", "> 0: generator output out_bound·tanh(·), confined to the data box (0: unbounded)"),
    }


class VGAN(LatentGenerator, Method):
    name = "vgan"
    compile_estimate = (1.48, 51.0)  # benchmarks/compile/results.md (1 thread, cold cache)
    progress_keys = ("energy_real", "energy_fake", "entropy_gen")  # shown on the progress bar
    Config = VGANConfig
    description = "VGAN: bounded multi-modal energy + batch entropy surrogate, k generator steps per energy step"
    has_energy = True

    def __init__(self, config: VGANConfig, **kw):
        super().__init__(config, **kw)
        self._pair: CompiledPair | None = None  # the compiled step (run option compile)
        spec = self.spec
        c = config
        self.G = build.generator(spec, c.z_dim, net=c.net, hidden=c.g_hidden, act=c.act, width=c.width,
                                 batchnorm=build.default_batchnorm(spec, c.net)).to(self.device)
        if c.out_bound > 0:
            cast(nn.Sequential, self.G).append(ScaledTanh(c.out_bound))  # an MLP generator (out_bound: 2D)
        features, feat_dim = build.features(spec, net=c.net, hidden=c.e_hidden, act=c.act, width=c.width)
        self.E = BoundedExpertHead(features, feat_dim, c.n_experts).to(self.device)
        self.networks = {"generator": self.G, "energy": self.E}
        self.optimizers = {
            "generator": make_optimizer(c.optimizer, self.G.parameters(), c.lr_g, (c.beta1, c.beta2)),
            "energy": make_optimizer(c.optimizer, self.E.parameters(), c.lr_e, (c.beta1, c.beta2)),
        }

    def train_step(self, batch: Tensor, step: int) -> dict[str, Tensor | float]:
        c, b = self.config, batch.shape[0]
        # --- generator steps (inner player: maximise −E(G(z)) + H̃) ---
        with frozen(self.E):
            for _ in range(c.k_gen):
                p_gen = self.E.probs(self.G(self.noise(b, c.z_dim)))
                h_gen = self.E.batch_entropy(p_gen)
                loss_g = self.E.energy_from_probs(p_gen).mean() - c.entropy_weight * h_gen
                optimizer_step(self.optimizers["generator"], loss_g, self.recipe)
        # --- energy step (outer player) ---
        with torch.no_grad():
            fake = self.G(self.noise(b, c.z_dim))
        loss_e, metrics = energy_terms(self.E, batch, fake, c.entropy_weight)
        optimizer_step(self.optimizers["energy"], loss_e, self.recipe)
        return {"loss_g": loss_g.detach(), "entropy_gen": h_gen.detach(), **metrics}

    # --- the compiled step (run option compile, ebmlab.compiled) ------------------------------------------------
    def compile_blocker(self) -> str | None:
        """The compiled step is :meth:`train_step`'s arithmetic as one pure function (``base.pair_core``, the
        generator first, with :func:`energy_loss` and :func:`generator_loss`), with Adam or the release's
        Adadelta (``base.UpdateRule``), the networks' buffers carried."""
        return CompiledPair.blocker(self)

    def compiled_train_step(self, batch: Tensor, step: int, noise: Tape, compile: Callable[..., Any]
                            ) -> dict[str, Tensor | float]:
        """:meth:`train_step` compiled: the k_gen generator steps and the energy step, their gradients and Adam
        updates in one function; the latents are the eager step's draws (``noise``)."""
        c, b = self.config, batch.shape[0]
        if self._pair is None:
            self._pair = CompiledPair(self, self.E, "energy", self.G, "generator")
        zs = [self.noise(b, c.z_dim, noise) for _ in range(c.k_gen + 1)]
        return dict(self._pair(functools.partial(energy_loss, self), functools.partial(generator_loss, self), zs,
                               compile, batch, g_first=True))

    def energy(self, x: Tensor) -> Tensor:
        return self.E(x)

    def features(self, x: Tensor) -> Tensor:
        return self.E.features(x)


def _energy_view(m: VGAN, p_e: dict[str, Tensor]) -> FunctionalModule:
    return FunctionalModule(m.E, p_e, dict(m.E.named_buffers()))


def generator_loss(m: VGAN, p_g: dict[str, Tensor], p_e: dict[str, Tensor], z: Tensor, batch: Tensor
                   ) -> tuple[Tensor, dict[str, Tensor]]:
    """A generator step's loss of :meth:`VGAN.train_step` — E(G(z)) − λ H̃ — at ``p_g``, the energy at ``p_e``."""
    e = _energy_view(m, p_e)
    p_gen = e.probs(torch.func.functional_call(m.G, p_g, (z,)))
    h_gen = e.batch_entropy(p_gen)
    loss = e.energy_from_probs(p_gen).mean() - m.config.entropy_weight * h_gen
    return loss, {"loss_g": loss.detach(), "entropy_gen": h_gen.detach()}


def energy_loss(m: VGAN, p_e: dict[str, Tensor], p_g: dict[str, Tensor], z: Tensor, batch: Tensor
                ) -> tuple[Tensor, dict[str, Tensor]]:
    """The energy step's loss of :meth:`VGAN.train_step` at ``p_e`` (the updated generator ``p_g``: no gradient)."""
    fake = torch.func.functional_call(m.G, p_g, (z,)).detach()
    return energy_terms(_energy_view(m, p_e), batch, fake, m.config.entropy_weight)


def energy_terms(e: Any, real: Tensor, fake: Tensor, entropy_weight: float) -> tuple[Tensor, dict[str, Tensor]]:
    """The bounded energy's loss mean E(x⁺) − mean E(x̃) − λ H̃(x⁺) (VGAN's and VCD's energy step) and its
    metrics; ``e``: the energy (``BoundedExpertHead``) or a functional view of it, ``fake``: constants."""
    p_real = e.probs(real)
    e_real = e.energy_from_probs(p_real).mean()
    e_fake = e(fake).mean()
    h_real = e.batch_entropy(p_real)
    loss = e_real - e_fake - entropy_weight * h_real
    return loss, {"loss_e": loss.detach(), "energy_real": e_real.detach(), "energy_fake": e_fake.detach(),
                  "entropy_real": h_real.detach()}
