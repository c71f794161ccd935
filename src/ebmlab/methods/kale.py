"""KALE / GEBM — "Generalized Energy Based Models" (Arbel, Zhou, Gretton; arXiv 2003.05033, ICLR 2021).

Model: Q(dx) ∝ exp(−E(x)) G(dx) — the generator G is the base measure and the energy re-weights it; both are
used at sampling time (latent MCMC on U(z) = ½‖z‖² + T·E(G(z)), see :mod:`ebmlab.guided`).

Training (paper Algorithm 1):
- KALE(P‖G) = sup_{E,A} −E_P[E + A] − E_G[exp(−E − A)] + 1 ≤ KL(P‖G), equal when the log-ratio is in the class
  (paper eq. 4); A is a learned scalar (the log-partition), initialised at its Monte-Carlo optimum
  log mean exp(−E(G(z))) on the first step.
- Energy step (``n_critic`` per base step; ``n_critic_burst`` at the start and every ``burst_every`` base steps):
  minimise mean_P[E + A] + mean_G[exp(−E − A)] − 1 + λ·E‖∇_x E(x̂)‖² on real/fake interpolates.
- Base step: minimise −mean_P[E] − log mean_z exp(−E(G(z))) (the KALE estimate at the batch-optimal A; batch
  logsumexp, differentiable in G) — a self-normalised importance-weighted energy descent.

Stability tricks of the original code, and what is adopted:
- energy floored at −10: available (``energy_floor``), off by default — with the gradient penalty the 2D energies
  stay bounded in our runs and a floor changes the model's density;
- energy gradients squashed to 2g/(1+g²): not adopted (it changes the objective's gradient field);
- A initialised at its Monte-Carlo optimum: adopted (on the first step, from one large base batch);
- hidden ×0.8 LR decays: not adopted (our toy budgets are short; a schedule can be added through the optimizer).
The real batch of a train step is reused by every energy step of that train step (fresh z each time).

Sampling defaults for the 2D toys: kinetic Langevin (ABOBA) with γ = 1e-3 (h = 0.063), κ = 1, 500 steps, T = 1.
The paper-era image settings (γ = 1e-5, κ = 0.04, 1000 steps, T = 100) are for 100-d latents and images; set
both γ and κ explicitly — the original code's argparse defaults swap them.
The exact NLL of the GEBM density needs the base generator's density, which has no closed form here, so it is
not reported; base-only and energy-guided sample metrics are reported side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..bounds.kale import base_loss, interpolate_gradient_penalty, kale_energy_loss, optimal_log_partition
from ..samplers.latent import GuidedConfig, latent_samples
from ..nets import build
from ..nets.build import Net
from ..distributed import gather
from .base import LatentGenerator, Method, adam, frozen, optimizer_step


class Scalar(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.zeros(()))


@dataclass(frozen=True)
class KALEConfig:
    z_dim: int = 2
    g_hidden: tuple[int, ...] = (128, 128, 128)
    e_hidden: tuple[int, ...] = (128, 128, 128)
    act: Literal["relu", "leaky_relu", "tanh", "prelu", "elu", "softplus"] = "leaky_relu"
    lr_g: float = 2e-4
    lr_e: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    n_critic: int = 5
    n_critic_burst: int = 100
    burst_every: int = 500
    penalty: float = 1.0
    energy_floor: float | None = None
    # sampling (energy-guided latent MCMC); sampler="none" samples the base generator only
    sampler: Literal["kinetic", "ula", "mala", "hmc", "none"] = "kinetic"
    inverse_temperature: float = 1.0
    mcmc_steps: int = 500
    mcmc_step_size: float = 1e-3
    mcmc_friction: float = 1.0
    net: Net = "auto"  # network family: auto (MLP for vectors/2D, conv for images), mlp, conv, dcgan
    width: int = 32  # conv/dcgan width (channels of the first layer)


# range kind and meaning of each option above not in ebmlab.options.SHARED (ebmlab.options explains)
OPTIONS: dict[str, tuple[str, str]] = {
    "n_critic_burst": ("int1", "energy updates per generator update during a burst"),
    "burst_every": ("int1", "steps between bursts of n_critic_burst energy updates"),
    "penalty": ("nonneg", "weight of the energy's gradient penalty"),
    "energy_floor": ("finite", "lower clamp of the energy (none: no clamp)"),
    "sampler": ("any", "energy-guided latent sampler (none: the base generator only)"),
    "inverse_temperature": ("pos", "inverse temperature of the energy in the latent target"),
    "mcmc_steps": ("int1", "MCMC steps of the latent sampler"),
    "mcmc_step_size": ("pos", "step size of the latent sampler"),
    "mcmc_friction": ("nonneg", "friction of kinetic Langevin"),
}


class KALE(LatentGenerator, Method):
    name = "kale"
    sampling_networks = ("generator", "energy", "log_partition")  # energy-guided samples
    progress_keys = ("kale", "energy_real", "energy_gen")  # shown on the progress bar
    Config = KALEConfig
    options = OPTIONS
    sample_sets = {"base": "the base generator alone"}
    bookkeeping = frozenset({"base_steps"})
    description = "KALE/GEBM: base generator + energy, KALE loss, energy-guided latent MCMC sampling"
    has_energy = True
    energy_defines_density = False  # the model is exp(−E)·G, not exp(−E)

    def __init__(self, config: KALEConfig, **kw):
        super().__init__(config, **kw)
        spec = self.spec
        c = config
        self.G = build.generator(spec, c.z_dim, net=c.net, hidden=c.g_hidden, act=c.act, width=c.width,
                                 batchnorm=build.default_batchnorm(spec, c.net)).to(self.device)
        self.E = build.critic(spec, 1, net=c.net, hidden=c.e_hidden, act=c.act, width=c.width).to(self.device)
        self.A = Scalar().to(self.device)
        self.networks = {"generator": self.G, "energy": self.E, "log_partition": self.A}
        self.optimizers = {
            "generator": adam(self.G.parameters(), c.lr_g, (c.beta1, c.beta2)),
            "energy": adam(list(self.E.parameters()) + list(self.A.parameters()), c.lr_e, (c.beta1, c.beta2)),
        }
        self.base_steps = 0
        self.a_initialised = False

    def energy(self, x: Tensor) -> Tensor:
        e = self.E(x).squeeze(1)
        if self.config.energy_floor is not None:
            e = e.clamp_min(self.config.energy_floor)
        return e

    def train_step(self, batch: Tensor, step: int) -> dict[str, Tensor | float]:
        c, b = self.config, batch.shape[0]
        if not self.a_initialised:  # A at its Monte-Carlo optimum log mean exp(−E(G(z)))
            with torch.no_grad():
                self.A.value.copy_(optimal_log_partition(gather(self.energy(self.G(self.noise(100 * b, c.z_dim))))))
            self.a_initialised = True
        # --- energy steps ---
        n_e = c.n_critic_burst if self.base_steps % c.burst_every == 0 else c.n_critic
        for _ in range(n_e):
            with torch.no_grad():
                fake = self.G(self.noise(b, c.z_dim))
            e_real, e_fake = self.energy(batch), self.energy(fake)
            loss_kale = kale_energy_loss(e_real, e_fake, self.A.value)
            gp = interpolate_gradient_penalty(self.energy, batch, fake, generator=self.rng)
            optimizer_step(self.optimizers["energy"], loss_kale + c.penalty * gp, self.recipe)
        # --- base (generator) step ---
        with frozen(self.E):
            e_gen = self.energy(self.G(self.noise(b, c.z_dim)))
            with torch.no_grad():
                e_data = self.energy(batch)  # constant in G: only makes the value the KALE estimate
            loss_g = base_loss(e_data, e_gen)
            optimizer_step(self.optimizers["generator"], loss_g, self.recipe)
        self.base_steps += 1
        out = {"kale_base": -loss_g.detach(), "A": self.A.value.detach(), "energy_real": e_data.mean().detach(),
               "energy_gen": e_gen.mean().detach(), "n_energy_steps": float(n_e)}
        if n_e:
            out.update({"kale": -loss_kale.detach(), "gp": gp.detach()})
        return out

    def guided_config(self) -> GuidedConfig:
        c = self.config
        return GuidedConfig(c.sampler if c.sampler != "none" else "kinetic", c.inverse_temperature, c.mcmc_steps,
                            c.mcmc_step_size, c.mcmc_friction)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        gen = generator or self.rng
        if self.config.sampler == "none":
            with torch.no_grad():
                return self.G(self.noise(n, self.config.z_dim, gen))
        x, _ = latent_samples(self.generate, self.energy, self.latent_dim, n, self.guided_config(), generator=gen,
                              device=self.device)
        return x

    def evaluate_extra(self, dataset: Any) -> dict[str, Any]:
        """2500 samples of the base generator alone, for the evaluator to score (metrics ``base_*``) beside the
        energy-guided ones of the main report."""
        gen = torch.Generator(device=self.device).manual_seed(12345)
        with torch.no_grad():
            x = self.G(self.noise(2500, self.config.z_dim, gen))
        return {"samples": {"base": x}}

    def features(self, x: Tensor) -> Tensor:
        return build.penultimate(self.E, x)

    def extra_state(self) -> dict[str, Any]:
        return {"base_steps": self.base_steps, "a_initialised": self.a_initialised}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.base_steps = int(state.get("base_steps", 0))
        self.a_initialised = bool(state.get("a_initialised", False))
