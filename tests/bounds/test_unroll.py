"""Known answers for the differentiable Adam and the functional unroll used by LBT (float64)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from ebmlab.bounds.elbo import elbo, gaussian_log_lik
from ebmlab.bounds.unroll import (
    DiffAdamState,
    FunctionalModule,
    adam_state_from_torch,
    adam_state_to_torch,
    clip_global_norm,
    diff_adadelta_step,
    diff_adam_step,
    init_diff_adam_state,
    module_tensors,
    unroll,
)

DT = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def seeded(seed: int, build) -> nn.Module:
    """A float64 network with a reproducible initialisation, leaving the global RNG state as it was."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build().double()


def random_params(seed: int) -> dict[str, torch.Tensor]:
    g = gen(seed)
    return {"w": torch.randn(3, 2, generator=g, dtype=DT), "b": torch.randn(4, generator=g, dtype=DT)}


def grad_sequence(seed: int, n: int) -> list[dict[str, torch.Tensor]]:
    g = gen(seed)
    # "w": mixed scales from step to step; "b": always ~1e-6, far below √ε = 1e-4, where the ε placement matters.
    scales = [1.0, 1e-5, 0.3, 2.0, 1e-6, 0.05, 1.0, 0.7]
    return [
        {
            "w": scales[i % len(scales)] * torch.randn(3, 2, generator=g, dtype=DT),
            "b": 1e-6 * torch.randn(4, generator=g, dtype=DT),
        }
        for i in range(n)
    ]


def torch_adam_trajectory(params, grads, *, lr, betas, eps, maximize=False):
    leaves = {n: torch.nn.Parameter(p.clone()) for n, p in params.items()}
    opt = torch.optim.Adam(leaves.values(), lr=lr, betas=betas, eps=eps, maximize=maximize)
    out = []
    for gs in grads:
        for n, p in leaves.items():
            p.grad = gs[n].clone()
        opt.step()
        out.append({n: p.detach().clone() for n, p in leaves.items()})
    return out


def diff_adam_trajectory(params, grads, **kw):
    state = init_diff_adam_state(params)
    out = []
    for gs in grads:
        params, state = diff_adam_step(params, gs, state, **kw)
        out.append(params)
    return out, state


def lbt_adam_reference(params, grads, *, lr, beta1, beta2, eps):
    """LBT's Adam written independently in numpy from the paper code's formula:
    t += 1; lr_t = lr·sqrt(1 − β2^t)/(1 − β1^t); m = β1 m + (1 − β1) g; v = β2 v + (1 − β2) g²;
    θ = θ − lr_t · m / sqrt(v + ε)."""
    theta = {n: p.numpy().copy() for n, p in params.items()}
    m = {n: np.zeros_like(v) for n, v in theta.items()}
    v = {n: np.zeros_like(x) for n, x in theta.items()}
    out = []
    for t, gs in enumerate(grads, start=1):
        lr_t = lr * np.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
        for n in theta:
            g = gs[n].numpy()
            m[n] = beta1 * m[n] + (1.0 - beta1) * g
            v[n] = beta2 * v[n] + (1.0 - beta2) * g * g
            theta[n] = theta[n] - lr_t * m[n] / np.sqrt(v[n] + eps)
        out.append({n: x.copy() for n, x in theta.items()})
    return out


# --- the optimiser step ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("maximize", [False, True])
def test_eps_zero_reproduces_torch_adam(maximize):
    # With ε = 0 LBT's update and torch's are the same formula; agreement to rounding over 8 steps.
    params, grads = random_params(1), grad_sequence(2, 8)
    ref = torch_adam_trajectory(params, grads, lr=1e-2, betas=(0.5, 0.999), eps=0.0, maximize=maximize)
    ours, state = diff_adam_trajectory(params, grads, lr=1e-2, betas=(0.5, 0.999), eps=0.0, maximize=maximize)
    for a, b in zip(ours, ref):
        for n in a:
            torch.testing.assert_close(a[n], b[n], rtol=1e-13, atol=1e-15)
    assert state.step == 8


