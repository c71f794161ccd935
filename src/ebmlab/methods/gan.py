"""GAN — the non-saturating baseline (Goodfellow et al. 2014, §3 "in practice" variant).

Discriminator step: BCE with real = 1, fake = 0 on logits D(x). Generator step: minimise −log σ(D(G(z)))
(the non-saturating loss). ``n_critic`` discriminator steps per generator step, each on the same real batch
with fresh z. The discriminator is not an energy of a normalisable density, so ``has_energy`` is False.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..nets import build
from ..nets.build import Net
from .base import LatentGenerator, Method, adam, frozen, optimizer_step


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
    net: Net = "auto"  # network family: auto (MLP for vectors/2D, conv for images), mlp, conv, dcgan
    width: int = 32  # conv/dcgan width (channels of the first layer)


class GAN(LatentGenerator, Method):
    name = "gan"
    progress_keys = ("loss_d", "loss_g", "d_real", "d_fake")  # shown on the progress bar
    Config = GANConfig
    description = "non-saturating GAN (baseline)"

    def __init__(self, config: GANConfig, **kw):
        super().__init__(config, **kw)
        spec = self.spec
        c = config
        self.G = build.generator(spec, c.z_dim, net=c.net, hidden=c.g_hidden, act=c.act, width=c.width,
                                 batchnorm=build.default_batchnorm(spec, c.net)).to(self.device)
        self.D = build.critic(spec, 1, net=c.net, hidden=c.d_hidden, act=c.act, width=c.width).to(self.device)
        self.networks = {"generator": self.G, "discriminator": self.D}
        self.optimizers = {
            "generator": adam(self.G.parameters(), c.lr_g, (c.beta1, c.beta2)),
            "discriminator": adam(self.D.parameters(), c.lr_d, (c.beta1, c.beta2)),
        }

    def train_step(self, batch: Tensor, step: int) -> dict[str, float]:
        c, b = self.config, batch.shape[0]
        # --- discriminator step(s) ---
        for _ in range(c.n_critic):
            with torch.no_grad():
                fake = self.G(self.noise(b, c.z_dim))
            logit_real, logit_fake = self.D(batch).squeeze(1), self.D(fake).squeeze(1)
            loss_d = F.binary_cross_entropy_with_logits(logit_real, torch.ones_like(logit_real)) + \
                F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake))
            optimizer_step(self.optimizers["discriminator"], loss_d)
        # --- generator step (non-saturating) ---
        with frozen(self.D):
            logit_gen = self.D(self.G(self.noise(b, c.z_dim))).squeeze(1)
            loss_g = F.softplus(-logit_gen).mean()  # = −log σ(D(G(z)))
            optimizer_step(self.optimizers["generator"], loss_g)
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(),
                "d_real": logit_real.mean().item(), "d_fake": logit_fake.mean().item()}

    def features(self, x: Tensor) -> Tensor:
        return build.penultimate(self.D, x)
