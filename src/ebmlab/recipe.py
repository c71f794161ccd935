"""Training-recipe options shared by every method: learning-rate schedules, gradient-norm clipping and an
exponential moving average (EMA) of the sampling networks.

A method owns its losses and its optimizer steps; the recipe changes neither. It acts through what every method
exposes: ``method.optimizers`` (their learning rates are set before each step) and ``method.networks`` (their
parameters are averaged after each step), and at each optimizer step through ``methods.base.optimizer_step``,
which calls :meth:`Recipe.average` (the gradient's mean over the processes of a data-parallel run) and
:meth:`Recipe.clip` (the run's gradient clip) visibly, between ``backward`` and ``step``. So a new method that
steps its optimizers with ``optimizer_step`` gets the whole recipe without a line of its own.

Learning-rate schedule (run options ``lr_schedule``, ``lr_decay_start``, ``lr_end_factor``, ``lr_step_every``,
``lr_step_factor``): every optimizer's learning rate is its configured value times a factor f(s) of the step s
(1-based) about to run. With t = (s − 1 − start) / (steps − 1 − start) clamped to [0, 1] and e = ``lr_end_factor``:

    constant  f = 1
    linear    f = 1 − (1 − e) t
    cosine    f = e + (1 − e)(1 + cos πt) / 2
    step      f = ``lr_step_factor`` ^ ⌊(s − 1) / ``lr_step_every``⌋

so a linear or cosine schedule runs steps up to start + 1 at lr and the last step at exactly e × lr. The factor is a function of the step
alone: a resumed run continues the schedule exactly. Raising ``steps`` on resume stretches a linear or cosine
schedule from that point on (the configuration then says the new length).

Gradient clipping (``grad_clip`` > 0): before each ``optimizer.step()`` the gradients of that optimizer's
parameters are rescaled to a global L2 norm of at most ``grad_clip`` (``torch.nn.utils.clip_grad_norm_``), for
every optimizer of the method. Methods that already clip by their own option (LBT's estimator) clip twice; the
smaller bound wins.

EMA (``ema`` = decay β in (0, 1); 0 switches it off): after every step θ̄ ← β θ̄ + (1 − β) θ for the parameters
of the networks the method samples with (``Method.sampling_networks``: the generator for the GAN family; for
KALE, whose samples are energy-guided, the generator, the energy and the log-partition together), and the
buffers (BatchNorm statistics) are copied. The averages are used for every evaluation, plot, sample and report;
the raw weights keep training. The averages are saved in the checkpoint, so resuming is exact. The energies of the
other methods are not averaged: their density metrics are of the energy that was trained. No bias correction
(the averages start from the initial weights), as in the GAN literature's generator EMA (e.g. β = 0.999).
"""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING, Any, Iterator

import torch
from torch import nn

if TYPE_CHECKING:
    from .methods.base import Method


