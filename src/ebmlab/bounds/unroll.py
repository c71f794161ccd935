"""Differentiable Adam and functional K-step unrolling, for LBT's look-ahead (Xu et al., arXiv 1807.03870).

LBT's generator is trained through φ^K(ψ): K estimator updates, each on a fresh generator batch, written as a
differentiable function of the generator parameters ψ. The optimiser inside the unroll is the Adam variant of
the released code (taufikxu/Learning-By-Teaching, ``compute_est_updated_with_Adam``), step t = 1, 2, ...:

    m_t = β1 m_{t−1} + (1 − β1) g_t                 first moment: keeps its graph (carries ∂g/∂ψ)
    v_t = β2 v_{t−1} + (1 − β2) g_t²                second moment: detached (a stop_gradient there)
    θ_t = θ_{t−1} − lr · √(1 − β2^t)/(1 − β1^t) · m_t / √(v_t + ε)

with ε *inside* the square root (their Keras-derived Adam; the textbook and ``torch.optim.Adam`` form is
m̂/(√v̂ + ε)). Written in bias-corrected terms, torch's step is lr·√(1−β2^t)/(1−β1^t) · m_t/(√v_t + ε√(1−β2^t)),
so the two coincide exactly when ε = 0 and differ only in the floor on the denominator otherwise: √ε (= 1e-4 for
ε = 1e-8) here versus ε√(1−β2^t) in torch. The difference is real for parameters whose gradients are smaller
than ~1e-4, so it is not a detail: ``eps_placement="outside_sqrt"`` selects torch's formula (for a look-ahead
that must match a real torch.optim.Adam update), the default reproduces LBT. The original ascends the ELBO;
here every loss is minimised (ascent on f is descent on −f with identical moments), and ``maximize`` follows
torch's convention of negating the gradient before it enters the moments. ``detach_second_moment=False``
keeps v's graph instead, giving the exact derivative of the unrolled map (a check, not LBT's gradient).

The step counter t advances inside the look-ahead too, and the look-ahead starts from the real optimiser state
(step, m, v), as in the original, where the unrolled graph starts from the Adam variables' current values.

Real estimator update. The original's real update is the same K-step unroll (at 3× the look-ahead learning
rate) whose end point is *assigned* to the estimator's variables and Adam slots. The design here mirrors that
with one code path and torch.optim.Adam as the state holder (so ``state_dict``, checkpoints and exact resume
keep working; read the learning rate from its param group): ``adam_state_from_torch`` reads (step, exp_avg,
exp_avg_sq) into a :class:`DiffAdamState`; ``unroll(..., create_graph=False)`` runs the K steps without a graph;
``adam_state_to_torch`` writes parameters and state back. ``optimizer.step()`` is never called for the
estimator, so its update rule is LBT's everywhere. The look-ahead is the same ``unroll`` with
``create_graph=True`` and nothing written back.

Module calls go through ``torch.func.functional_call``: the unrolled parameters are substituted for the
module's own, which are never modified. The loss receives a :class:`FunctionalModule` view, so any method of the
module (``encode``, ``decode``, ...) can be evaluated at the unrolled parameters, not only ``forward``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.utils.stateless import _reparametrize_module



EpsPlacement = Literal["inside_sqrt", "outside_sqrt"]


@dataclass(frozen=True)
class DiffAdamState:
    """Adam state for a functional (differentiable) optimiser.

    Attributes:
        step: number of updates taken so far (t of the last update; 0 before the first): a Python int, or a 0-d
            tensor (a real optimizer's count, kept on its device so that a step never reads it on the host and can
            be captured in a CUDA graph; the bias corrections are then computed from it in float64 on the device,
            the same numbers as from an int).
        m: name -> first moment, same shape as the parameter; may carry an autograd graph.
        v: name -> second moment, same shape as the parameter; detached (LBT's stop_gradient) unless a step ran
            with ``detach_second_moment=False``.
    """

    step: int | Tensor
    m: dict[str, Tensor]
    v: dict[str, Tensor]

    def detach(self) -> DiffAdamState:
        """A copy cut from the graph (for storing or for a real update)."""
        return DiffAdamState(
            self.step, {n: t.detach() for n, t in self.m.items()}, {n: t.detach() for n, t in self.v.items()}
        )


def init_diff_adam_state(params: Mapping[str, Tensor]) -> DiffAdamState:
    """Zero moments and step 0 for ``params`` (name -> tensor), as a fresh torch.optim.Adam has."""
    zeros = {n: torch.zeros_like(p, memory_format=torch.preserve_format).detach() for n, p in params.items()}
    return DiffAdamState(0, zeros, {n: z.clone() for n, z in zeros.items()})


def _check_keys(what: str, got: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    if set(got) != set(expected):
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        raise ValueError(
            f"{what} must have the same names as params; missing {missing}, unexpected {extra}. Build the state "
            f"with init_diff_adam_state(params) or adam_state_from_torch(optimizer, module) for the same params."
        )


def diff_adam_step(
    params: Mapping[str, Tensor],
    grads: Mapping[str, Tensor | None],
    state: DiffAdamState,
    *,
    lr: float | Tensor,
    betas: tuple[float, float] = (0.5, 0.999),
    eps: float = 1e-8,
    maximize: bool = False,
    eps_placement: EpsPlacement = "inside_sqrt",
    detach_second_moment: bool = True,
) -> tuple[dict[str, Tensor], DiffAdamState]:
    """One Adam update, out of place and differentiable through the gradients and the first moment.

    Args:
        params: name -> parameter tensor θ_{t−1} (any shape).
        grads: name -> gradient of the loss at θ_{t−1}, same shape (None is read as a zero gradient). Pass
            gradients computed with ``create_graph=True`` to differentiate through the step.
        state: moments and step count before the update.
        lr: learning rate.
        betas: (β1, β2); LBT uses (0.5, 0.999).
        eps: ε (LBT: 1e-8).
        maximize: ascend instead of descend (the gradient is negated before it enters the moments, as in
            torch.optim.Adam(maximize=True), so the stored moments have torch's meaning).
        eps_placement: "inside_sqrt" — LBT's m_t/√(v_t + ε) form given in the module docstring; "outside_sqrt" —
            torch.optim.Adam's m̂/(√v̂ + ε).
        detach_second_moment: True (LBT) treats v_t as a constant of whatever produced the gradients; False
            keeps its graph, giving the exact derivative of the unrolled map (used to check the unroll against
            finite differences; LBT's gradient is that derivative with the v-paths dropped).

    Returns:
        (new params, new state): new tensors; nothing passed in is modified. new_state.m and the new params keep
        the graph of the gradients; new_state.v is detached unless ``detach_second_moment`` is False.
    """
    _check_keys("grads", grads, params)
    _check_keys("state.m", state.m, params)
    _check_keys("state.v", state.v, params)
    if eps_placement not in ("inside_sqrt", "outside_sqrt"):
        raise ValueError(f"eps_placement must be 'inside_sqrt' or 'outside_sqrt'; got {eps_placement!r}")
    beta1, beta2 = betas
    t = state.step + 1
    if isinstance(t, Tensor):  # on the device, in float64 as the Python numbers are
        t64 = t.to(torch.float64)
        b2 = 1.0 - torch.pow(beta2, t64)
        bias1: float | Tensor = 1.0 - torch.pow(beta1, t64)
        sqrt_bias2: float | Tensor = torch.sqrt(b2)
    else:
        bias1 = 1.0 - beta1**t
        sqrt_bias2 = math.sqrt(1.0 - beta2**t)
    names = list(params)
    ps = [params[n] for n in names]
    gs = []
    for name, p in zip(names, ps):
        g = grads[name]
        if g is None:
            g = torch.zeros_like(p)
        if g.shape != p.shape:
            raise ValueError(f"gradient for {name!r} has shape {tuple(g.shape)}, parameter has {tuple(p.shape)}")
        gs.append(g)
    if maximize:
        gs = list(torch._foreach_neg(gs))
    # one multi-tensor operation per term over every parameter (torch._foreach_*): the same arithmetic per tensor as
    # a loop over the parameters, in a few kernels instead of ~10 per parameter (their launch and autograd cost
    # dominates a small network's step on a CPU)
    ms = torch._foreach_add(torch._foreach_mul([state.m[n] for n in names], beta1),
                            torch._foreach_mul(gs, 1.0 - beta1))
    # LBT wraps the second moment in tf.stop_gradient: v is a constant of ψ, so ∂θ/∂ψ flows through m only.
    gv = [g.detach() for g in gs] if detach_second_moment else gs
    vs = list(torch._foreach_add(torch._foreach_mul([state.v[n] for n in names], beta2),
                                 torch._foreach_mul(torch._foreach_mul(gv, gv), 1.0 - beta2)))
    if detach_second_moment:
        vs = [v.detach() for v in vs]
    if eps_placement == "inside_sqrt":
        scale = lr * sqrt_bias2 / bias1
        denoms = torch._foreach_sqrt(torch._foreach_add(vs, eps))
    else:
        scale = lr / bias1
        denoms = torch._foreach_add(torch._foreach_div(torch._foreach_sqrt(vs), sqrt_bias2), eps)
    # (scale · m) / denominator, in the order of the per-parameter formula (the same rounding)
    scaled = [scale * m for m in ms] if isinstance(scale, Tensor) else torch._foreach_mul(ms, scale)
    updates = torch._foreach_div(scaled, denoms)
    new_params = dict(zip(names, torch._foreach_sub(ps, updates)))
    new_m = dict(zip(names, ms))
    new_v = dict(zip(names, vs))
    return new_params, DiffAdamState(t, new_m, new_v)



def diff_adadelta_step(params: Mapping[str, Tensor], grads: Mapping[str, Tensor], square_avg: Mapping[str, Tensor],
                       acc_delta: Mapping[str, Tensor], *, lr: float | Tensor, rho: float = 0.9, eps: float = 1e-6
                       ) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]:
    """One Adadelta update (Zeiler 2012) out of place, in torch.optim.Adadelta's form (no weight decay)::

        s_t = ρ s_{t−1} + (1 − ρ) g²          Δ = √(a_{t−1} + ε) / √(s_t + ε) · g
        a_t = ρ a_{t−1} + (1 − ρ) Δ²          θ_t = θ_{t−1} − lr · Δ

    Returns (new params, new s, new a); nothing passed in is modified. The compiled steps' update where a run
    trains with Adadelta (VGAN's released optimiser)."""
    _check_keys("square_avg", square_avg, params)
    _check_keys("acc_delta", acc_delta, params)
    new_p, new_s, new_a = {}, {}, {}
    for n, p in params.items():
        g = grads[n]
        s = square_avg[n] * rho + (1 - rho) * g * g
        delta = (acc_delta[n] + eps).sqrt() / (s + eps).sqrt() * g
        new_a[n] = acc_delta[n] * rho + (1 - rho) * delta * delta
        new_s[n], new_p[n] = s, p - lr * delta
    return new_p, new_s, new_a


def clip_global_norm(grads: Mapping[str, Tensor], max_norm: float) -> dict[str, Tensor]:
    """The gradients rescaled to a global L2 norm of at most ``max_norm``, as ``torch.nn.utils.clip_grad_norm_``
    rescales them in place (its norm, ``torch.nn.utils.get_total_norm``, and its coefficient max_norm / (norm + 1e-6),
    capped at 1), out of place."""
    norm = torch.nn.utils.get_total_norm(list(grads.values()))
    coef = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
    return {n: g * coef for n, g in grads.items()}


class FunctionalModule:
    """A module evaluated at given parameters and buffers, through ``torch.func.functional_call``.

    ``view(*args)`` runs ``module.forward``; ``view.call("encode", x)`` or simply ``view.encode(x)`` runs any
    other method of the module with the same substituted tensors. Names absent from ``params``/``buffers`` fall
    back to the module's own tensors. ``view.params`` and ``view.buffers`` give the dictionaries themselves.
    """

    def __init__(self, module: nn.Module, params: Mapping[str, Tensor], buffers: Mapping[str, Tensor]):
        self.module = module
        self.params = dict(params)
        self.buffers = dict(buffers)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return functional_call(self.module, (self.params, self.buffers), args, kwargs)

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if not callable(getattr(self.module, method, None)):
            raise AttributeError(f"{type(self.module).__name__} has no method {method!r}")
        # functional_call runs forward only; its own means, the parameters swapped in for the call, runs any method
        # (a module built inside the call, as a holder whose forward dispatches, would not trace under torch.compile)
        with _reparametrize_module(self.module, {**self.params, **self.buffers}):
            return getattr(self.module, method)(*args, **kwargs)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_") or name in ("module", "params", "buffers"):
            raise AttributeError(name)
        if callable(getattr(type(self.module), name, None)):
            return lambda *args, **kwargs: self.call(name, *args, **kwargs)
        raise AttributeError(f"{type(self.module).__name__} has no method {name!r} to call functionally")


def module_tensors(module: nn.Module) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(params, buffers) of ``module`` as detached name -> tensor dicts, the usual start of an unroll.

    Detaching means the outer backward of a look-ahead never accumulates into the module's ``.grad``; ``unroll``
    turns each parameter into a fresh leaf that requires grad, so the inner gradients still exist. Buffers are
    cloned, not just detached: a functional forward in training mode updates BatchNorm running statistics in
    place, and a detached view would write them into the real module.
    """
    params = {n: p.detach() for n, p in module.named_parameters()}
    buffers = {n: b.detach().clone() for n, b in module.named_buffers()}
    return params, buffers


class Unrolled(NamedTuple):
    """Result of :func:`unroll`."""

    params: dict[str, Tensor]  # θ_K, with the graph back to the batches when create_graph=True
    state: DiffAdamState  # optimiser state after the K steps (step advanced by K)
    buffers: dict[str, Tensor]  # copies of the buffers as updated by the K forward passes (BatchNorm stats)
    losses: list[Tensor]  # the K inner losses, detached, each at the parameters before its step


def unroll(
    module: nn.Module,
    params: Mapping[str, Tensor],
    buffers: Mapping[str, Tensor],
    loss_fn: Callable[[FunctionalModule, Any], Tensor],
    batches_or_batch_fn: Sequence[Any] | Callable[[int], Any],
    K: int,
    *,
    lr: float,
    state: DiffAdamState,
    betas: tuple[float, float] = (0.5, 0.999),
    eps: float = 1e-8,
    eps_placement: EpsPlacement = "inside_sqrt",
    detach_second_moment: bool = True,
    create_graph: bool = True,
    reduce_grads: Callable[..., Sequence[Tensor | None]] | None = None,
    func_grads: bool = False,
) -> Unrolled:
    """K functional Adam steps on ``loss_fn``, without touching the module or the caller's optimiser state.

    Args:
        module: the network whose parameters are unrolled (read for its structure only).
        params: name -> starting parameter tensor (e.g. from :func:`module_tensors`). Every entry is updated; a
            tensor that does not require grad is replaced by a fresh leaf that does (the input is not modified).
            To hold a parameter fixed, pass it in ``buffers`` instead.
        buffers: name -> buffer tensor; copied first, so BatchNorm running statistics updated by the inner
            forward passes land in the copies (returned in ``Unrolled.buffers``).
        loss_fn: (model, batch) -> scalar loss to minimise, where ``model`` is a :class:`FunctionalModule` view
            of ``module`` at the current unrolled parameters (e.g. −mean ELBO of the generator batch).
        batches_or_batch_fn: K batches, or a function step -> batch called once per step (k = 0..K−1), e.g.
            fresh generator samples carrying the graph to the generator's parameters.
        K: number of steps (≥ 1).
        lr, betas, eps, eps_placement, detach_second_moment: see :func:`diff_adam_step`.
        state: optimiser state to start from (not modified; copied).
        create_graph: True for a look-ahead to differentiate through (second-order terms kept); False for a real
            update (each step's result is detached, so no graph accumulates).
        reduce_grads: applied to each step's gradients before the update, called as
            ``reduce_grads(grads, differentiable=create_graph)`` (a data-parallel run passes the average over its
            processes, ``ebmlab.distributed.average_gradients``); None: the gradients as they are.
        func_grads: take each inner gradient with ``torch.func.grad_and_value`` instead of ``torch.autograd.grad``:
            the same numbers, in a form ``torch.compile`` traces into one graph, and which an outer ``torch.func``
            transform differentiates (the second-order terms of a look-ahead) — a compiled step's form
            (``ebmlab.compiled``). ``create_graph`` then only decides whether each step's result is detached.

    Returns:
        :class:`Unrolled` (params, state, buffers, losses).
    """
    if not isinstance(K, int) or K < 1:
        raise ValueError(f"K must be a positive integer number of unrolled steps; got {K!r}")
    if callable(batches_or_batch_fn):
        batch_fn = batches_or_batch_fn
    else:
        batches = list(batches_or_batch_fn)
        if len(batches) != K:
            raise ValueError(f"got {len(batches)} batches for K = {K} steps; pass exactly K batches or a function")
        batch_fn = batches.__getitem__
    _check_keys("state.m", state.m, params)
    _check_keys("state.v", state.v, params)

    def as_leaf(p: Tensor) -> Tensor:
        return p if p.requires_grad or func_grads else p.detach().requires_grad_(True)

    current = {n: as_leaf(p) for n, p in params.items()}
    buffers_copy = {n: b.clone() for n, b in buffers.items()}
    # Copies so that no later in-place use by the caller can alias the optimiser state we started from.
    st = DiffAdamState(
        state.step, {n: t.clone() for n, t in state.m.items()}, {n: t.clone() for n, t in state.v.items()}
    )
    names = list(current)
    losses: list[Tensor] = []
    for k in range(K):
        batch = batch_fn(k)

        def step_loss(p: dict[str, Tensor]) -> Tensor:
            loss = loss_fn(FunctionalModule(module, p, buffers_copy), batch)
            if not isinstance(loss, Tensor) or loss.dim() != 0:
                shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
                raise ValueError(f"loss_fn must return a scalar tensor (reduce over the batch); got {shape}")
            return loss

        if func_grads:
            by_name, loss = torch.func.grad_and_value(step_loss)(current)
            grads: Sequence[Tensor | None] = tuple(by_name[n] for n in names)
        else:
            loss = step_loss(current)
            grads = torch.autograd.grad(loss, [current[n] for n in names], create_graph=create_graph,
                                        allow_unused=True)
        if reduce_grads is not None:
            grads = tuple(reduce_grads(grads, differentiable=create_graph))  # type: ignore[arg-type]
        current, st = diff_adam_step(
            current,
            dict(zip(names, grads)),
            st,
            lr=lr,
            betas=betas,
            eps=eps,
            eps_placement=eps_placement,
            detach_second_moment=detach_second_moment,
        )
        if not create_graph:
            current = {n: p.detach() if func_grads else p.detach().requires_grad_(True) for n, p in current.items()}
            st = st.detach()
        losses.append(loss.detach())
    return Unrolled(current, st, buffers_copy, losses)


def _named_params_in(optimizer: torch.optim.Optimizer,
                     module: nn.Module) -> list[tuple[str, nn.Parameter, dict[str, Any]]]:
    groups = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    out = []
    for name, p in module.named_parameters():
        if id(p) not in groups:
            raise ValueError(
                f"parameter {name!r} of the module is not managed by the optimizer; build the optimizer over "
                f"module.parameters() (or unroll a sub-module that the optimizer covers)"
            )
        group = groups[id(p)]
        if group.get("amsgrad", False) or group.get("weight_decay", 0.0) != 0.0:
            raise ValueError(
                "the differentiable Adam implements plain Adam; the optimizer has amsgrad="
                f"{group.get('amsgrad')} and weight_decay={group.get('weight_decay')}; use amsgrad=False and "
                "weight_decay=0"
            )
        out.append((name, p, group))
    return out


def adam_state_from_torch(optimizer: torch.optim.Optimizer, module: nn.Module, *,
                          device_step: bool = False) -> DiffAdamState:
    """The state of a real torch.optim.Adam over ``module``'s parameters, as a :class:`DiffAdamState`.

    Moments are copied (detached), so the look-ahead starts where the real estimator is and cannot alter it.
    A parameter the optimizer has not stepped yet gets zero moments. All parameters must share one step count.

    Args:
        optimizer: torch.optim.Adam (amsgrad=False, weight_decay=0) whose param groups contain every parameter of
            ``module``.
        module: the estimator; the state's names are ``module.named_parameters()`` names.
        device_step: return the step count as the optimizer's own 0-d tensor (copied) instead of an int, and do
            not read it on the host (a step captured in a CUDA graph cannot): the counts are then only checked to
            be all present or all absent, not equal — for callers that write every parameter's state together
            (:func:`adam_state_to_torch`, as LBT does).
    """
    m: dict[str, Tensor] = {}
    v: dict[str, Tensor] = {}
    steps: dict[str, int] = {}
    device_steps: list[Tensor] = []
    for name, p, _ in _named_params_in(optimizer, module):
        st = optimizer.state.get(p, {})
        if "exp_avg" in st:
            m[name] = st["exp_avg"].detach().clone()
            v[name] = st["exp_avg_sq"].detach().clone()
            if device_step and isinstance(st["step"], Tensor):
                device_steps.append(st["step"])
            else:
                steps[name] = int(st["step"])
        else:
            m[name] = torch.zeros_like(p).detach()
            v[name] = torch.zeros_like(p).detach()
            steps[name] = 0
    if device_steps:
        if steps:
            raise ValueError(f"only some of the optimizer's parameters have been stepped ({sorted(steps)} not); the "
                             f"differentiable Adam keeps one step count — give every parameter a gradient")
        return DiffAdamState(device_steps[0].detach().clone(), m, v)
    distinct = set(steps.values())
    if len(distinct) > 1:
        raise ValueError(
            f"the optimizer's parameters have different step counts {sorted(distinct)} (some received no gradient "
            f"on some steps); the differentiable Adam keeps one step count — give every parameter a gradient"
        )
    return DiffAdamState(distinct.pop() if distinct else 0, m, v)


def adam_state_to_torch(
    optimizer: torch.optim.Optimizer,
    module: nn.Module,
    state: DiffAdamState,
    params: Mapping[str, Tensor] | None = None,
) -> None:
    """Write a :class:`DiffAdamState` (and, if given, unrolled parameters) into a real optimizer and module.

    This is the real estimator update: θ and (step, exp_avg, exp_avg_sq) are overwritten in place, under
    no_grad, so that the optimizer's ``state_dict`` (checkpoints) and later ``adam_state_from_torch`` calls see
    the new state. Only names present in ``state`` (and ``params``) are written.

    Args:
        optimizer: the torch.optim.Adam over ``module``'s parameters.
        module: the estimator.
        state: the state to store (its first moments are detached on the way in).
        params: name -> new parameter values (e.g. ``unroll(..., create_graph=False).params``), or None.
    """
    by_name = {name: p for name, p, _ in _named_params_in(optimizer, module)}
    unknown = sorted(set(state.m) - set(by_name)) + sorted(set(params or {}) - set(by_name))
    if unknown:
        raise ValueError(f"names {unknown} are not parameters of the module; expected names from named_parameters()")
    with torch.no_grad():
        if params is not None:
            for name, value in params.items():
                by_name[name].copy_(value)
        for name in state.m:
            p = by_name[name]
            st = optimizer.state[p]
            old_step = st.get("step")
            if isinstance(old_step, Tensor) and isinstance(state.step, Tensor):
                old_step.copy_(state.step)  # in place, on its device: no host read, and a captured graph's
                # replays keep reading and writing the same tensors (also the moments below)
            elif isinstance(old_step, Tensor):
                st["step"] = torch.tensor(float(state.step), dtype=old_step.dtype, device=old_step.device)
            else:
                # torch.optim.Adam keeps a float32 (float64 under a float64 default dtype) CPU scalar tensor.
                dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
                st["step"] = (state.step.detach().to(dtype).clone() if isinstance(state.step, Tensor)
                              else torch.tensor(float(state.step), dtype=dtype))
            if "exp_avg" in st and st["exp_avg"].shape == p.shape:
                st["exp_avg"].copy_(state.m[name].detach())
                st["exp_avg_sq"].copy_(state.v[name].detach())
                continue
            st["exp_avg"] = state.m[name].detach().clone().to(p)
            st["exp_avg_sq"] = state.v[name].detach().clone().to(p)


__all__ = ["adam_state_from_torch", "adam_state_to_torch", "clip_global_norm", "diff_adadelta_step", "diff_adam_step",
           "DiffAdamState", "FunctionalModule", "init_diff_adam_state", "module_tensors", "unroll", "Unrolled"]
