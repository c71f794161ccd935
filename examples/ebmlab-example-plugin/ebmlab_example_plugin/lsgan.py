"""LSGAN — least-squares GAN (Mao et al. 2017, eq. 2 with a = 0, b = c = 1): the discriminator minimises
½ E[(D(x) − 1)²] + ½ E[D(G(z))²], the generator ½ E[(D(G(z)) − 1)²].

Written against ebmlab's method contract: a Config whose OPTIONS give each option's range and meaning (the options
ebmlab shares — z_dim, g_hidden, lr_g, ... — need none), networks from ebmlab.nets.build, optimizer steps through
ebmlab.methods.base.optimizer_step (so the run's recipe — gradient averaging, clipping, EMA — applies), all noise
from self.rng, metrics returned as detached 0-d tensors; capturable as it stands (no host reads in a step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from ebmlab.methods.base import LatentGenerator, Method, adam, frozen, optimizer_step
from ebmlab.nets import build
from ebmlab.nets.build import Net  # the network families' Literal: a shared option keeps its shared type


@dataclass(frozen=True)
class LSGANConfig:
    z_dim: int = 2
    g_hidden: tuple[int, ...] = (128, 128)
    d_hidden: tuple[int, ...] = (128, 128)
    lr_g: float = 1e-3
    lr_d: float = 1e-3
    beta1: float = 0.5
    beta2: float = 0.999
    net: Net = "auto"
    width: int = 32
    target: float = 1.0

    OPTIONS: ClassVar[dict[str, tuple[str, str]]] = {
        "target": ("pos", "the value D is trained towards on real data and G towards on generated data (b = c)"),
    }


class LSGAN(LatentGenerator, Method):
    name = "lsgan"
    Config = LSGANConfig
    description = "least-squares GAN (example plugin: ebmlab-example-plugin)"
    progress_keys = ("loss_d", "loss_g")

    def __init__(self, config: LSGANConfig, **kw):
        super().__init__(config, **kw)
        c = config
        self.G = build.generator(self.spec, c.z_dim, net=c.net, hidden=c.g_hidden, width=c.width).to(self.device)
        self.D = build.critic(self.spec, 1, net=c.net, hidden=c.d_hidden, width=c.width).to(self.device)
        self.networks = {"generator": self.G, "discriminator": self.D}
        self.optimizers = {"generator": adam(self.G.parameters(), c.lr_g, (c.beta1, c.beta2)),
                           "discriminator": adam(self.D.parameters(), c.lr_d, (c.beta1, c.beta2))}

    def train_step(self, batch: Tensor, step: int) -> dict[str, Tensor | float]:
        b, c = batch.shape[0], self.config
        # --- discriminator step ---
        fake = self.G(self.noise(b, c.z_dim)).detach()
        loss_d = 0.5 * ((self.D(batch) - c.target) ** 2).mean() + 0.5 * (self.D(fake) ** 2).mean()
        optimizer_step(self.optimizers["discriminator"], loss_d, self.recipe)
        # --- generator step ---
        with frozen(self.D):
            loss_g = 0.5 * ((self.D(self.G(self.noise(b, c.z_dim))) - c.target) ** 2).mean()
            optimizer_step(self.optimizers["generator"], loss_g, self.recipe)
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}
