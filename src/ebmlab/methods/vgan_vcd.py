"""VGAN-VCD — variational contrastive divergence (Zhai, Cheng, Feris, Zhang; arXiv 1611.01799, §5).

The generator is a transition operator instead of a map from noise: x̃ = T(x) = Dec(drop(Enc(x))), where
``drop`` replaces each unit of the code (tanh-bounded) by U(−1, 1) noise with probability ``drop_prob`` (0.5).
The energy is VGAN's bounded product of experts E(x) = Σ_j H_b(σ_j(x)) with the batch entropy surrogate H̃.

Each step splits the real batch in two halves: positives x⁺ and transition inputs x⁰ (the paper takes 2× batch
real images; here ``batch_size`` is the total, so the two halves have batch_size/2 each).
- generator (inner player, first): minimise ρ·(mean E(x̃) − H̃(x̃)) + (1 − ρ)·rec(T₀(x⁰), x⁰), x̃ = T(x⁰), where
  T₀ is the transition without the code noise (the released code's ``deterministic=True`` reconstruction pass:
  the code is trained to be informative, the noise only moves x̃ away from x⁰);
- energy: minimise mean E(x⁺) − mean E(x̃) − H̃(x⁺), x̃ detached.
``rec`` is the binary cross-entropy on pixels mapped to [0, 1] (the released code; the paper writes L2,
``recon="l2"``), summed over pixels and averaged over the batch. ρ = 0.01 (the paper's MNIST choice;
ρ ∈ {0, 0.001, 0.01, 0.1, 1}; ρ = 1 breaks).

Sampling: a transition needs a starting image. The method keeps the last ``reservoir`` transition inputs of
training (saved with the checkpoint) and ``sample(n)`` applies T once to n of them drawn with replacement —
the paper's use of VCD samples (variations of real images, e.g. for data augmentation). Before the first step the
starts are uniform noise in the data's range.

The transition follows the released code (Shuangfei/vgan, ``configs/*_config.py``): BatchNorm before the tanh
bottleneck and after each decoder layer, noise replacing code units. Deviations: Adam(2e-4) rather than the code's
Adadelta(0.1), as for VGAN; one transition step per energy step (the code's ``k`` is 2), so that its steps compare
with the other methods'; the encoder is ebmlab's critic network without the code's BatchNorm in its convolutions.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..bounds.unroll import FunctionalModule
from ..errors import EbmlabError
from ..nets import BoundedExpertHead, build
from ..nets.build import Net
from .base import CompiledPair, Method, frozen, make_optimizer, optimizer_step
from .vgan import energy_terms
from ..rng import Noise, rand, randint, Tape


@dataclass(frozen=True)
class VCDConfig:
    code_dim: int = 64
    drop_prob: float = 0.5
    rho: float = 0.01
    recon: Literal["bce", "l2"] = "bce"
    e_hidden: tuple[int, ...] = (128, 128)
    t_hidden: tuple[int, ...] = (256,)
    n_experts: int = 100
    act: Literal["relu", "leaky_relu", "tanh", "prelu", "elu", "softplus"] = "leaky_relu"
    optimizer: Literal["adam", "adadelta"] = "adam"
    lr_g: float = 2e-4
    lr_e: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    entropy_weight: float = 1.0
    reservoir: int = 1024
    noise_chain: int = 5
    net: Net = "auto"
    width: int = 32

    # range kind and meaning of each option not in ebmlab.options.SHARED (ebmlab.options explains)
    OPTIONS: ClassVar[dict[str, tuple[str, str]]] = {
        "t_hidden": ("ints1",
                     "hidden layer widths of the time-conditioned energy MLP (comma-separated; unused by conv nets)"),
        "drop_prob": ("unit", "dropout probability of the VCD transition"),
        "rho": ("nonneg", "weight of the VCD transition's reconstruction term"),
        "recon": ("choice", "reconstruction loss of the VCD transition"),
        "reservoir": ("int1", "samples kept in the VCD transition's reservoir"),
        "noise_chain": ("int0", "evaluation: transitions applied to uniform noise for the from-noise samples "
                                "(noise_*), reported apart from the transitions of real images (0: none)"),
    }


class Transition(nn.Module):
    """x → Enc(x) → BatchNorm → tanh → each code unit replaced by U(−1, 1) with probability p → Dec → x̃.

    As the official transition builds it (``dense_batchnorm_tanh`` then ``noise2``; the decoder with BatchNorm
    after each hidden layer): without the normalisation before the bottleneck, the encoder's pre-activations grow
    until every tanh unit saturates, the code no longer depends on x, and the transition returns one image."""

    def __init__(self, spec, c: VCDConfig):
        super().__init__()
        self.enc = build.critic(spec, c.code_dim, net=c.net, hidden=c.t_hidden, act=c.act, width=c.width)
        self.bn = nn.BatchNorm1d(c.code_dim)
        self.dec = build.generator(spec, c.code_dim, net=c.net, hidden=tuple(reversed(c.t_hidden)), act=c.act,
                                   width=c.width, batchnorm=True)
        self.p = c.drop_prob

    def code(self, x: Tensor) -> Tensor:
        return torch.tanh(self.bn(self.enc(x)))

    def forward(self, x: Tensor, generator: Noise, noise: bool = True) -> Tensor:
        h = self.code(x)
        if noise:
            u = rand(h.shape, generator=generator, device=h.device, dtype=h.dtype)
            replace = rand(h.shape, generator=generator, device=h.device, dtype=h.dtype) * 2 - 1
            h = torch.where(u < self.p, replace, h)
        return self.dec(h)


class VCD(Method):
    compile_estimate = (1.93, 51.0)  # benchmarks/compile/results.md (1 thread, cold cache)
    name = "vgan_vcd"
    can_augment = True
    sampling_networks = ("transition",)
    progress_keys = ("energy_real", "energy_fake", "recon")  # shown on the progress bar
    Config = VCDConfig
    description = "VGAN-VCD: VGAN's bounded energy with a transition-operator generator (variational contrastive divergence)"
    has_energy = True
    has_generator = False

    def __init__(self, config: VCDConfig, **kw):
        super().__init__(config, **kw)
        c = config
        if not 0 <= c.rho <= 1 or not 0 <= c.drop_prob <= 1 or c.reservoir < 1:
            raise EbmlabError(f"need 0 ≤ rho ≤ 1, 0 ≤ drop_prob ≤ 1 and reservoir ≥ 1; got rho={c.rho}, "
                              f"drop_prob={c.drop_prob}, reservoir={c.reservoir}")
        self.T = Transition(self.spec, c).to(self.device)
        features, feat_dim = build.features(self.spec, net=c.net, hidden=c.e_hidden, act=c.act, width=c.width)
        self.E = BoundedExpertHead(features, feat_dim, c.n_experts).to(self.device)
        self.networks = {"transition": self.T, "energy": self.E}
        self.optimizers = {
            "transition": make_optimizer(c.optimizer, self.T.parameters(), c.lr_g, (c.beta1, c.beta2)),
            "energy": make_optimizer(c.optimizer, self.E.parameters(), c.lr_e, (c.beta1, c.beta2)),
        }
        self.pool: Tensor | None = None  # the last transition inputs (sampling starts)
        self._pair: CompiledPair | None = None  # the compiled step (run option compile)

    def step_kind(self, step: int) -> str | None:
        """While the reservoir fills, each step has its own shapes; once full, one kind."""
        n = 0 if self.pool is None else len(self.pool)
        return "step" if n >= self.config.reservoir else f"filling:{n}"

    def _recon(self, x_tilde: Tensor, x0: Tensor) -> Tensor:
        if self.config.recon == "l2":
            return (x_tilde - x0).flatten(1).square().sum(1).mean()
        lo, hi = self.spec.value_range or (0.0, 1.0)
        p = ((x_tilde - lo) / (hi - lo)).clamp(1e-6, 1 - 1e-6)
        t = ((x0 - lo) / (hi - lo)).clamp(0, 1)
        return F.binary_cross_entropy(p, t, reduction="none").flatten(1).sum(1).mean()

    def train_step(self, batch: Tensor, step: int) -> dict[str, Tensor | float]:
        c = self.config
        if batch.shape[0] < 4:
            raise EbmlabError("vgan_vcd splits each batch into positives and transition inputs: batch_size ≥ 4")
        h = batch.shape[0] // 2
        x_pos, x0 = batch[:h], batch[h:2 * h]
        # --- transition (generator) step: ρ·(E(x̃) − H̃(x̃)) + (1 − ρ)·rec(x̃, x⁰) ---
        with frozen(self.E):
            x_t = self.T(x0, self.rng)
            p_t = self.E.probs(x_t)
            h_t = self.E.batch_entropy(p_t)
            e_t = self.E.energy_from_probs(p_t).mean()
            rec = self._recon(self.T(x0, self.rng, noise=False), x0)  # the code's noise-free reconstruction
            loss_g = c.rho * (e_t - c.entropy_weight * h_t) + (1 - c.rho) * rec
            optimizer_step(self.optimizers["transition"], loss_g, self.recipe)
        # --- energy step: mean E(x⁺) − mean E(x̃) − H̃(x⁺) ---
        with torch.no_grad():
            x_t = self.T(x0, self.rng)
        loss_e, metrics = energy_terms(self.E, x_pos, x_t, c.entropy_weight)
        optimizer_step(self.optimizers["energy"], loss_e, self.recipe)
        self._keep(x0)
        return {"loss_g": loss_g.detach(), "recon": rec.detach(), "entropy_gen": h_t.detach(), **metrics}

    def _keep(self, x0: Tensor) -> None:
        """The step's transition inputs enter the reservoir of sampling starts (the newest first)."""
        pool = x0.detach() if self.pool is None else torch.cat([x0.detach(), self.pool])
        if self.pool is not None and len(self.pool) == self.config.reservoir:
            self.pool.copy_(pool[:self.config.reservoir])  # in place once full: a replayed step (ebmlab.graphs) updates it
        else:
            self.pool = pool[:self.config.reservoir].clone()

    # --- the compiled step (run option compile, ebmlab.compiled) ------------------------------------------------
    def compile_blocker(self) -> str | None:
        """The compiled step is :meth:`train_step`'s arithmetic as one pure function (``base.pair_core``, the
        transition first, with :func:`transition_loss` and :func:`energy_loss`; the transition's BatchNorm
        statistics carried), with Adam or Adadelta; the reservoir's update stays eager (a copy)."""
        return CompiledPair.blocker(self)

    def compiled_train_step(self, batch: Tensor, step: int, noise: Tape, compile: Callable[..., Any]
                            ) -> dict[str, Tensor | float]:
        """:meth:`train_step` compiled: the transition's step and the energy's, their gradients and Adam updates in
        one function; the code noise of both transitions is the eager step's draws, taken from ``noise`` in the
        eager order inside the compiled function."""
        if batch.shape[0] < 4:
            raise EbmlabError("vgan_vcd splits each batch into positives and transition inputs: batch_size ≥ 4")
        h = batch.shape[0] // 2
        x_pos, x0 = batch[:h], batch[h:2 * h]
        if self._pair is None:
            self._pair = CompiledPair(self, self.E, "energy", self.T, "transition")
        out = dict(self._pair(functools.partial(energy_loss, self), functools.partial(transition_loss, self),
                              [None, None], compile, x_pos, x0, noise, g_first=True))
        self._keep(x0)
        return out

    @torch.no_grad()
    def sample(self, n: int, *, generator: Noise | None = None) -> Tensor:
        gen = generator or self.rng
        if self.pool is None:  # before any training step: transitions of noise images (uniform in the data's range)
            x0 = rand((n, *self.spec.shape), generator=gen, device=self.device)
            lo, hi = self.spec.value_range or (-1.0, 1.0)
            return self.T(lo + (hi - lo) * x0, gen)
        idx = randint(0, len(self.pool), (n,), generator=gen, device=self.pool.device)
        return self.T(self.pool[idx], gen)

    @torch.no_grad()
    def evaluate_extra(self, dataset: Any, count: int = 2500) -> dict[str, Any]:
        """Samples from noise, reported apart (metrics ``noise_*``): ``noise_chain`` transitions of uniform-noise
        images, as many as the main set (``count``). The main samples are transitions of real images, whose
        coverage is partly the data's own (a 50-step run already hits 869 arg-max modes of a stacked set); these
        show what the transition makes of nothing."""
        k = self.config.noise_chain
        if k <= 0:
            return {}
        gen = torch.Generator(device=self.device).manual_seed(54321)
        lo, hi = self.spec.value_range or (-1.0, 1.0)
        out = []
        for i in range(0, count, 2048):
            x = lo + (hi - lo) * rand((min(2048, count - i), *self.spec.shape), generator=gen,
                                      device=self.device)
            for _ in range(k):
                x = self.T(x, gen)
            out.append(x)
        return {"samples": {"noise": torch.cat(out)}}

    @torch.no_grad()
    def augment(self, x: Tensor, *, generator: Noise) -> Tensor:
        """One VCD transition T(x) of each input (the noisy code), in the data's units: the VGAN paper's
        augmentation of labelled examples (``ebmlab.semisup``)."""
        return self.T(x.to(self.device), generator)

    def energy(self, x: Tensor) -> Tensor:
        return self.E(x)

    def features(self, x: Tensor) -> Tensor:
        return self.E.features(x)

    def extra_state(self) -> dict[str, Any]:
        return {"pool": self.pool}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.pool = state.get("pool")