def test_outside_sqrt_placement_reproduces_torch_adam_with_eps():
    params, grads = random_params(3), grad_sequence(4, 8)
    ref = torch_adam_trajectory(params, grads, lr=1e-2, betas=(0.5, 0.999), eps=1e-8)
    ours, _ = diff_adam_trajectory(params, grads, lr=1e-2, betas=(0.5, 0.999), eps=1e-8, eps_placement="outside_sqrt")
    for a, b in zip(ours, ref):
        for n in a:
            torch.testing.assert_close(a[n], b[n], rtol=1e-13, atol=1e-15)



@pytest.mark.parametrize("scale", [1.0, 1e-4])  # gradients far above and near Adadelta's √ε = 1e-3
def test_adadelta_step_reproduces_torch_adadelta(scale):
    """The compiled steps' Adadelta update: eight steps of torch.optim.Adadelta (ρ 0.9, ε 1e-6, lr 0.1) to float64
    rounding, with gradients where ε matters and where it does not."""
    params, grads = random_params(7), [{n: g * scale for n, g in gs.items()} for gs in grad_sequence(8, 8)]
    live = {n: nn.Parameter(p.clone()) for n, p in params.items()}
    opt = torch.optim.Adadelta(live.values(), lr=0.1, rho=0.9, eps=1e-6)
    ours = dict(params)
    s = {n: torch.zeros_like(p) for n, p in params.items()}
    a = {n: torch.zeros_like(p) for n, p in params.items()}
    for gs in grads:
        for n, p in live.items():
            p.grad = gs[n].clone()
        opt.step()
        ours, s, a = diff_adadelta_step(ours, gs, s, a, lr=0.1, rho=0.9, eps=1e-6)
        for n, p in live.items():
            torch.testing.assert_close(ours[n], p.detach(), rtol=1e-13, atol=1e-15)
            torch.testing.assert_close(s[n], opt.state[p]["square_avg"], rtol=1e-13, atol=1e-300)
            torch.testing.assert_close(a[n], opt.state[p]["acc_delta"], rtol=1e-13, atol=1e-300)
    assert any((ours[n] - params[n]).abs().max() > 1e-6 for n in params)  # it moved


@pytest.mark.parametrize("max_norm", [1e-3, 1e6])  # clipping, and a cap above the norm (nothing changes)
def test_clip_global_norm_is_torchs_clip(max_norm):
    grads = grad_sequence(9, 1)[0]
    live = {n: nn.Parameter(torch.zeros_like(g)) for n, g in grads.items()}
    for n, p in live.items():
        p.grad = grads[n].clone()
    norm = torch.nn.utils.clip_grad_norm_(live.values(), max_norm)
    ours = clip_global_norm(grads, max_norm)
    for n, p in live.items():
        torch.testing.assert_close(ours[n], p.grad, rtol=1e-15, atol=0.0)
    total = torch.sqrt(sum((g ** 2).sum() for g in ours.values()))
    assert total.item() == pytest.approx(min(max_norm, norm.item()), rel=1e-6)


def test_inside_sqrt_placement_matches_lbt_formula_and_differs_from_torch():
    params, grads = random_params(5), grad_sequence(6, 8)
    ref = lbt_adam_reference(params, grads, lr=1e-2, beta1=0.5, beta2=0.999, eps=1e-8)
    ours, _ = diff_adam_trajectory(params, grads, lr=1e-2, betas=(0.5, 0.999), eps=1e-8)
    for a, b in zip(ours, ref):
        for n in a:
            np.testing.assert_allclose(a[n].numpy(), b[n], rtol=1e-13, atol=1e-15)
    # The placement is not cosmetic: for gradients ~1e-6 torch's step is ~lr (m̂/√v̂ ≈ ±1) while LBT's is
    # ~lr·|g|/√ε ≈ 1e-2·lr, so after 8 steps the "b" trajectories differ by several × 1e-2.
    torch_traj = torch_adam_trajectory(params, grads, lr=1e-2, betas=(0.5, 0.999), eps=1e-8)
    assert (ours[-1]["b"] - torch_traj[-1]["b"]).abs().max() > 1e-2
    assert (ours[-1]["b"] - params["b"]).abs().max() < 1e-3