def lr_factor(step: int, rc: Any) -> float:
    """The learning-rate multiplier f(step) of the run options ``rc`` (see the module docstring)."""
    kind = rc.lr_schedule
    if kind == "constant":
        return 1.0
    if kind == "step":
        return float(rc.lr_step_factor) ** ((step - 1) // rc.lr_step_every)
    span = max(rc.steps - 1 - rc.lr_decay_start, 1)
    t = min(max((step - 1 - rc.lr_decay_start) / span, 0.0), 1.0)
    e = rc.lr_end_factor
    if kind == "linear":
        return 1.0 - (1.0 - e) * t
    if kind == "cosine":
        return e + (1.0 - e) * (1.0 + math.cos(math.pi * t)) / 2.0
    raise ValueError(f"unknown lr_schedule {kind!r}")


class Recipe:
    """The recipe attached to one method for one run (``build_method`` attaches it)."""

    def __init__(self, method: Method, rc: Any, world: Any = None):
        self.rc = rc
        self.world = world  # ebmlab.distributed.World of a data-parallel run (None: one process)
        self.optimizers: dict[str, torch.optim.Optimizer] = dict(method.optimizers)
        # the configured learning rates, read before any checkpoint overwrites the optimizers' param groups
        self.base_lrs = {k: [g["lr"] for g in o.param_groups] for k, o in self.optimizers.items()}
        self.averaged_nets: dict[str, nn.Module] = {}
        if rc.ema > 0:
            names = [n for n in getattr(method, "sampling_networks", ("generator",)) if n in method.networks]
            self.averaged_nets = {n: method.networks[n] for n in names}
        self.shadow: dict[str, dict[str, torch.Tensor]] = {
            n: {k: v.detach().clone() for k, v in m.state_dict().items()} for n, m in self.averaged_nets.items()}
        # (average, live tensor) pairs: parameters are averaged, buffers (BatchNorm statistics) copied
        self._pairs: list[tuple[torch.Tensor, torch.Tensor, bool]] = []
        for n, m in self.averaged_nets.items():
            params = {k for k, _ in m.named_parameters()}
            for k, v in m.state_dict().items():
                self._pairs.append((self.shadow[n][k], v, k in params and v.dtype.is_floating_point))
        self._swapped: dict[str, dict[str, torch.Tensor]] | None = None

    @property
    def active(self) -> bool:
        return self.rc.lr_schedule != "constant" or self.rc.grad_clip > 0 or bool(self.averaged_nets)

    # --- around each training step ------------------------------------------------------------------------
    def before_step(self, step: int) -> None:
        if self.rc.lr_schedule == "constant":
            return
        f = lr_factor(step, self.rc)
        for k, opt in self.optimizers.items():
            for g, base in zip(opt.param_groups, self.base_lrs[k]):
                if isinstance(g["lr"], torch.Tensor):
                    g["lr"].fill_(base * f)  # a tensor learning rate read by a captured step (ebmlab.graphs)
                else:
                    g["lr"] = base * f

    def after_step(self) -> None:
        if not self.averaged_nets:
            return
        beta = self.rc.ema
        with torch.no_grad():
            for avg, live, is_param in self._pairs:
                if is_param:
                    avg.lerp_(live, 1.0 - beta)  # β·avg + (1 − β)·live
                else:
                    avg.copy_(live)

    # --- at each optimizer step (called by methods.base.optimizer_step) -----------------------------------------
    def average(self, opt: torch.optim.Optimizer) -> None:
        """The gradients ``opt`` is about to apply, averaged over the processes of a data-parallel run."""
        if self.world is not None:
            from .distributed import average

            average(opt, self.world)

    def clip(self, opt: torch.optim.Optimizer) -> None:
        """The run's gradient clip (``grad_clip`` > 0): rescale ``opt``'s gradients to that global L2 norm."""
        if self.rc.grad_clip <= 0:
            return
        params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
        if params:
            torch.nn.utils.clip_grad_norm_(params, self.rc.grad_clip)

    # --- the averaged weights ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def averaged(self) -> Iterator[None]:
        """Within the block the sampling networks hold their averages (a no-op without EMA, or when already in)."""
        if not self.averaged_nets or self._swapped is not None:
            yield
            return
        self.use_averaged()
        try:
            yield
        finally:
            self._restore()

    def use_averaged(self) -> None:
        """Load the averages into the sampling networks for good (a process that only evaluates or samples)."""
        if not self.averaged_nets or self._swapped is not None:
            return
        self._swapped = {n: {k: v.detach().clone() for k, v in m.state_dict().items()}
                         for n, m in self.averaged_nets.items()}
        for n, m in self.averaged_nets.items():
            m.load_state_dict(self.shadow[n])

    def _restore(self) -> None:
        assert self._swapped is not None
        for n, m in self.averaged_nets.items():
            m.load_state_dict(self._swapped[n])
        self._swapped = None

    # --- checkpoint -------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"ema": {n: {k: v.clone() for k, v in s.items()} for n, s in self.shadow.items()}}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        saved = (state or {}).get("ema", {})
        if set(saved) != set(self.shadow):
            from .errors import EbmlabError

            raise EbmlabError(f"the checkpoint holds moving averages of {sorted(saved) or 'no networks'}, this run "
                              f"averages {sorted(self.shadow) or 'none'}; was the checkpoint written by another run?")
        for n, s in saved.items():
            for k, v in s.items():
                self.shadow[n][k].copy_(v)