def transition_loss(m: VCD, p_t: dict[str, Tensor], p_e: dict[str, Tensor], _: None, x_pos: Tensor, x0: Tensor,
                    noise: Tape) -> tuple[Tensor, dict[str, Tensor]]:
    """The transition step's loss of :meth:`VCD.train_step` — ρ·(E(x̃) − λ H̃(x̃)) + (1 − ρ)·rec — at ``p_t``, the
    energy at ``p_e`` (no gradient); its code noise taken from ``noise``."""
    c = m.config
    e = FunctionalModule(m.E, p_e, dict(m.E.named_buffers()))
    x_t = torch.func.functional_call(m.T, p_t, (x0, noise))
    p_tr = e.probs(x_t)
    h_t = e.batch_entropy(p_tr)
    e_t = e.energy_from_probs(p_tr).mean()
    rec = m._recon(torch.func.functional_call(m.T, p_t, (x0, noise), {"noise": False}), x0)
    loss = c.rho * (e_t - c.entropy_weight * h_t) + (1 - c.rho) * rec
    return loss, {"loss_g": loss.detach(), "recon": rec.detach(), "entropy_gen": h_t.detach()}


def energy_loss(m: VCD, p_e: dict[str, Tensor], p_t: dict[str, Tensor], _: None, x_pos: Tensor, x0: Tensor,
                noise: Tape) -> tuple[Tensor, dict[str, Tensor]]:
    """The energy step's loss of :meth:`VCD.train_step` at ``p_e``, the transitions of the updated ``p_t`` (no
    gradient) as its negatives."""
    x_t = torch.func.functional_call(m.T, p_t, (x0, noise)).detach()
    return energy_terms(FunctionalModule(m.E, p_e, dict(m.E.named_buffers())), x_pos, x_t, m.config.entropy_weight)