def test_first_moment_keeps_graph_second_moment_is_detached():
    # g = c·s for a scalar s; after one step from state (m0, v0, t0): ∂θ1/∂s = −lr_t (1 − β1) c / √(v1 + ε) with v1
    # held constant (a differentiable v1 would add a term in ∂v1/∂s = 2(1 − β2) c² s).
    s = torch.tensor(0.7, dtype=DT, requires_grad=True)
    c = torch.tensor([0.3, -2.0], dtype=DT)
    m0, v0 = torch.tensor([0.1, 0.2], dtype=DT), torch.tensor([0.01, 0.5], dtype=DT)
    state = DiffAdamState(4, {"p": m0}, {"p": v0})
    p0 = torch.tensor([1.0, -1.0], dtype=DT)
    lr, (b1, b2), eps = 0.05, (0.5, 0.999), 1e-8
    new, st = diff_adam_step({"p": p0}, {"p": c * s}, state, lr=lr, betas=(b1, b2), eps=eps)
    assert st.step == 5 and st.m["p"].requires_grad and not st.v["p"].requires_grad
    (dtheta,) = torch.autograd.grad(new["p"].sum(), s)
    v1 = b2 * v0 + (1 - b2) * (c * 0.7) ** 2
    lr_t = lr * math.sqrt(1 - b2**5) / (1 - b1**5)
    expected = (-lr_t * (1 - b1) * c / torch.sqrt(v1 + eps)).sum()
    torch.testing.assert_close(dtheta, expected, rtol=1e-13, atol=0)
    # Nothing passed in was modified.
    assert torch.equal(m0, torch.tensor([0.1, 0.2], dtype=DT)) and torch.equal(p0, torch.tensor([1.0, -1.0], dtype=DT))


def test_step_rejects_mismatched_names():
    params = random_params(0)
    with pytest.raises(ValueError, match="missing"):
        diff_adam_step(params, {"w": params["w"]}, init_diff_adam_state(params), lr=1e-3)


# --- the unroll on a tiny LBT problem -------------------------------------------------------------------------


