"""``stats``: super-resolution with deep convolutional sufficient statistics (Bruna, Sprechmann & LeCun, ICLR 2016).

Model: p(x | y) ∝ exp(−β‖Φ(x) − Ψ(y)‖²) on the constraint set {x : Dx = y}, Φ the scattering-like network of
:mod:`ebmlab.sr.wavelets` (standardised channels) and Ψ a CNN trained to predict E[Φ(x) | y]:

- **Ψ** (paper §4.1): min ‖Ψ(y) − Φ(x)‖² over training pairs; Ψ(y) = Φ(bicubic(y)) + UpNet(y), a residual in
  feature space, at Φ's resolution.
- **Inference** (§4.2): x̂ = argmin_{Dx = y} ‖Φ(x) − Ψ(y)‖². We write x = P_y(u) (the exact projection of
  :func:`ebmlab.sr.ops.project`) and minimise over u with L-BFGS (strong-Wolfe line search, ``infer_iters``
  iterations). The paper uses gradient descent; L-BFGS reaches the same minimiser in fewer evaluations. The
  objective is not convex, so the start matters: ``init=mse`` (default) starts from a pixel-regression estimate
  made by a head of the model itself (an :class:`~ebmlab.sr.base.UpNet` trained with the pixel MSE alongside Ψ,
  the ``mse`` model's network and loss), ``init=bicubic`` from bicubic interpolation. Measured on Fashion-MNIST
  (``benchmarks/sr``) the bicubic start ends in minima of higher energy.
- **Learned Φ** (``phi=learned``, §4.3): Φ's filters start at the wavelets and are fine-tuned by a stochastic
  estimate of the conditional log-likelihood gradient, −∇_θE(x) + E_{p(x'|y)}∇_θE(x'), with the model's own
  reconstructions x̂ standing for the samples x' ("some similarity with GANs"). Deviations, each to keep the game
  bounded: the contrast [E(x) − E(x̂)] is divided by ‖Φ(x) − Φ(x̂)‖² (scale-invariant, so Φ cannot win by
  growing), a penalty ``drift_weight``·‖w − w₀‖²/‖w₀‖² keeps the filters near the wavelets, and the negatives
  come from ``neg_iters`` L-BFGS iterations; Ψ keeps being fitted to the current Φ. Fine-tuning starts after
  ``phi_start`` of the steps, every ``phi_every`` steps.
- **Sampling**: the Gibbs distribution on the constraint set by the library's Langevin samplers over u: the
  energy U(u) = β‖Φ(P_y(u)) − Ψ(y)‖² is flat along the range of Dᵀ, so its gradient lies in the null space of D
  and every state x = P_y(u) satisfies Dx = y exactly; the free range coordinates of u drift without effect.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from . import ops
from .base import SRModel, UpNet
from .wavelets import Scattering


@dataclass(frozen=True)
class StatsConfig:
    phi: Literal["fixed", "learned"] = "fixed"
    J: int = 2
    L: int = 4
    avg_sigma: float = 2.0
    width: int = 64
    depth: int = 6
    lr: float = 1e-3
    batch_size: int = 64
    phi_start: float = 0.5
    phi_every: int = 2
    phi_lr: float = 1e-4
    drift_weight: float = 1.0
    neg_iters: int = 10
    infer_iters: int = 50
    init: Literal["mse", "bicubic"] = "mse"
    beta: float = 1.0
    sampler: Literal["ula", "mala"] = "ula"
    sample_steps: int = 200
    step_size: float = 1e-4
    OPTIONS: ClassVar[dict[str, tuple[str, str]]] = {  # range kind (ebmlab.options) and meaning of each option
        "phi": ("any", "Φ: the fixed wavelet statistics, or learned (fine-tuned from the wavelets, §4.3)"),
        "J": ("int1", "scales of the scattering network Φ"),
        "L": ("int1", "orientations per scale of Φ"),
        "avg_sigma": ("pos", "standard deviation of Φ's final Gaussian averaging (pixels)"),
        "width": ("int1", "channels of Ψ's (and the pixel head's) low-resolution CNN"),
        "depth": ("int1", "3×3 convolutions of that CNN"),
        "lr": ("pos", "Adam learning rate of Ψ and the pixel head"),
        "batch_size": ("int1", "high-resolution crops per training step"),
        "phi_start": ("unit", "learned Φ: the fraction of the steps after which its fine-tuning starts"),
        "phi_every": ("int1", "learned Φ: steps between its updates"),
        "phi_lr": ("pos", "learned Φ: Adam learning rate of its filters"),
        "drift_weight": ("nonneg", "learned Φ: weight of the penalty keeping its filters near the wavelets"),
        "neg_iters": ("int1", "learned Φ: L-BFGS iterations behind each negative sample"),
        "infer_iters": ("int1", "L-BFGS iterations of the inference argmin ‖Φ(x) − Ψ(y)‖² on {Dx = y}"),
        "init": ("choice", "start of the inference: the pixel head's estimate (mse) or bicubic"),
        "beta": ("pos", "inverse temperature β of p(x | y) ∝ exp(−β‖Φ(x) − Ψ(y)‖²) when sampling"),
        "sampler": ("choice", "Langevin sampler of p(x | y): ula or mala"),
        "sample_steps": ("int1", "Langevin steps per sample"),
        "step_size": ("pos", "Langevin step size"),
    }


class Stats(SRModel):
    name = "stats"
    trainable = True
    Config = StatsConfig

    def __init__(self, scale: int, config: StatsConfig | None = None):
        super().__init__(scale, config)
        o = self.options
        stride = 2 if scale % 2 == 0 else 1
        self.phi = Scattering(o["J"], o["L"], avg_sigma=o["avg_sigma"], stride=stride, learn=o["phi"] == "learned")
        self.psi = UpNet(self.phi.n_channels, scale // stride, o["width"], o["depth"])
        self.opt = torch.optim.Adam(self.psi.parameters(), lr=o["lr"])
        self.reg = UpNet(1, scale, o["width"], o["depth"])  # the pixel-regression start of the inference
        self.opt_reg = torch.optim.Adam(self.reg.parameters(), lr=o["lr"])
        self.opt_phi = torch.optim.Adam([self.phi.wave], lr=o["phi_lr"]) if o["phi"] == "learned" else None
        self.total_steps = 1

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt": self.opt, "opt_reg": self.opt_reg,
                **({"opt_phi": self.opt_phi} if self.opt_phi is not None else {})}

    def fit(self, data, progress: bool = False) -> dict[str, Any]:
        self.phi.fit_normalisation(data.train[:2000])
        return {"phi_channels": self.phi.n_channels}

    def target(self, y: Tensor) -> Tensor:
        """Ψ(y), the predicted statistics."""
        return self.phi(ops.bicubic(y, self.scale)) + self.psi(y)

    def energy(self, x: Tensor, target: Tensor) -> Tensor:
        """‖Φ(x) − t‖² per image, [b]."""
        return ((self.phi(x) - target) ** 2).flatten(1).sum(1)

    def train_step(self, x: Tensor, step: int) -> dict[str, float]:
        o = self.options
        y = ops.down(x, self.scale)
        with torch.no_grad():
            f = self.phi(x)
        loss = ((self.target(y) - f) ** 2).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        pix = ((ops.bicubic(y, self.scale) + self.reg(y) - x) ** 2).mean()
        self.opt_reg.zero_grad(set_to_none=True)
        pix.backward()
        self.opt_reg.step()
        out = {"psi_loss": float(loss.detach()), "pixel_mse": float(pix.detach())}
        if (self.opt_phi is not None and step >= int(o["phi_start"] * self.total_steps)
                and step % o["phi_every"] == 0):
            out.update(self._phi_step(x, y))
        return out

    def _phi_step(self, x: Tensor, y: Tensor) -> dict[str, float]:
        o = self.options
        with torch.no_grad():
            t = self.target(y)
        x_neg = self.infer(y, iters=o["neg_iters"], target=t)
        f_pos, f_neg = self.phi(x), self.phi(x_neg)
        e_pos = ((f_pos - t) ** 2).flatten(1).sum(1)
        e_neg = ((f_neg - t) ** 2).flatten(1).sum(1)
        sep = ((f_pos - f_neg) ** 2).flatten(1).sum(1) + 1e-8
        contrast = ((e_pos - e_neg) / sep).mean()
        drift = self.phi.drift()
        loss = contrast + o["drift_weight"] * drift
        self.opt_phi.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_phi.step()
        self.phi.wave.grad = None
        return {"phi_contrast": float(contrast.detach()), "phi_drift": float(drift.detach())}

    @torch.no_grad()
    def _init(self, y: Tensor) -> Tensor:
        if self.options["init"] == "bicubic":
            return ops.bicubic(y, self.scale)
        return (ops.bicubic(y, self.scale) + self.reg(y)).clamp(0, 1)

    def infer(self, y: Tensor, *, iters: int | None = None, target: Tensor | None = None,
              init: Tensor | None = None, on_eval: Callable[[], None] | None = None) -> Tensor:
        """x̂ = argmin_{Dx=y} ‖Φ(x) − Ψ(y)‖² by L-BFGS over u, x = P_y(u) (module docstring)."""
        iters = self.options["infer_iters"] if iters is None else iters
        with torch.no_grad():
            t = self.target(y) if target is None else target
            u0 = ops.project(self._init(y) if init is None else init, y, self.scale)
        return infer_constrained(self.phi, t, y, self.scale, u0, iters, on_eval)

    def predict(self, y: Tensor, *, progress: bool = False) -> Tensor:
        """The inference estimate, projected onto {Dx = y, 0 ≤ x ≤ 1} (:func:`ops.project_box`): an image in
        range that still down-samples to y exactly. Blocks of 256 images are solved jointly (so the block size is
        part of the result); ``progress``: a bar over the objective's evaluations, at most 1.25 per L-BFGS
        iteration (torch's ``max_eval``), with the time left."""
        from tqdm.auto import tqdm

        blocks = range(0, len(y), 256)
        total = len(blocks) * (self.options["infer_iters"] * 5 // 4)
        with tqdm(total=total, disable=not progress, desc=f"stats inference of {len(y)} images", unit="eval",
                  file=sys.stderr, mininterval=1.0, leave=False) as bar:
            return torch.cat([ops.project_box(self.infer(y[i:i + 256], on_eval=lambda: bar.update(1)),
                                              y[i:i + 256], self.scale) for i in blocks])

    def sample(self, y: Tensor, n: int, *, generator: torch.Generator, steps: int | None = None,
               step_size: float | None = None, beta: float | None = None, start: Tensor | None = None,
               progress: bool = False) -> Tensor:
        """n draws of p(x | y) for one low-resolution image y [1, 1, h, w] → [n, 1, H, W] (module docstring).
        Chains start at ``start`` (default: the inference estimate); the final states are projected onto the
        pixel range as in :meth:`predict` (they satisfy Dx = y before and after)."""
        from ..samplers import mcmc

        o = self.options
        beta = o["beta"] if beta is None else beta
        with torch.no_grad():
            t = self.target(y)
        x0 = self.infer(y, target=t) if start is None else start
        yb = y.expand(n, -1, -1, -1)
        tb = t.expand(n, -1, -1, -1)

        def energy(u: Tensor) -> Tensor:
            return beta * self.energy(ops.project(u, yb, self.scale), tb)

        algo = mcmc.ula if o["sampler"] == "ula" else mcmc.mala
        res = mcmc.run(algo, x0.expand(n, -1, -1, -1).clone(), energy, n_steps=steps or o["sample_steps"],
                       generator=generator, step_size=step_size or o["step_size"], progress=progress)
        return ops.project_box(ops.project(res.final_state.x, yb, self.scale), yb, self.scale)


def infer_constrained(phi, target: Tensor, y: Tensor, s: int, u0: Tensor, iters: int,
                      on_eval: Callable[[], None] | None = None) -> Tensor:
    """argmin over {x : Dx = y} of ‖phi(x) − target‖² by L-BFGS on x = P_y(u), from u0; returns P_y(u).
    ``on_eval`` is called after each evaluation of the objective (a progress bar's tick)."""
    if iters <= 0:
        return ops.project(u0, y, s)
    u = u0.detach().clone().requires_grad_(True)
    opt = torch.optim.LBFGS([u], lr=1.0, max_iter=iters, history_size=10, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-12, tolerance_change=1e-15)

    def closure() -> Tensor:
        with torch.enable_grad():
            loss = ((phi(ops.project(u, y, s)) - target) ** 2).sum()
            (g,) = torch.autograd.grad(loss, u)
        u.grad = g
        if on_eval is not None:
            on_eval()
        return loss.detach()

    with torch.enable_grad():
        opt.step(closure)
    return ops.project(u.detach(), y, s)
