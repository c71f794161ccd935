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
- A initialised at its Monte-Carlo optimum: adopted (on the first step, from 100 batches of base draws, the
  networks in eval mode, as the release);
- hidden ×0.8 LR decays: not adopted (our toy budgets are short; a schedule can be added through the optimizer).
The real batch of a train step is reused by every energy step of that train step (fresh z each time).

Sampling defaults for the 2D toys: kinetic Langevin (ABOBA) with γ = 1e-3 (h = 0.063), κ = 1, 500 steps, T = 1.
The paper-era image settings (γ = 1e-5, κ = 0.04, 1000 steps, T = 100) are for 100-d latents and images; set
both γ and κ explicitly — the original code's argparse defaults swap them.
The exact NLL of the GEBM density needs the base generator's density, which has no closed form here, so it is
not reported; base-only and energy-guided sample metrics are reported side by side.

Fixed base (``base=gaussian|flow``; paper §3.1 and its density experiments): the base is a distribution with a
density, held fixed while the energy trains, and KALE becomes contrastive maximum likelihood of the energy-based
model exp(−E(x))·base(x)/Z: at the optimum exp(−E − A) = dP/dbase, so with the log-ratio in the energy class the
model is the data distribution, and for an exponential family of energies the optimum matches the data's moments
(the maximum-likelihood estimate). ``gaussian`` is N(0, base_std² I) in the data's coordinates (a user's vectors
are standardised); ``flow`` is a RealNVP (``nets/flow.py``) trained by maximum likelihood for the first
``flow_steps`` steps of the run and then frozen, as the paper trains its flow before the energy. Each later step is
one energy step (no generator, so no ``n_critic`` or bursts). Evaluation adds the test NLL of the flow alone
(``base_nll``, exact) and of the model (``nll_ebm``), whose log Z = log E_base[exp(−E)] is estimated by importance
sampling from the base with ``log_z_samples`` draws (``log_z_ebm`` with its delta-method standard error; log of an
unbiased estimate, so biased low by about se²/2, which makes ``nll_ebm`` optimistic by as much). On 2D data the
model's density is known up to Z, so the quadrature metrics (``nll``) are computed as well. Fixed bases are for
flat data (2D toys, a user's vectors); a trained ebmlab run as the base is not offered (its checkpoint would have
to travel with this run's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal

import torch
from torch import Tensor, nn

from ..bounds.kale import base_loss, interpolate_gradient_penalty, kale_energy_loss, optimal_log_partition
from ..samplers.latent import GuidedConfig, latent_samples
from ..errors import EbmlabError
from ..metadata import Metric
from ..metadata import SamplerChoice
from ..nets import build
from ..nets.flow import FlowBase, GaussianBase
from ..nets.build import Net
from ..nets.calls import in_blocks
from ..distributed import gather
from ..rng import Noise, Tape
from .base import CompiledPair, LatentGenerator, Method, OptimizerView, OptRead, UpdateRule, adam, frozen, in_mode, optimizer_step, run_clip
from ..data.base import Dataset


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
    e_spectral_norm: bool = False
    # sampling (energy-guided latent MCMC); sampler="none" samples the base generator only
    sampler: SamplerChoice = "kinetic"
    inverse_temperature: float = 1.0
    mcmc_steps: int = 500
    mcmc_step_size: float = 1e-3
    mcmc_friction: float = 1.0
    mcmc_compile: Literal["off", "on", "auto"] = "off"
    mcmc_decay_every: int = 0
    mcmc_decay: float = 0.1
    net: Net = "auto"
    width: int = 32
    # fixed base (contrastive maximum likelihood of exp(−E)·base): module docstring
    base: Literal["generator", "gaussian", "flow"] = "generator"
    base_std: float = 1.0
    flow_layers: int = 6
    flow_hidden: tuple[int, ...] = (64, 64)
    flow_steps: int = 2000
    lr_flow: float = 1e-3
    log_z_samples: int = 100_000

    # range kind and meaning of each option not in ebmlab.options.SHARED (ebmlab.options explains)
    OPTIONS: ClassVar[dict[str, tuple[str, str]]] = {
        "n_critic_burst": ("int1", "energy updates per generator update during a burst"),
        "burst_every": ("int1", "steps between bursts of n_critic_burst energy updates"),
        "penalty": ("nonneg", "weight of the energy's gradient penalty"),
        "energy_floor": ("finite", "lower clamp of the energy (none: no clamp)"),
        "e_spectral_norm": ("any", "spectral normalisation of every layer of the energy (GEBM's dcgan-sn and "
                                   "resnet-sn critics)"),
        # the sampler's settings: GuidedConfig's names, ranges and meanings (one vocabulary), and sampler=none
        **{k: v for k, v in GuidedConfig.OPTIONS.items() if k != "mcmc_leapfrog"},
        "sampler": ("choice", "energy-guided latent sampler: kinetic (Langevin), ula, mala, hmc; none: the base "
                           "generator only"),
        "base": ("choice", "the base: a trained generator (adversarial KALE), or a fixed distribution with a density — "
                        "gaussian N(0, base_std² I) or a flow fitted by maximum likelihood first (contrastive MLE)"),
        "base_std": ("pos", "base=gaussian: its standard deviation"),
        "flow_layers": ("int1", "base=flow: coupling layers of the RealNVP"),
        "flow_hidden": ("ints1", "base=flow: hidden widths of each coupling layer's MLP"),
        "flow_steps": ("int0", "base=flow: maximum-likelihood steps of the flow before the energy trains on it"),
        "lr_flow": ("pos", "base=flow: Adam learning rate of the flow"),
        "log_z_samples": ("int1", "fixed base: base draws behind the importance-sampling estimate of log Z"),
    }

    def __post_init__(self) -> None:
        GuidedConfig(mcmc_compile=self.mcmc_compile)  # its value (whether this machine can compile: train checks)
        if self.sampler != "none":  # the sampler's settings, refused now rather than at the first evaluation
            GuidedConfig(self.sampler, self.inverse_temperature, self.mcmc_steps, self.mcmc_step_size,
                         self.mcmc_friction, mcmc_decay_every=self.mcmc_decay_every, mcmc_decay=self.mcmc_decay)


class KALE(LatentGenerator, Method):
    name = "kale"
    compile_estimate = (1.46, 77.0)  # benchmarks/compile/results.md (1 thread, cold cache)
    sampling_networks = ("generator", "energy", "log_partition")  # energy-guided samples
    progress_keys = ("kale", "energy_real", "energy_gen")  # shown on the progress bar
    Config = KALEConfig
    sample_sets = {"base": "the base generator alone"}
    bookkeeping = frozenset({"base_steps", "log_z_ebm_samples"})
    metrics = {  # fixed base only
        "nll_ebm": Metric("density", "nats", "↓", "test NLL of exp(−E)·base, log Z by importance sampling", True),
        "base_nll": Metric("density", "nats", "↓", "test NLL of the fixed base alone (exact)", True),
        "nll_gain": Metric("density", "nats", "↑", "base_nll − nll_ebm on the same test points (paired)"),
        "log_z_ebm": Metric("density", "nats", "", "log E_base exp(−E) by importance sampling"),
        "log_z_ebm_bias": Metric("density", "nats", "", "expected shortfall of log Ẑ (−se²/2, delta method)"),
        "log_z_ebm_ess": Metric("density", "%", "", "effective sample size of the log Z weights"),
    }
    description = "KALE/GEBM: base generator + energy, KALE loss, energy-guided latent MCMC sampling"
    has_energy = True
    has_guided_sampler = True
    energy_defines_density = False  # the model is exp(−E)·G, not exp(−E)

    def __init__(self, config: KALEConfig, **kw):
        super().__init__(config, **kw)
        spec = self.spec
        c = config
        self.fixed = c.base != "generator"
        self.base_steps = 0
        self.a_initialised = False
        self._compiled: tuple[Any, ...] | None = None  # compiled energy and generator updates (run option compile)
        if self.fixed:
            self._init_fixed_base()
            return
        self.G = build.generator(spec, c.z_dim, net=c.net, hidden=c.g_hidden, act=c.act, width=c.width,
                                 batchnorm=build.default_batchnorm(spec, c.net)).to(self.device)
        self.E = build.critic(spec, 1, net=c.net, hidden=c.e_hidden, act=c.act, width=c.width,
                              spectral_norm=c.e_spectral_norm).to(self.device)
        self.A = Scalar().to(self.device)
        self.networks = {"generator": self.G, "energy": self.E, "log_partition": self.A}
        self.optimizers = {
            "generator": adam(self.G.parameters(), c.lr_g, (c.beta1, c.beta2)),
            "energy": adam(list(self.E.parameters()) + list(self.A.parameters()), c.lr_e, (c.beta1, c.beta2)),
        }

    def _init_fixed_base(self) -> None:
        spec, c = self.spec, self.config
        if len(spec.shape) != 1:
            raise EbmlabError(f"base={c.base} needs a density in data space, for flat data (2D toys, vectors); this data "
                              f"set holds {spec.kind} of shape {spec.shape} — use base=generator (adversarial KALE)")
        d = spec.shape[0]
        if c.base == "flow":
            if d < 2:
                raise EbmlabError(f"base=flow splits the coordinates in two and needs at least 2; this data has {d}")
            self.G = FlowBase(d, c.flow_layers, c.flow_hidden).to(self.device)
        else:
            self.G = GaussianBase(d, c.base_std).to(self.device)
        self.E = build.critic(spec, 1, net=c.net, hidden=c.e_hidden, act=c.act, width=c.width,
                              spectral_norm=c.e_spectral_norm).to(self.device)
        self.A = Scalar().to(self.device)
        self.networks = {"base": self.G, "energy": self.E, "log_partition": self.A}
        self.optimizers = {"energy": adam(list(self.E.parameters()) + list(self.A.parameters()), c.lr_e,
                                          (c.beta1, c.beta2))}
        if c.base == "flow":
            self.optimizers["base"] = adam(self.G.parameters(), c.lr_flow, (0.9, 0.999))
        self.energy_defines_density = True  # exp(−E)·base has a density known up to Z (density_energy)
        self.sampling_networks = ("base", "energy", "log_partition")

    @property
    def latent_dim(self) -> int:
        return self.spec.shape[0] if self.fixed else self.config.z_dim

    def density_energy(self, x: Tensor) -> Tensor:
        """−log of the unnormalised model density: E(x) − log base(x) with a fixed base (the energy alone is the
        tilt that the latent samplers use)."""
        if not self.fixed:
            return self.energy(x)
        return self.energy(x) - self.base_log_prob(x)

    def base_log_prob(self, x: Tensor) -> Tensor:
        """log base(x) of a fixed base (``nets.flow``: a Gaussian or a flow)."""
        assert isinstance(self.G, (FlowBase, GaussianBase)), "a fixed base has a density; a generator has none"
        return self.G.log_prob(x)

    def energy(self, x: Tensor) -> Tensor:
        e = self.E(x).squeeze(1)
        if self.config.energy_floor is not None:
            e = e.clamp_min(self.config.energy_floor)
        return e

    def _fixed_base_step(self, batch: Tensor) -> dict[str, Tensor | float]:
        c, b = self.config, batch.shape[0]
        if c.base == "flow" and self.base_steps < c.flow_steps:
            # --- phase 1: the flow by maximum likelihood ---
            loss = -self.base_log_prob(batch).mean()
            optimizer_step(self.optimizers["base"], loss, self.recipe)
            self.base_steps += 1
            return {"base_nll": loss.detach()}
        # --- phase 2: one energy step against the fixed base (no penalty term when its weight is 0) ---
        self._init_log_partition(b)
        loss_kale, gp, e_real, e_fake = self._energy_step(batch, with_penalty=bool(c.penalty))
        out: dict[str, Tensor | float] = {"kale": -loss_kale.detach(), "A": self.A.value.detach(),
                                          "energy_real": e_real.mean().detach(), "energy_gen": e_fake.mean().detach()}
        if gp is not None:
            out["gp"] = gp.detach()
        return out

    def _init_log_partition(self, b: int) -> None:
        """A at its Monte-Carlo optimum log mean exp(−E(G(z))) from 100·b base draws, once: the networks in eval
        mode, b draws a call (the release's ``init_log_partition``: 100 batches, both networks in eval mode). One
        call of 100·b rows held 18 GB of activations for GEBM's resnet at b = 128 on 32×32 images."""
        if not self.a_initialised:
            z = self.noise(100 * b, self.latent_dim)
            with in_mode(False, self.G, self.E), torch.no_grad():
                e = in_blocks(lambda zb: self.energy(self.G(zb)), z, b)
                self.A.value.copy_(optimal_log_partition(gather(e)))
            self.a_initialised = True

    def _energy_step(self, batch: Tensor, *, with_penalty: bool = True) -> tuple[Tensor, Tensor | None, Tensor, Tensor]:
        """One update of the energy and A on the KALE loss (+ penalty·GP) against fresh base samples."""
        with torch.no_grad():
            fake = self.G(self.noise(batch.shape[0], self.latent_dim))
        e_real, e_fake = self.energy(batch), self.energy(fake)
        loss_kale = kale_energy_loss(e_real, e_fake, self.A.value)
        gp = interpolate_gradient_penalty(self.energy, batch, fake, generator=self.rng) if with_penalty else None
        optimizer_step(self.optimizers["energy"], loss_kale if gp is None else loss_kale + self.config.penalty * gp,
                       self.recipe)
        return loss_kale, gp, e_real, e_fake

    def step_kind(self, step: int) -> str | None:
        """A burst of ``n_critic_burst`` energy updates, or the usual ``n_critic`` (the fixed base: one kind)."""
        if self.fixed:
            return "flow" if self.config.base == "flow" and self.base_steps < self.config.flow_steps else "step"
        return "burst" if self.base_steps % self.config.burst_every == 0 else "step"

    def replayed(self, kind: str) -> None:
        if not self.fixed or kind == "flow":  # the generator's and the flow's steps count themselves
            self.base_steps += 1

    def train_step(self, batch: Tensor, step: int) -> dict[str, Tensor | float]:
        if self.fixed:
            return self._fixed_base_step(batch)
        c, b = self.config, batch.shape[0]
        self._init_log_partition(b)
        # --- energy steps ---
        n_e = c.n_critic_burst if self.base_steps % c.burst_every == 0 else c.n_critic
        for _ in range(n_e):
            loss_kale, gp, _, _ = self._energy_step(batch)
        # --- base (generator) step ---
        with frozen(self.E):
            e_gen = self.energy(self.G(self.noise(b, c.z_dim)))
            with torch.no_grad():
                e_data = self.energy(batch)  # constant in G: only makes the value the KALE estimate
            loss_g = base_loss(e_data, e_gen)
            optimizer_step(self.optimizers["generator"], loss_g, self.recipe)
        self.base_steps += 1
        out: dict[str, Tensor | float] = {"kale_base": -loss_g.detach(), "A": self.A.value.detach(),
                                          "energy_real": e_data.mean().detach(),
               "energy_gen": e_gen.mean().detach(), "n_energy_steps": float(n_e)}
        if n_e:
            assert gp is not None
            out.update({"kale": -loss_kale.detach(), "gp": gp.detach()})
        return out

    # --- the compiled step (run option compile, ebmlab.compiled) ------------------------------------------------
    def compile_blocker(self) -> str | None:
        """The adversarial KALE's step compiled as two pure functions — one energy update (:func:`energy_update`,
        the gradient penalty's input gradient by ``torch.func``, so its double backward is traced too) called
        n_critic or n_critic_burst times, and the generator update (:func:`generator_update`). With a fixed base
        (base=gaussian|flow), the energy update alone against the base's draws (without the penalty's input
        gradient when its weight is 0), the base's draws made before it; a flow base's maximum-likelihood steps
        (phase 1) and its draws run eagerly (zuko's transforms do not trace under ``torch.func``)."""
        return CompiledPair.blocker(self)

    def compiled_train_step(self, batch: Tensor, step: int, noise: Tape, compile: Callable[..., Any]
                            ) -> dict[str, Tensor | float]:
        from ..rng import rand

        c, b = self.config, batch.shape[0]
        if self.fixed:
            return self._compiled_fixed_step(batch, noise, compile)
        if self._compiled is None:
            energy_view = OptimizerView(nn.ModuleDict({"E": self.E, "A": self.A}), self.optimizers["energy"], run_clip(self))
            self._compiled = (compile(energy_update), compile(generator_update), energy_view,
                              OptimizerView(self.G, self.optimizers["generator"], run_clip(self)))
        e_step, g_step, ve, vg = self._compiled
        p_g = {k: v.detach() for k, v in self.G.named_parameters()}
        n_e = c.n_critic_burst if self.base_steps % c.burst_every == 0 else c.n_critic
        out: dict[str, Tensor | float] = {}
        for _ in range(n_e):
            z = self.noise(b, self.latent_dim, noise)
            alpha = rand((b,) + (1,) * (batch.dim() - 1), generator=noise, dtype=batch.dtype, device=batch.device)
            new, metrics = e_step(self, ve.read(), ve.rule, p_g, batch, z, alpha)
            ve.write(*new)
            out.update(metrics)
        p_e = {k: v.detach() for k, v in self.E.named_parameters()}
        new, metrics = g_step(self, vg.read(), vg.rule, p_e, self.A.value.detach(), batch,
                              self.noise(b, c.z_dim, noise))
        vg.write(*new)
        self.base_steps += 1
        return {**out, **metrics, "n_energy_steps": float(n_e)}  # the energies of the base step, as eager reports

    def _compiled_fixed_step(self, batch: Tensor, noise: Tape, compile: Callable[..., Any]
                             ) -> dict[str, Tensor | float]:
        """:meth:`_fixed_base_step` compiled: one energy update against the fixed base's draws (:func:`energy_update`;
        no penalty draw at penalty 0), the draws made eagerly before it; a flow's maximum-likelihood steps (phase 1)
        run eagerly."""
        from ..rng import rand

        c, b = self.config, batch.shape[0]
        if c.base == "flow" and self.base_steps < c.flow_steps:
            return self._fixed_base_step(batch)  # zuko's transforms do not trace under torch.func: eager, no draws
        if self._compiled is None:
            self._compiled = (compile(energy_update), OptimizerView(nn.ModuleDict({"E": self.E, "A": self.A}),
                                                                    self.optimizers["energy"], run_clip(self)))
        e_step, ve = self._compiled
        with torch.no_grad():
            fake = self.G(self.noise(b, self.latent_dim, noise))  # the fixed base's draws (a flow: eager, as above)
        alpha = rand((b,) + (1,) * (batch.dim() - 1), generator=noise, dtype=batch.dtype,
                     device=batch.device) if c.penalty else None
        new, metrics = e_step(self, ve.read(), ve.rule, None, batch, fake, alpha)
        ve.write(*new)
        return {**metrics, "A": self.A.value.detach()}

    @property
    def samples_guided(self) -> bool:
        return self.config.sampler != "none"

    def guided_config(self) -> GuidedConfig:
        c = self.config
        return GuidedConfig(c.sampler if c.sampler != "none" else "kinetic", c.inverse_temperature, c.mcmc_steps,
                            c.mcmc_step_size, c.mcmc_friction, mcmc_compile=c.mcmc_compile,
                            mcmc_decay_every=c.mcmc_decay_every, mcmc_decay=c.mcmc_decay)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        gen = generator or self.rng
        if self.config.sampler == "none":
            with torch.no_grad():
                return self.G(self.noise(n, self.latent_dim, gen))
        x, _ = latent_samples(self.generate, self.energy, self.latent_dim, n, self.guided_config(), generator=gen,
                              device=self.device, rows=self.forward_rows)
        return x

    def evaluate_extra(self, dataset: Dataset, count: int = 2500) -> dict[str, Any]:
        """Samples of the base generator alone, as many as the energy-guided set of the main report (``count``:
        26,000 on the stacked sets), for the evaluator to score beside it (metrics ``base_*``)."""
        gen = torch.Generator(device=self.device).manual_seed(12345)
        n = count
        with torch.no_grad():
            # the draws in 4096s, each through G in blocks of forward_rows (rows independent: the same images)
            x = torch.cat([in_blocks(self.G, self.noise(min(4096, n - i), self.latent_dim, gen), self.forward_rows)
                           for i in range(0, n, 4096)])
        out: dict[str, Any] = {"samples": {"base": x}}
        if self.fixed:
            out.update(self.fixed_base_likelihoods(dataset.test, generator=gen))
        return out

    @torch.no_grad()
    def fixed_base_likelihoods(self, x_test: Tensor, *, generator: Noise) -> dict[str, Any]:
        """Test NLLs of the base alone (exact) and of exp(−E)·base/Z (log Z by importance sampling from the base,
        float64 accumulation), each with its standard error; module docstring."""
        c = self.config
        x_test = x_test.to(self.device)
        e_test, lb_test = [], []
        for i in range(0, len(x_test), 4096):
            xi = x_test[i:i + 4096]
            e_test.append(self.energy(xi).double())
            lb_test.append(self.base_log_prob(xi).double())
        e, lb = torch.cat(e_test), torch.cat(lb_test)
        neg_e = []
        for i in range(0, c.log_z_samples, 8192):
            xb = self.G(self.noise(min(8192, c.log_z_samples - i), self.latent_dim, generator))
            neg_e.append(-self.energy(xb).double())
        log_w = torch.cat(neg_e)
        n = len(log_w)
        log_z = float(torch.logsumexp(log_w, 0) - torch.log(torch.tensor(float(n), dtype=torch.float64)))
        w = torch.exp(log_w - log_w.max())
        rel_se = float(w.std() / (w.mean() * n ** 0.5)) if n > 1 else float("nan")  # se of Ẑ / Ẑ = se of log Ẑ
        ess = float(w.sum() ** 2 / w.square().sum()) / n
        m = len(e)
        se = lambda t: float(t.std() / m ** 0.5) if m > 1 else float("nan")  # noqa: E731
        nll_pts = e - lb
        note = {}
        if ess * n < 100:  # a few base draws carry the estimate: neither log Ẑ nor its delta-method se can be trusted
            note["log_z_ebm_note"] = (f"log Z rests on {ess * n:.1f} effective base draws of {n}: exp(−E) is far "
                                      f"sharper than the base, so the importance-sampling log Z, nll_ebm and their "
                                      f"standard errors are unreliable (raise log_z_samples, or keep the energy "
                                      f"smoother with penalty > 0)")
        return note | {"base_nll": -float(lb.mean()), "base_nll_se": se(lb),
                "nll_ebm": float(nll_pts.mean()) + log_z, "nll_ebm_se": (se(nll_pts) ** 2 + rel_se ** 2) ** 0.5,
                # the energy's gain over the base on the same test points: mean(−E) − log Z, paired
                "nll_gain": -float(lb.mean()) - (float(nll_pts.mean()) + log_z),
                "nll_gain_se": (se(e) ** 2 + rel_se ** 2) ** 0.5,
                "log_z_ebm": log_z, "log_z_ebm_se": rel_se, "log_z_ebm_bias": -0.5 * rel_se ** 2, "log_z_ebm_ess": ess,
                "log_z_ebm_samples": n}

    def features(self, x: Tensor) -> Tensor:
        return build.penultimate(self.E, x)

    def extra_state(self) -> dict[str, Any]:
        return {"base_steps": self.base_steps, "a_initialised": self.a_initialised}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.base_steps = int(state.get("base_steps", 0))
        self.a_initialised = bool(state.get("a_initialised", False))


def _energy_at(m: KALE, p_e: dict[str, Tensor], x: Tensor) -> Tensor:
    """:meth:`KALE.energy` at the energy parameters ``p_e``."""
    e = torch.func.functional_call(m.E, p_e, (x,)).squeeze(1)
    return e if m.config.energy_floor is None else e.clamp_min(m.config.energy_floor)


def energy_update(m: KALE, a: OptRead, rule: UpdateRule, p_g: dict[str, Tensor] | None,
                  batch: Tensor, z: Tensor, alpha: Tensor | None) -> tuple[tuple[Any, ...], dict[str, Tensor]]:
    """One energy (and A) update of :meth:`KALE._energy_step` as a pure function: the KALE loss plus penalty × the
    zero-centred gradient penalty on the interpolates α x + (1 − α) G(z) (``interpolate_gradient_penalty``: its
    input gradient by ``torch.func`` while traced, ``bounds.input_grad``), differentiated again in the parameters; none when ``alpha`` is None (a fixed base at penalty 0) —, its gradient and the optimizer's update (``base.UpdateRule``).
    ``p_g`` None: ``z`` holds the base's draws themselves (a fixed base, drawn before the call)."""
    from ..compiled import grad_carrying

    params, mom, var, t, lr = a
    fake = z if p_g is None else torch.func.functional_call(m.G, p_g, (z,)).detach()

    def loss(p: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        p_e = {k[2:]: v for k, v in p.items() if k.startswith("E.")}
        e_real, e_fake = _energy_at(m, p_e, batch), _energy_at(m, p_e, fake)
        loss_kale = kale_energy_loss(e_real, e_fake, p["A.value"])
        out = {"kale": -loss_kale.detach(), "energy_real": e_real.mean().detach(), "energy_gen": e_fake.mean().detach()}
        if alpha is None:
            return loss_kale, out
        gp = interpolate_gradient_penalty(lambda x: _energy_at(m, p_e, x), batch, fake, alpha=alpha)
        return loss_kale + m.config.penalty * gp, {**out, "gp": gp.detach()}

    grads, (_, metrics) = grad_carrying(loss, params, (m.E,))
    return rule.apply(params, grads, mom, var, t, lr), metrics


def generator_update(m: KALE, a: OptRead, rule: UpdateRule, p_e: dict[str, Tensor],
                     log_partition: Tensor, batch: Tensor, z: Tensor) -> tuple[tuple[Any, ...], dict[str, Tensor]]:
    """The base (generator) update of :meth:`KALE.train_step` as a pure function: the KALE estimate at the
    batch-optimal A (``base_loss``), its gradient in the generator and the optimizer's update."""
    from ..compiled import grad_carrying

    params, mom, var, t, lr = a

    def loss(p: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        # the eager step's order of the energy's passes (a spectrally normalised energy's power iteration moves
        # with each training-mode pass): the generated batch, then the data
        e_gen = _energy_at(m, p_e, torch.func.functional_call(m.G, p, (z,)))
        e_data = _energy_at(m, p_e, batch).detach()
        value = base_loss(e_data, e_gen)
        return value, {"kale_base": -value.detach(), "energy_gen": e_gen.mean().detach(),
                       "energy_real": e_data.mean()}

    grads, (_, metrics) = grad_carrying(loss, params, (m.G, m.E))
    return rule.apply(params, grads, mom, var, t, lr), {**metrics, "A": log_partition}