class TinyVAE(nn.Module):
    """2-d data, 2-d latent, one hidden layer in each direction; decoder variance fixed (as in LBT's toys)."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Linear(2, 6)
        self.enc_out = nn.Linear(6, 4)
        self.dec = nn.Sequential(nn.Linear(2, 6), nn.Tanh(), nn.Linear(6, 2))

    def encode(self, x):
        mu, logvar = self.enc_out(torch.tanh(self.enc(x))).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z):
        return self.dec(z)

    def forward(self, x):
        return self.encode(x)


LOG_VAR_X = math.log(0.1)


def neg_mean_elbo(model, x, noise_seed):
    """−mean ELBO of x under the estimator ``model`` (a module or a FunctionalModule view), noise fixed."""
    terms = elbo(
        x,
        model.encode,
        model.decode,
        generator=gen(noise_seed),
        log_lik=lambda mean, xx: gaussian_log_lik(mean, xx, LOG_VAR_X),
    )
    return -terms.elbo.mean()


def inner_loss(model, batch):
    x, noise_seed = batch
    return neg_mean_elbo(model, x, noise_seed)


def make_problem(seed: int = 0):
    vae, g_net = seeded(seed, TinyVAE), seeded(seed + 1, lambda: nn.Linear(3, 2))  # G_ψ(z) = Az + c
    opt = torch.optim.Adam(vae.parameters(), lr=1e-2, betas=(0.5, 0.999), eps=1e-8)
    # One real step first, so the look-ahead starts from non-zero moments and step 1.
    x0 = torch.randn(16, 2, generator=gen(100), dtype=DT)
    neg_mean_elbo(vae, x0, 101).backward()
    opt.step()
    opt.zero_grad()
    data = torch.randn(32, 2, generator=gen(102), dtype=DT) * 0.5 + 1.0
    zs = [torch.randn(24, 3, generator=gen(103 + k), dtype=DT) for k in range(2)]
    return vae, g_net, opt, data, zs


def outer_loss(vae, opt, gen_params, g_net, data, zs, *, K=2, lr=1e-2, detach_second_moment=True):
    """LBT generator loss: −mean ELBO(data; φ^K(ψ)), φ^K from K look-ahead steps on G_ψ samples."""
    params, buffers = module_tensors(vae)
    state = adam_state_from_torch(opt, vae)

    def batch_fn(k):
        return functional_call(g_net, gen_params, (zs[k],)), 200 + k

    result = unroll(
        vae, params, buffers, inner_loss, batch_fn, K, lr=lr, state=state, detach_second_moment=detach_second_moment
    )
    return neg_mean_elbo(FunctionalModule(vae, result.params, result.buffers), data, 300), result


def outer_loss_frozen_v(vae, opt, gen_params, g_net, data, zs, frozen_v, *, lr=1e-2, beta2=0.999):
    """The function whose gradient LBT's stop_gradient computes: the same unroll, but with each step's second
    moment v_k pinned to its value ``frozen_v[k]`` at the base point ψ0. Built from diff_adam_step by choosing
    the incoming v so that β2·v_in + (1 − β2)·g² equals the pinned value."""
    params, buffers = module_tensors(vae)
    state = adam_state_from_torch(opt, vae)
    p = {n: t.detach().requires_grad_(True) for n, t in params.items()}
    for k, v_k in enumerate(frozen_v):
        batch = functional_call(g_net, gen_params, (zs[k],)), 200 + k
        loss = inner_loss(FunctionalModule(vae, p, buffers), batch)
        grads = dict(zip(p, torch.autograd.grad(loss, list(p.values()), create_graph=True)))
        v_in = {n: (v_k[n] - (1 - beta2) * grads[n].detach().square()) / beta2 for n in p}
        p, state = diff_adam_step(p, grads, DiffAdamState(state.step, state.m, v_in), lr=lr)
    return neg_mean_elbo(FunctionalModule(vae, p, buffers), data, 300)


def central_differences(f, psi, h=1e-6):
    """∂f/∂ψ by central differences, one coordinate at a time (f returns a Python float)."""
    out = []
    for name, p in psi.items():
        fd = torch.zeros_like(p)
        for i in range(p.numel()):
            e = torch.zeros(p.numel(), dtype=DT)
            e[i] = h
            e = e.reshape(p.shape)
            base = {n: q.detach() for n, q in psi.items()}
            fd.reshape(-1)[i] = (f({**base, name: p.detach() + e}) - f({**base, name: p.detach() - e})) / (2 * h)
        out.append(fd)
    return out


# Central differences with h = 1e-6: truncation O(h² f''') ~ 1e-12, rounding ~ 1e-16·|L|/h ~ 1e-9 absolute;
# rtol 1e-6 / atol 1e-8 leaves two orders of margin above both.
FD_RTOL, FD_ATOL = 1e-6, 1e-8


def test_unroll_is_the_exact_derivative_of_the_unrolled_map_with_differentiable_v():
    # With v differentiable, autograd through unroll must equal the finite-difference derivative of the loss
    # (the forward values do not depend on the flag). This checks functional_call, create_graph grads and the
    # Adam algebra through K = 2 steps, starting from a real optimiser state (step 1, non-zero moments).
    vae, g_net, opt, data, zs = make_problem()
    psi = {n: p.detach().clone().requires_grad_(True) for n, p in g_net.named_parameters()}
    loss, result = outer_loss(vae, opt, psi, g_net, data, zs, detach_second_moment=False)
    assert result.state.step == 3  # t advanced from the real optimiser's 1 by K = 2
    grads = torch.autograd.grad(loss, list(psi.values()))
    fds = central_differences(lambda q: outer_loss(vae, opt, q, g_net, data, zs)[0].item(), psi)
    for g, fd in zip(grads, fds):
        torch.testing.assert_close(g, fd, rtol=FD_RTOL, atol=FD_ATOL)
    # The gradient reaches ψ only through the inner gradients (second-order terms); it must not be trivially 0.
    assert max(g.abs().max().item() for g in grads) > 1e-3


def test_lbt_gradient_matches_finite_differences_with_second_moments_pinned():
    # LBT's default (v detached) is the derivative of the unrolled map with each v_k held at its base-point value.
    vae, g_net, opt, data, zs = make_problem()
    psi = {n: p.detach().clone().requires_grad_(True) for n, p in g_net.named_parameters()}
    # Base-point second moments, step by step (the K = 1 and K = 2 unrolls share their first step).
    frozen_v = [outer_loss(vae, opt, psi, g_net, data, zs, K=k)[1].state.v for k in (1, 2)]
    loss, _ = outer_loss(vae, opt, psi, g_net, data, zs)
    pinned = outer_loss_frozen_v(vae, opt, psi, g_net, data, zs, frozen_v)
    torch.testing.assert_close(loss, pinned, rtol=1e-14, atol=0)
    grads = torch.autograd.grad(loss, list(psi.values()))
    fds = central_differences(lambda q: outer_loss_frozen_v(vae, opt, q, g_net, data, zs, frozen_v).item(), psi)
    for g, fd in zip(grads, fds):
        torch.testing.assert_close(g, fd, rtol=FD_RTOL, atol=FD_ATOL)
    # ...and it differs from the full derivative: the stop_gradient matters on this problem.
    full_loss, _ = outer_loss(vae, opt, psi, g_net, data, zs, detach_second_moment=False)
    full = torch.autograd.grad(full_loss, list(psi.values()))
    assert max((a - b).abs().max().item() for a, b in zip(grads, full)) > 1e-4


def test_lookahead_leaves_real_module_and_optimizer_bitwise_untouched():
    vae, g_net, opt, data, zs = make_problem()
    before_params = {n: p.detach().clone() for n, p in vae.named_parameters()}
    before_state = {id(p): {k: v.clone() for k, v in opt.state[p].items()} for p in vae.parameters()}
    psi = dict(g_net.named_parameters())
    loss, _ = outer_loss(vae, opt, psi, g_net, data, zs)
    loss.backward()
    for n, p in vae.named_parameters():
        assert torch.equal(p, before_params[n]), n
        assert p.grad is None, f"the look-ahead accumulated a gradient into the estimator's {n}"
        for k, v in opt.state[p].items():
            assert torch.equal(v, before_state[id(p)][k]), (n, k)
    assert all(p.grad is not None for p in g_net.parameters())


def test_real_update_round_trip_through_torch_optimizer():
    # The real estimator update: K steps without graph at 3× lr, written back into the module and the Adam.
    vae, g_net, opt, data, zs = make_problem()
    params, buffers = module_tensors(vae)
    state = adam_state_from_torch(opt, vae)
    with torch.no_grad():
        batches = [(g_net(z), 400 + k) for k, z in enumerate(zs)]
    res = unroll(vae, params, buffers, inner_loss, batches, 2, lr=3e-2, state=state, create_graph=False)
    assert not any(t.grad_fn is not None for t in res.state.m.values())
    # Same K steps by hand with diff_adam_step give the same end point.
    p, st = {n: t.detach().requires_grad_(True) for n, t in params.items()}, state
    for batch in batches:
        loss = inner_loss(FunctionalModule(vae, p, buffers), batch)
        grads = dict(zip(p, torch.autograd.grad(loss, list(p.values()))))
        p, st = diff_adam_step(p, grads, st, lr=3e-2)
        p = {n: t.detach().requires_grad_(True) for n, t in p.items()}
    for n in p:
        torch.testing.assert_close(res.params[n], p[n], rtol=0, atol=0)
    adam_state_to_torch(opt, vae, res.state, res.params)
    for n, q in vae.named_parameters():
        assert torch.equal(q.detach(), res.params[n].detach())
    back = adam_state_from_torch(opt, vae)
    assert back.step == 3
    for n in back.m:
        assert torch.equal(back.m[n], res.state.m[n]) and torch.equal(back.v[n], res.state.v[n])
    # The written state is a valid torch.optim.Adam state: one more torch step (ε = 0, where the formulas
    # coincide) equals one more diff_adam_step.
    for group in opt.param_groups:
        group["eps"] = 0.0
    loss = neg_mean_elbo(vae, data, 500)
    named = dict(vae.named_parameters())
    grads = dict(zip(named, torch.autograd.grad(loss, list(named.values()))))
    expected, _ = diff_adam_step({n: q.detach() for n, q in named.items()}, grads, back, lr=1e-2, eps=0.0)
    for n, q in named.items():
        q.grad = grads[n]
    opt.step()
    for n, q in vae.named_parameters():
        torch.testing.assert_close(q.detach(), expected[n], rtol=1e-13, atol=1e-15)


def test_fresh_optimizer_gives_zero_state_and_inconsistent_steps_are_rejected():
    vae = seeded(1, TinyVAE)
    opt = torch.optim.Adam(vae.parameters())
    st = adam_state_from_torch(opt, vae)
    assert st.step == 0 and all(float(t.abs().sum()) == 0 for t in st.m.values())
    with pytest.raises(ValueError, match="weight_decay"):
        adam_state_from_torch(torch.optim.Adam(vae.parameters(), weight_decay=1e-4), vae)
    with pytest.raises(ValueError, match="not managed"):
        adam_state_from_torch(torch.optim.Adam(vae.dec.parameters()), vae)
    # Only the decoder received gradients on the first step: step counts differ.
    vae.decode(torch.zeros(1, 2, dtype=DT)).sum().backward()
    opt.step()
    with pytest.raises(ValueError, match="different step counts"):
        adam_state_from_torch(opt, vae)


def test_batches_sequence_and_function_agree_and_buffers_are_copied():
    class WithBN(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)
            self.bn = nn.BatchNorm1d(2)

        def forward(self, x):
            return self.bn(self.lin(x))

    net = seeded(2, WithBN)
    params, buffers = module_tensors(net)
    state = init_diff_adam_state(params)
    xs = [torch.randn(8, 2, generator=gen(600 + k), dtype=DT) for k in range(3)]

    def loss_fn(model, x):
        return model(x).square().mean()

    a = unroll(net, params, buffers, loss_fn, xs, 3, lr=1e-2, state=state)
    b = unroll(net, params, buffers, loss_fn, lambda k: xs[k], 3, lr=1e-2, state=state)
    for n in a.params:
        assert torch.equal(a.params[n], b.params[n])
    assert len(a.losses) == 3 and a.state.step == 3
    # BatchNorm running statistics moved in the copies, not in the module.
    assert not torch.equal(a.buffers["bn.running_mean"], net.bn.running_mean)
    assert torch.equal(net.bn.running_mean, torch.zeros(2, dtype=DT)) and int(net.bn.num_batches_tracked) == 0
    with pytest.raises(ValueError, match="exactly K"):
        unroll(net, params, buffers, loss_fn, xs, 2, lr=1e-2, state=state)
    with pytest.raises(ValueError, match="scalar"):
        unroll(net, params, buffers, lambda m, x: m(x).square(), xs, 3, lr=1e-2, state=state)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("placement", ["inside_sqrt", "outside_sqrt"])
def test_a_device_step_count_gives_the_int_count_update(dtype, placement):
    """The step count as a 0-d tensor (kept on the device, for captured steps) gives the update an int count gives:
    the bias corrections are computed in float64 from it, as Python computes them from an int. float64: equal to
    rounding (1e-15); float32: the same float32 update (the corrections enter as one rounded factor either way)."""
    g = gen(3)
    p = {"a": torch.randn(5, 4, generator=g, dtype=dtype), "b": torch.randn(7, generator=g, dtype=dtype)}
    grads = {k: torch.randn(v.shape, generator=g, dtype=dtype) for k, v in p.items()}
    m = {k: 0.1 * torch.randn(v.shape, generator=g, dtype=dtype) for k, v in p.items()}
    v = {k: torch.rand(v.shape, generator=g, dtype=dtype) for k, v in p.items()}
    for t in (0, 1, 7, 250):  # early steps, where the corrections are far from 1, and late ones
        kw = dict(lr=3e-3, betas=(0.5, 0.999), eps_placement=placement)
        a, sa = diff_adam_step(p, grads, DiffAdamState(t, m, v), **kw)
        b, sb = diff_adam_step(p, grads, DiffAdamState(torch.tensor(float(t)), m, v), **kw)
        assert isinstance(sb.step, torch.Tensor) and float(sb.step) == sa.step == t + 1
        for k in p:
            assert b[k].dtype == dtype
            tol = 1e-15 if dtype == torch.float64 else 2e-7
            torch.testing.assert_close(b[k], a[k], rtol=tol, atol=tol * 1e-2)


def test_device_step_round_trip_keeps_the_optimizers_tensors():
    """adam_state_from_torch(device_step=True) reads no value on the host, and adam_state_to_torch writes the
    count and the moments into the optimizer's own tensors in place (what a captured graph's replays need)."""
    from ebmlab.syncs import CountHostReads

    vae, g_net, opt, data, zs = make_problem()
    vae.zero_grad()
    inner_loss(vae, (g_net(zs[0]).detach(), 7)).backward()
    opt.step()  # one more real step: every parameter has its state
    s0 = adam_state_from_torch(opt, vae).step
    ids = {id(t) for p in vae.parameters() for t in opt.state[p].values()}
    with CountHostReads() as c:
        st = adam_state_from_torch(opt, vae, device_step=True)
    assert c.total == 0 and isinstance(st.step, torch.Tensor) and float(st.step) == s0
    params, buffers = module_tensors(vae)
    with torch.no_grad():
        batches = [(g_net(z), 400 + k) for k, z in enumerate(zs)]
    res = unroll(vae, params, buffers, inner_loss, batches, 2, lr=3e-2, state=st, create_graph=False)
    with CountHostReads() as c:
        adam_state_to_torch(opt, vae, res.state, res.params)
    assert c.total == 0
    assert {id(t) for p in vae.parameters() for t in opt.state[p].values()} == ids
    assert adam_state_from_torch(opt, vae).step == s0 + 2
    back = adam_state_from_torch(opt, vae, device_step=True)
    for n in back.m:
        assert torch.equal(back.m[n], res.state.m[n]) and torch.equal(back.v[n], res.state.v[n])


def _adam_step_per_parameter(params, grads, state, *, lr, betas, eps, maximize, eps_placement):
    """The update written parameter by parameter (the formula of diff_adam_step's docstring)."""
    b1, b2 = betas
    t = state.step + 1
    out, ms, vs = {}, {}, {}
    for n, p in params.items():
        g = -grads[n] if maximize else grads[n]
        m = b1 * state.m[n] + (1.0 - b1) * g
        v = (b2 * state.v[n] + (1.0 - b2) * g.detach().square()).detach()
        if eps_placement == "inside_sqrt":
            upd = (lr * math.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)) * m / torch.sqrt(v + eps)
        else:
            upd = (lr / (1.0 - b1 ** t)) * m / (torch.sqrt(v) / math.sqrt(1.0 - b2 ** t) + eps)
        out[n], ms[n], vs[n] = p - upd, m, v
    return out, ms, vs


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("placement", ["inside_sqrt", "outside_sqrt"])
def test_multi_tensor_update_equals_the_per_parameter_formula_bit_for_bit(dtype, placement):
    """The update runs as a few torch._foreach_* operations over every parameter; its values, moments and the
    gradient through the first moment are those of the per-parameter formula, exactly."""
    torch.manual_seed(0)
    shapes = [(3, 4), (4,), (5, 5, 2), (64, 32)]
    params = {f"p{i}": torch.randn(s, dtype=dtype) for i, s in enumerate(shapes)}
    psi = torch.randn((), dtype=dtype, requires_grad=True)  # what the gradients depend on (LBT's generator)
    grads = {n: psi * torch.randn_like(p) for n, p in params.items()}
    state = init_diff_adam_state(params)
    state = DiffAdamState(2, {n: torch.randn_like(p) for n, p in params.items()},
                          {n: torch.rand_like(p) for n, p in params.items()})
    kw = {"lr": 1e-3, "betas": (0.5, 0.999), "eps": 1e-8, "maximize": True, "eps_placement": placement}
    new, st = diff_adam_step(params, grads, state, **kw)
    ref, ms, vs = _adam_step_per_parameter(params, grads, state, **kw)
    for n in params:
        assert torch.equal(new[n], ref[n]) and torch.equal(st.m[n], ms[n]) and torch.equal(st.v[n], vs[n])
    (g_new,) = torch.autograd.grad(sum(p.sum() for p in new.values()), psi, retain_graph=True)
    (g_ref,) = torch.autograd.grad(sum(p.sum() for p in ref.values()), psi)
    assert torch.equal(g_new, g_ref)
