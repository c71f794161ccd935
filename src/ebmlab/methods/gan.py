"""GAN — the non-saturating baseline (Goodfellow et al. 2014, §3 "in practice" variant).

Discriminator step: BCE with real = 1, fake = 0 on logits D(x). Generator step: minimise −log σ(D(G(z)))
(the non-saturating loss). ``n_critic`` discriminator steps per generator step, each on the same real batch
with fresh z. The discriminator is not an energy of a normalisable density, so ``has_energy`` is False.

Packing (PacGAN, Lin et al. 2018): with ``pack = m`` > 1 the discriminator judges m samples at once — m
consecutive examples of a batch, all real or all generated, concatenated along the first axis of a sample (2D
points: a vector of 2m coordinates; images: m·C channels) — and the losses above are taken per pack. Everything
else is unchanged, as in the paper (its networks only widen the discriminator's input). A batch of b examples forms
⌊b/m⌋ packs; the last b mod m examples are left out (none at the default batch sizes and m ∈ {2, 3, 4}). The
linear probe is refused for m > 1: a packed discriminator's features describe m samples, not one.

PacGAN's 2D architecture is expressible with the MLP options (``benchmarks/gan_recipe/pacgan.toml``): a
generator of four ReLU layers of 400 units with BatchNorm before each activation (``g_batchnorm=pre``), a
discriminator of three maxout layers of 200 units × 5 pieces (``d_maxout=5``), weights N(0, 0.02²)
(``init=normal``). Deviation: the
hidden linear layers before BatchNorm keep their bias (PacGAN's have none); BatchNorm's shift makes it redundant,
so the family of functions is the same.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any, Callable, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..nets import build
from ..nets.build import Net
from ..errors import EbmlabError
from ..rng import Tape
from .base import CompiledPair, LatentGenerator, Method, adam, frozen, optimizer_step


@dataclass(frozen=True)
class GANConfig:
    z_dim: int = 2
    g_hidden: tuple[int, ...] = (128, 128, 128)
    d_hidden: tuple[int, ...] = (128, 128, 128)
    act: Literal["relu", "leaky_relu", "tanh", "prelu", "elu", "softplus"] = "leaky_relu"
    lr_g: float = 1e-3
    lr_d: float = 1e-3
    beta1: float = 0.5
    beta2: float = 0.999
    n_critic: int = 1
    net: Net = "auto"
    width: int = 32
    pack: int = 1
    g_batchnorm: Literal["auto", "pre", "post", "off"] = "auto"
    d_maxout: int = 1
    init: Literal["default", "normal", "xavier"] = "default"
    d_spectral_norm: bool = False

    # range kind and meaning of each option not in ebmlab.options.SHARED (ebmlab.options explains)
    OPTIONS: ClassVar[dict[str, tuple[str, str]]] = {
        "g_batchnorm": ("choice", "generator BatchNorm: auto (conv yes, MLP no), pre/post the activation (MLP), off"),
        "d_maxout": ("int1", "maxout pieces of each discriminator MLP hidden layer (PacGAN: 5; 1: the activation act)"),
        "init": ("choice", "MLP weight initialisation: default (torch's), normal (N(0, 0.02^2), PacGAN/DCGAN), xavier"),
        "pack": ("int1", "PacGAN packing: samples the discriminator judges at once (1: no packing)"),
        "d_spectral_norm": ("any", "spectral normalisation of every discriminator layer (SNGAN, Miyato et al. 2018)"),
    }


class GAN(LatentGenerator, Method):
    name = "gan"
    compile_estimate = (1.42, 43.0)  # benchmarks/compile/results.md (1 thread, cold cache)
    progress_keys = ("loss_d", "loss_g", "d_real", "d_fake")  # shown on the progress bar
    Config = GANConfig
    description = "non-saturating GAN (baseline)"

    def __init__(self, config: GANConfig, **kw):
        super().__init__(config, **kw)
        self._pair: CompiledPair | None = None  # the compiled step (run option compile)
        spec = self.spec
        c = config
        bn = build.default_batchnorm(spec, c.net) if c.g_batchnorm == "auto" else c.g_batchnorm != "off"
        g_opts = {"init": c.init} | ({"bn_position": c.g_batchnorm} if c.g_batchnorm in ("pre", "post") else {})
        try:
            self.G = build.generator(spec, c.z_dim, net=c.net, hidden=c.g_hidden, act=c.act, width=c.width,
                                     batchnorm=bn, **g_opts).to(self.device)
            packed = replace(spec, shape=(c.pack * spec.shape[0], *spec.shape[1:]))  # m samples side by side
            self.D = build.critic(packed, 1, net=c.net, hidden=c.d_hidden, act=c.act, width=c.width,
                                  maxout=c.d_maxout, init=c.init, spectral_norm=c.d_spectral_norm).to(self.device)
        except ValueError as e:  # an MLP option with a conv network, or an out-of-range value
            raise EbmlabError(f"gan: {e}") from None
        self.networks = {"generator": self.G, "discriminator": self.D}
        self.optimizers = {
            "generator": adam(self.G.parameters(), c.lr_g, (c.beta1, c.beta2)),
            "discriminator": adam(self.D.parameters(), c.lr_d, (c.beta1, c.beta2)),
        }

    def packed(self, x: Tensor) -> Tensor:
        """[b, *shape] → [b/m, m·shape[0], *shape[1:]]: m consecutive samples concatenated (b a multiple of m)."""
        m = self.config.pack
        return x if m == 1 else x.reshape(x.shape[0] // m, m * x.shape[1], *x.shape[2:])

    def train_step(self, batch: Tensor, step: int) -> dict[str, Tensor | float]:
        c = self.config
        b = (batch.shape[0] // c.pack) * c.pack
        if b == 0:
            raise EbmlabError(f"pack={c.pack} needs batches of at least {c.pack} examples, got {batch.shape[0]}")
        batch = batch[:b]
        # --- discriminator step(s) ---
        for _ in range(c.n_critic):
            with torch.no_grad():
                fake = self.G(self.noise(b, c.z_dim))
            logit_real, logit_fake = self.D(self.packed(batch)).squeeze(1), self.D(self.packed(fake)).squeeze(1)
            loss_d = F.binary_cross_entropy_with_logits(logit_real, torch.ones_like(logit_real)) + \
                F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake))
            optimizer_step(self.optimizers["discriminator"], loss_d, self.recipe)
        # --- generator step (non-saturating) ---
        with frozen(self.D):
            logit_gen = self.D(self.packed(self.G(self.noise(b, c.z_dim)))).squeeze(1)
            loss_g = F.softplus(-logit_gen).mean()  # = −log σ(D(G(z)))
            optimizer_step(self.optimizers["generator"], loss_g, self.recipe)
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
                "d_real": logit_real.mean().detach(), "d_fake": logit_fake.mean().detach()}

    # --- the compiled step (run option compile, ebmlab.compiled) ------------------------------------------------
    def compile_blocker(self) -> str | None:
        """The compiled step is the eager step's arithmetic as one pure function (``base.pair_core`` with the losses
        :func:`d_loss` and :func:`g_loss`); it does not carry in-place buffer writes (BatchNorm statistics:
        net=mlp with g_batchnorm off, the 2D default, writes none) nor the run's gradient clip."""
        return CompiledPair.blocker(self)

    def compiled_train_step(self, batch: Tensor, step: int, noise: Tape, compile: Callable[..., Any]
                            ) -> dict[str, Tensor | float]:
        """:meth:`train_step` with its arithmetic — every discriminator step and the generator step, their
        gradients (``torch.func``) and Adam updates — compiled as one function; the latents are the eager step's
        draws (``noise``)."""
        c = self.config
        b = (batch.shape[0] // c.pack) * c.pack
        if b == 0:
            raise EbmlabError(f"pack={c.pack} needs batches of at least {c.pack} examples, got {batch.shape[0]}")
        if self._pair is None:
            self._pair = CompiledPair(self, self.D, "discriminator", self.G, "generator")
        zs = [self.noise(b, c.z_dim, noise) for _ in range(c.n_critic + 1)]
        out: dict[str, Tensor | float] = {**self._pair(functools.partial(d_loss, self), functools.partial(g_loss, self),
                                                      zs, compile, batch[:b])}
        return out

    def features(self, x: Tensor) -> Tensor:
        if self.config.pack > 1:
            raise EbmlabError(f"a packed discriminator (pack={self.config.pack}) has features of {self.config.pack} "
                              f"samples at once, not of one; the linear probe needs pack=1")
        return build.penultimate(self.D, x)



def d_loss(m: GAN, p_d: dict[str, Tensor], p_g: dict[str, Tensor], z: Tensor, batch: Tensor
           ) -> tuple[Tensor, dict[str, Tensor]]:
    """The discriminator's loss of :meth:`GAN.train_step` at parameters ``p_d`` (the generator's ``p_g``, no
    gradient), as the compiled step computes it."""
    call = torch.func.functional_call
    fake = m.packed(call(m.G, p_g, (z,)).detach())
    logit_real, logit_fake = call(m.D, p_d, (m.packed(batch),)).squeeze(1), call(m.D, p_d, (fake,)).squeeze(1)
    loss = F.binary_cross_entropy_with_logits(logit_real, torch.ones_like(logit_real)) + \
        F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake))
    return loss, {"loss_d": loss.detach(), "d_real": logit_real.mean().detach(), "d_fake": logit_fake.mean().detach()}


def g_loss(m: GAN, p_g: dict[str, Tensor], p_d: dict[str, Tensor], z: Tensor, batch: Tensor
           ) -> tuple[Tensor, dict[str, Tensor]]:
    """The generator's non-saturating loss of :meth:`GAN.train_step` through the updated discriminator ``p_d``."""
    call = torch.func.functional_call
    loss = F.softplus(-call(m.D, p_d, (m.packed(call(m.G, p_g, (z,))),)).squeeze(1)).mean()
    return loss, {"loss_g": loss.detach()}
