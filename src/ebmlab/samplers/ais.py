"""Annealed importance sampling (Neal 2001) for the log normalising constant of ``exp(-E)``.

Path: geometric, ``log f_β(x) = (1 - β) log p0(x) - β E(x)`` from a normalised Gaussian base
``p0 = N(mean, std² I)`` (β = 0) to the target ``exp(-E)`` (β = 1), over a sigmoid schedule
(Wu, Burda, Salakhutdinov & Grosse 2017, "On the quantitative analysis of decoder-based
generative models", whose BDMC code uses it). Transitions are HMC or MALA with a Metropolis
correction, so each leaves its intermediate distribution exactly invariant. Unadjusted Langevin
is NOT offered: it does not leave ``f_β`` invariant and the AIS weights would then be wrong.

Bias direction: forward AIS estimates ``Z`` without bias, so ``log Z`` is UNDER-estimated in
expectation (Jensen) and the likelihoods ``-E(x) - log Z`` it yields are optimistic. Reverse AIS
(:func:`reverse_ais_log_z`, from exact target samples) over-estimates ``log Z`` in expectation;
together they bracket it (Grosse, Ghahramani & Adams 2015, BDMC).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from .classic import effective_sample_size, log_mean_exp
from .mcmc import State, StepInfo, energy_and_grad, hmc_step, mala_step, tune_step_size
from ..rng import randn
from ..types import EnergyFn



FORWARD_BIAS_NOTE = (
    "Forward AIS: exp(log_z) is an unbiased estimate of Z, so by Jensen's inequality log_z "
    "UNDER-estimates log Z in expectation; log-likelihoods -E(x) - log_z computed from it are "
    "optimistic (too high). Increase n_steps until log_z stops rising, and bracket it with "
    "reverse_ais_log_z when exact target samples exist."
)
REVERSE_BIAS_NOTE = (
    "Reverse AIS: exp(-log_z) is an unbiased estimate of 1/Z, so log_z OVER-estimates log Z in "
    "expectation; log-likelihoods computed from it are pessimistic. Forward AIS (an "
    "under-estimate) and reverse AIS bracket log Z; their gap bounds the error."
)


@dataclass(frozen=True)
class AISResult:
    """Result of :func:`ais_log_z` / :func:`reverse_ais_log_z` (all log quantities in nats).

    log_z: estimate of ``log Z = log ∫ exp(-E(x)) dx``: ``logsumexp(log_weights) - log n``
        (forward) or minus that (reverse).
    log_weights: per-chain AIS log-weights ``[n]`` (reverse: log-weights of the ``1/Z``
        estimate).
    log_weight_std: spread of ``log_weights`` over chains (0 for a perfect path).
    ess: effective sample size ``(Σw)²/Σw²`` of the final weights, in ``[1, n]``.
    log_z_stderr: delta-method standard error ``sqrt(1/ESS - 1/n)`` of ``log_z``; it measures
        the noise only, not the Jensen bias, and is unreliable when ESS is small.
    acceptance_rate: mean Metropolis acceptance probability over chains and transitions.
    step_sizes: step size used at each transition ``[n_transitions]``.
    samples: final states ``[n, D]`` (forward: with ``log_weights`` a weighted sample of the
        target; reverse: approximately from the base).
    direction: ``"forward"`` or ``"reverse"``.
    bias_note: the direction of the estimator's bias, in words.
    """

    log_z: float
    log_weights: Tensor
    log_weight_std: float
    ess: float
    log_z_stderr: float
    acceptance_rate: float
    step_sizes: Tensor
    samples: Tensor
    direction: Literal["forward", "reverse"]
    bias_note: str


def sigmoid_schedule(
    n_steps: int, delta: float = 4.0, *, dtype: torch.dtype = torch.float64
) -> Tensor:
    """``n_steps + 1`` inverse temperatures from 0 to 1: the sigmoid of
    ``linspace(-delta, delta, n_steps + 1)``, rescaled so the ends are exactly 0 and 1.

    It spends more steps near β = 0 and β = 1, where the geometric path changes fastest.
    """
    if n_steps < 1:
        raise ValueError(f"sigmoid_schedule: n_steps must be >= 1, got {n_steps}.")
    s = torch.sigmoid(torch.linspace(-delta, delta, n_steps + 1, dtype=torch.float64))
    s = (s - s[0]) / (s[-1] - s[0])
    s[0], s[-1] = 0.0, 1.0
    return s.to(dtype)


def _betas(schedule: str | Tensor, n_steps: int, delta: float) -> list[float]:
    if isinstance(schedule, Tensor):
        b = schedule.detach().to(torch.float64).flatten()
        if b.numel() < 2 or b[0] != 0 or b[-1] != 1 or bool((b[1:] < b[:-1]).any()):
            raise ValueError(
                "schedule tensor must be non-decreasing from exactly 0 to exactly 1; got "
                f"{b.numel()} values from {b[0].item() if b.numel() else None} to "
                f"{b[-1].item() if b.numel() else None}."
            )
    elif schedule == "sigmoid":
        b = sigmoid_schedule(n_steps, delta)
    elif schedule == "linear":
        b = torch.linspace(0.0, 1.0, n_steps + 1, dtype=torch.float64)
    else:
        raise ValueError(f"schedule must be 'sigmoid', 'linear' or a tensor; got {schedule!r}.")
    return b.tolist()


class _GaussianBase:
    """``p0 = N(mean, diag(std²))``: energy ``B(x) = ½‖(x - mean)/std‖²`` and its gradient,
    plus ``log_norm = Σ_i ½ log(2π std_i²)`` so that ``log p0 = -B - log_norm``."""

    def __init__(self, mean: float | Tensor, std: float | Tensor, dim: int, dtype: torch.dtype | None,
                 device: Any):
        self.mean = torch.as_tensor(mean, dtype=dtype, device=device).expand(dim)
        self.std = torch.as_tensor(std, dtype=dtype, device=device).expand(dim)
        if bool((self.std <= 0).any()):
            raise ValueError(f"base_std must be positive, got {std}.")
        self.log_norm = (0.5 * torch.log(2 * math.pi * self.std**2)).sum().item()

    def energy(self, x: Tensor) -> Tensor:
        return 0.5 * (((x - self.mean) / self.std) ** 2).sum(1)

    def energy_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r = (x - self.mean) / self.std
        return 0.5 * (r**2).sum(1), r / self.std

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        eps = randn((n, self.mean.numel()), generator=generator, dtype=self.mean.dtype,
                          device=self.mean.device)
        return self.mean + self.std * eps


def _anneal(
    x: Tensor,
    energy_fn: EnergyFn,
    base: _GaussianBase,
    betas: list[float],
    *,
    transition: str,
    step_size: float,
    n_leapfrog: int,
    target_accept: float,
    adapt_rate: float,
    step_size_bounds: tuple[float, float],
    generator: torch.Generator,
    progress: bool,
) -> tuple[Tensor, Tensor, list[float], list[float]]:
    """Run AIS along ``betas`` (increasing for forward, decreasing for reverse) from ``x``.

    At each t = 1..K: ``log w += (β_t - β_{t-1}) (log f_1(x) - log p0(x))``, then (for t < K) one
    Metropolis-adjusted transition leaving ``f_{β_t}`` invariant. Returns
    ``(log_w [n], x [n, D], step_sizes, acceptance rates)``.
    """
    if transition == "hmc":
        def step_fn(state: State, fn: EnergyFn, eps: float) -> tuple[State, StepInfo]:
            return hmc_step(state, fn, step_size=eps, generator=generator, n_leapfrog=n_leapfrog)
    elif transition == "mala":
        def step_fn(state: State, fn: EnergyFn, eps: float) -> tuple[State, StepInfo]:
            return mala_step(state, fn, step_size=eps, generator=generator)
    else:
        raise ValueError(
            f"transition must be 'hmc' or 'mala' (Metropolis-adjusted), got {transition!r}. "
            "Unadjusted Langevin is not a valid AIS kernel: it does not leave the intermediate "
            "distributions invariant."
        )

    # Cache E and ∇E at the current states; the annealed energy of any β is then
    # U_β = β E + (1 - β) B without a new network evaluation.
    e, g = energy_and_grad(energy_fn, x)
    b, gb = base.energy_and_grad(x)
    log_w = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    lo, hi = step_size_bounds
    eps = float(step_size)
    step_sizes: list[float] = []
    acc_rates: list[float] = []
    ts = range(1, len(betas))
    if progress:
        from tqdm.auto import tqdm  # optional dependency, imported only when asked for

        ts = tqdm(ts, desc="AIS")
    for t in ts:
        # log f_1(x) - log p0(x) = -E(x) + B(x) + log_norm
        log_w = log_w + (betas[t] - betas[t - 1]) * (b - e + base.log_norm)
        beta = betas[t]
        if t == len(betas) - 1 or beta == 0.0:
            continue  # the last transition does not change the weights; at β = 0 x ~ p0 already

        def u_beta(z: Tensor, beta: float = beta) -> Tensor:
            return beta * energy_fn(z) + (1.0 - beta) * base.energy(z)

        state = State(x, beta * e + (1.0 - beta) * b, beta * g + (1.0 - beta) * gb)
        new, info = step_fn(state, u_beta, eps)
        step_sizes.append(eps)
        acc = info.acceptance_prob.mean().item()
        acc_rates.append(acc)
        # Recover E and ∇E at the new states from U_β = βE + (1-β)B (B is analytic), so each
        # transition costs only the sampler's own gradient evaluations. Rounding error is
        # ~eps_mach·|B|/β, and every later use multiplies it by Δβ or β' with Δβ/β, β'/β = O(1)
        # on these schedules, so it stays at the level of the machine precision.
        # Rejected chains keep their cached values exactly.
        b_new, gb_new = base.energy_and_grad(new.x)
        m = info.is_accepted
        e = torch.where(m, (new.energy - (1.0 - beta) * b_new) / beta, e)
        g = torch.where(m[:, None], (new.grad - (1.0 - beta) * gb_new) / beta, g)
        x, b, gb = new.x, b_new, gb_new
        # Constant-gain Robbins–Monro on log step size toward the target acceptance, carried
        # from each intermediate distribution to the next (neighbours need similar steps), as
        # in the BDMC code; a constant gain tracks the target as it moves along the path.
        eps = tune_step_size(eps, acc, 1, target=target_accept, rate=adapt_rate, decay=0.0)
        eps = min(max(eps, lo), hi)
    return log_w, x, step_sizes, acc_rates


def _result(log_w: Tensor, x: Tensor, step_sizes: list[float], acc_rates: list[float],
            direction: Literal["forward", "reverse"]) -> AISResult:
    n = log_w.shape[0]
    lme = log_mean_exp(log_w).item()
    ess = effective_sample_size(log_w).item()
    return AISResult(
        log_z=lme if direction == "forward" else -lme,
        log_weights=log_w,
        log_weight_std=log_w.std().item() if n > 1 else 0.0,
        ess=ess,
        log_z_stderr=math.sqrt(max(1.0 / ess - 1.0 / n, 0.0)),
        acceptance_rate=sum(acc_rates) / len(acc_rates) if acc_rates else float("nan"),
        step_sizes=torch.tensor(step_sizes, dtype=torch.float64),
        samples=x,
        direction=direction,
        bias_note=FORWARD_BIAS_NOTE if direction == "forward" else REVERSE_BIAS_NOTE,
    )


def ais_log_z(
    energy_fn: EnergyFn,
    dim: int,
    *,
    n_chains: int,
    n_steps: int,
    generator: torch.Generator,
    base_std: float | Tensor = 1.0,
    base_mean: float | Tensor = 0.0,
    transition: Literal["hmc", "mala"] = "hmc",
    schedule: Literal["sigmoid", "linear"] | Tensor = "sigmoid",
    schedule_delta: float = 4.0,
    step_size: float = 0.1,
    n_leapfrog: int = 10,
    target_accept: float = 0.65,
    adapt_rate: float = 0.5,
    step_size_bounds: tuple[float, float] = (1e-4, 10.0),
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> AISResult:
    """Forward AIS estimate of ``log Z = log ∫ exp(-E(x)) dx`` (nats).

    Args:
        energy_fn: ``[b, D] -> [b]``, unnormalised negative log-density (rows independent).
        dim: D.
        n_chains: independent AIS chains (the estimate averages their weights).
        n_steps: number K of annealing steps (K + 1 inverse temperatures, K - 1 transitions).
        generator: source of randomness.
        base_std, base_mean: the normalised base ``N(mean, std² I)`` (scalars or ``[D]``). It
            should cover the target's support: a base narrower than the target makes the
            weights heavy-tailed.
        transition: ``"hmc"`` (``n_leapfrog`` leapfrog steps) or ``"mala"``, both
            Metropolis-adjusted.
        schedule: ``"sigmoid"`` (:func:`sigmoid_schedule` with ``schedule_delta``), ``"linear"``,
            or a tensor of inverse temperatures from 0 to 1 (then ``n_steps`` is ignored).
        step_size: initial step size, adapted after every transition by
            ``eps *= exp(adapt_rate · (mean acceptance - target_accept))``, clipped to
            ``step_size_bounds``. The adaptation uses the current population, so the kernels
            depend weakly on the chains, as in the BDMC code; with many chains this effect is
            negligible against the Monte-Carlo error.
        dtype, device: of the chains; dtype defaults to ``base_mean``'s if it is a tensor,
            else to torch's default dtype.
        progress: show a ``tqdm`` progress bar.

    Returns:
        :class:`AISResult` (``bias_note`` states that this under-estimates log Z).
    """
    if dtype is None:
        dtype = base_mean.dtype if isinstance(base_mean, Tensor) else torch.get_default_dtype()
    base = _GaussianBase(base_mean, base_std, dim, dtype, device)
    betas = _betas(schedule, n_steps, schedule_delta)
    x = base.sample(n_chains, generator)
    log_w, x, steps, accs = _anneal(
        x, energy_fn, base, betas, transition=transition, step_size=step_size,
        n_leapfrog=n_leapfrog, target_accept=target_accept, adapt_rate=adapt_rate,
        step_size_bounds=step_size_bounds, generator=generator, progress=progress,
    )
    return _result(log_w, x, steps, accs, "forward")


def reverse_ais_log_z(
    energy_fn: EnergyFn,
    x_target: Tensor,
    *,
    n_steps: int,
    generator: torch.Generator,
    base_std: float | Tensor = 1.0,
    base_mean: float | Tensor = 0.0,
    transition: Literal["hmc", "mala"] = "hmc",
    schedule: Literal["sigmoid", "linear"] | Tensor = "sigmoid",
    schedule_delta: float = 4.0,
    step_size: float = 0.1,
    n_leapfrog: int = 10,
    target_accept: float = 0.65,
    adapt_rate: float = 0.5,
    step_size_bounds: tuple[float, float] = (1e-4, 10.0),
    progress: bool = False,
) -> AISResult:
    """Reverse AIS: anneal EXACT target samples back to the base along the reversed schedule.

    Runs the same path from β = 1 to β = 0: ``log w += (β_{t-1} - β_t)(log f_1 - log p0)`` before
    each transition. ``mean(exp(log w))`` is an unbiased estimate of ``1/Z`` (the HMC and MALA
    kernels are reversible, so the reverse chain is the forward chain's time reversal), hence
    ``log_z = -(logsumexp(log w) - log n)`` OVER-estimates log Z in expectation; with
    :func:`ais_log_z` it brackets log Z (Grosse et al. 2015, BDMC).

    Args:
        x_target: exact samples of ``p ∝ exp(-E)``, ``[n, D]`` (one chain each); the chains
            use their dtype and device. Approximate samples void the bound.
        Other arguments as in :func:`ais_log_z`.
    """
    if x_target.dim() != 2:
        raise ValueError(f"x_target must have shape [n, D], got {tuple(x_target.shape)}.")
    base = _GaussianBase(base_mean, base_std, x_target.shape[1], x_target.dtype, x_target.device)
    betas = _betas(schedule, n_steps, schedule_delta)[::-1]
    log_w, x, steps, accs = _anneal(
        x_target.detach(), energy_fn, base, betas, transition=transition, step_size=step_size,
        n_leapfrog=n_leapfrog, target_accept=target_accept, adapt_rate=adapt_rate,
        step_size_bounds=step_size_bounds, generator=generator, progress=progress,
    )
    return _result(log_w, x, steps, accs, "reverse")


__all__ = ["ais_log_z", "AISResult", "reverse_ais_log_z", "sigmoid_schedule"]
