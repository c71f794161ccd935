"""Known-answer tests for ebmlab.samplers.mcmc (float64, fixed seeds).

Moment checks use the FINAL states of many independent chains, so the draws are i.i.d. and the
Monte-Carlo standard errors are exact: for N draws of N(μ, Σ), se(mean_i) = sqrt(Σ_ii / N) and
se(cov_ij) = sqrt((Σ_ii Σ_jj + Σ_ij²) / N). Each check allows 4 standard errors (two-sided
false-alarm probability 6e-5 per check).
"""

import math

import pytest
import torch

from ebmlab.samplers import mcmc

DT = torch.float64
MEAN = torch.tensor([1.0, -2.0], dtype=DT)
COV = torch.tensor([[2.0, 0.9], [0.9, 1.0]], dtype=DT)
PREC = torch.linalg.inv(COV)


def gaussian_energy(x):
    """E(x) = ½ (x - μ)ᵀ Σ⁻¹ (x - μ): exp(-E) ∝ N(μ, Σ)."""
    d = x - MEAN
    return 0.5 * ((d @ PREC) * d).sum(1)


def assert_moments(x, mean, cov, n_se=4.0):
    n = x.shape[0]
    m_hat = x.mean(0)
    c_hat = torch.cov(x.T)
    se_m = (torch.diagonal(cov) / n).sqrt()
    var = torch.diagonal(cov)
    se_c = ((var[:, None] * var[None, :] + cov**2) / n).sqrt()
    assert ((m_hat - mean).abs() <= n_se * se_m).all(), f"mean {m_hat} vs {mean} (se {se_m})"
    assert ((c_hat - cov).abs() <= n_se * se_c).all(), f"cov {c_hat} vs {cov} (se {se_c})"


def start(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=g, dtype=DT), g


def test_mala_recovers_correlated_gaussian():
    x0, g = start(4000, 0)
    # h = 0.6: the slowest direction (precision 0.395) contracts by ~(1 - 0.6·0.395/2) per
    # accepted step, so 300 steps forget x0 to ~1e-12.
    res = mcmc.run(mcmc.mala, x0, gaussian_energy, n_steps=300, step_size=0.6, generator=g)
    assert 0.3 < res.mean_acceptance < 0.99  # the Metropolis test is active, not degenerate
    assert_moments(res.final_state.x, MEAN, COV)


def test_hmc_recovers_correlated_gaussian_with_adapted_step():
    x0, g = start(4000, 1)
    res = mcmc.run(
        mcmc.hmc, x0, gaussian_energy, n_warmup=40, n_steps=40, step_size=0.1,
        adapt_step_size=True, target_accept=0.65, n_leapfrog=10, step_size_jitter=0.2,
        generator=g,
    )
    # The chain-averaged acceptance over 4000 chains x 40 steps has a Monte-Carlo error of
    # ~0.005; ±0.03 also allows for the step being frozen after a 40-step warm-up (from 0.1,
    # an order of magnitude below the tuned ~1.2).
    assert abs(res.mean_acceptance - 0.65) < 0.03, res.mean_acceptance
    assert res.step_size != 0.1  # it was adapted
    assert_moments(res.final_state.x, MEAN, COV)


def test_kinetic_langevin_recovers_correlated_gaussian():
    x0, g = start(4000, 2)
    # Time step h = 2 sqrt(gamma) = 0.2, friction 1: 500 steps = 100 time units, far beyond
    # the ~2-unit relaxation time. For a Gaussian target the x-marginal of this ABOBA chain is
    # exactly N(μ, Σ) (solving the discrete Lyapunov equation of the linear recursion gives a
    # bias of 1e-15), so the tolerance is Monte-Carlo error only.
    res = mcmc.run(mcmc.kinetic_langevin, x0, gaussian_energy, n_steps=500, gamma=0.01,
                   kappa=1.0, generator=g)
    assert_moments(res.final_state.x, MEAN, COV)


def test_kinetic_langevin_needs_gamma_and_kappa():
    state = mcmc.kinetic_langevin_init(torch.zeros(3, 2, dtype=DT))
    with pytest.raises(TypeError):
        mcmc.kinetic_langevin_step(state, gaussian_energy, gamma=0.01,
                                   generator=torch.Generator())


def test_kinetic_langevin_step_matches_aboba_formula():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 2, generator=g, dtype=DT)
    v = torch.randn(5, 2, generator=g, dtype=DT)
    gamma, kappa = 0.04, 0.3
    new, _ = mcmc.kinetic_langevin_step(mcmc.KineticState(x, v), gaussian_energy, gamma=gamma,
                                        kappa=kappa, generator=torch.Generator().manual_seed(9))
    xi = torch.randn(5, 2, generator=torch.Generator().manual_seed(9), dtype=DT)
    h = 2 * math.sqrt(gamma)
    c = math.exp(-kappa * h)
    xh = x + h / 2 * v
    grad = (xh - MEAN) @ PREC  # ∇E for the Gaussian energy
    v_new = c * (v - h / 2 * grad) + math.sqrt(1 - c * c) * xi - h / 2 * grad
    torch.testing.assert_close(new.v, v_new)
    torch.testing.assert_close(new.x, xh + h / 2 * v_new)


def test_ula_bias_matches_closed_form_and_shrinks_with_step():
    # E = x²/2 (σ² = 1). ULA: x' = (1 - h/2) x + sqrt(h) ξ, whose stationary variance is
    # h / (1 - (1 - h/2)²) = 1 / (1 - h/4): bias h/4 + O(h²).
    n = 20_000
    energy = lambda x: 0.5 * (x**2).sum(1)  # noqa: E731
    biases = []
    for h in (0.8, 0.4, 0.2):
        g = torch.Generator().manual_seed(4)
        x0 = torch.full((n, 1), 3.0, dtype=DT)  # start far away: tests convergence too
        # the offset from x0 decays as (1 - h/2)^n: 3·0.9^200 < 1e-8 for the smallest h
        res = mcmc.run(mcmc.ula, x0, energy, n_steps=200, step_size=h, generator=g)
        var_exact = 1.0 / (1.0 - h / 4.0)
        var_hat = res.final_state.x.var().item()
        se = var_exact * math.sqrt(2.0 / (n - 1))
        assert abs(var_hat - var_exact) < 4 * se, (h, var_hat, var_exact, se)
        assert abs(res.final_state.x.mean().item()) < 4 * math.sqrt(var_exact / n)
        biases.append(var_hat - 1.0)
    # Exact biases 0.25, 0.111, 0.053; the smaller neighbouring gap, 0.058, is 3.7 standard
    # errors of a difference of two independent variance estimates.
    assert biases[0] > biases[1] > biases[2] > 0, biases


def test_hmc_energy_error_is_second_order_in_step_size():
    # Non-Gaussian energy (quartic + correlated quadratic) so the error is not special.
    def energy(x):
        return gaussian_energy(x) + 0.1 * (x**4).sum(1)

    g = torch.Generator().manual_seed(5)
    x = torch.randn(500, 2, generator=g, dtype=DT)
    p = torch.randn(500, 2, generator=g, dtype=DT)
    e0, g0 = mcmc.energy_and_grad(energy, x)
    errs = []
    for eps, n in ((0.1, 10), (0.05, 20), (0.025, 40)):  # fixed trajectory length 1
        x1, p1, e1, _ = mcmc.leapfrog(x, p, g0, energy, eps, n)
        errs.append(((e1 + 0.5 * (p1**2).sum(1)) - (e0 + 0.5 * (p**2).sum(1))).abs().mean())
    # |ΔH| = c(x, p) eps² + O(eps⁴): halving eps divides it by 4 up to a relative O(eps²)
    # correction (a few per cent at these steps); ±10% covers that.
    for a, b in zip(errs, errs[1:]):
        assert 3.6 < (a / b).item() < 4.4, errs


def test_hmc_info_energy_error_equals_leapfrog_hamiltonian_change():
    x0, _ = start(50, 6)
    state = mcmc.langevin_init(x0, gaussian_energy)
    _, info = mcmc.hmc_step(state, gaussian_energy, step_size=0.3, n_leapfrog=7,
                            generator=torch.Generator().manual_seed(11))
    p = torch.randn(50, 2, generator=torch.Generator().manual_seed(11), dtype=DT)  # same draw
    x1, p1, e1, _ = mcmc.leapfrog(x0, p, state.grad, gaussian_energy, 0.3, 7)
    dh = e1 + 0.5 * (p1**2).sum(1) - state.energy - 0.5 * (p**2).sum(1)
    torch.testing.assert_close(info.energy_error, dh)
    torch.testing.assert_close(info.acceptance_prob, torch.exp(-dh).clamp(max=1.0))


def test_leapfrog_is_time_reversible():
    x0, _ = start(20, 7)
    p0 = torch.randn(20, 2, generator=torch.Generator().manual_seed(8), dtype=DT)
    _, g0 = mcmc.energy_and_grad(gaussian_energy, x0)
    x1, p1, _, g1 = mcmc.leapfrog(x0, p0, g0, gaussian_energy, 0.2, 15)
    x2, p2, _, _ = mcmc.leapfrog(x1, -p1, g1, gaussian_energy, 0.2, 15)
    torch.testing.assert_close(x2, x0)
    torch.testing.assert_close(-p2, p0)


def test_latent_energy_linear_generator_gives_gaussian_posterior():
    # G(z) = A z + c, E(x) = ‖x - m‖² / (2 s²): U(z) = ½‖z‖² + T E(Az + c) is Gaussian with
    # precision I + T AᵀA / s² and mean Λ⁻¹ T Aᵀ (m - c) / s².
    a = torch.tensor([[1.0, 0.5], [-0.3, 0.8]], dtype=DT)
    c = torch.tensor([0.2, -0.1], dtype=DT)
    m = torch.tensor([1.0, 1.0], dtype=DT)
    s2, t = 0.5, 2.0
    u = mcmc.latent_energy(lambda z: z @ a.T + c, lambda x: ((x - m) ** 2).sum(1) / (2 * s2), t)
    lam = torch.eye(2, dtype=DT) + t * a.T @ a / s2
    cov = torch.linalg.inv(lam)
    mean = cov @ (t * a.T @ (m - c) / s2)
    z = torch.randn(7, 2, generator=torch.Generator().manual_seed(0), dtype=DT)
    d = z - mean
    # U equals the Gaussian quadratic form up to a constant
    q = 0.5 * ((d @ lam) * d).sum(1)
    diff = u(z) - q
    torch.testing.assert_close(diff, diff[:1].expand(7))
    x0, g = start(3000, 9)
    res = mcmc.run(mcmc.mala, x0, u, n_steps=200, step_size=0.2, generator=g)
    assert_moments(res.final_state.x, mean, cov)


def test_latent_energy_in_blocks_of_rows_equals_one_call():
    """rows=k evaluates G and E on blocks of k chains: the energies and their gradients are those of one call (the
    chains are independent), with a short last block, and the blocks are really taken (each call sees ≤ k rows)."""
    torch.manual_seed(0)
    gen = torch.nn.Sequential(torch.nn.Linear(3, 2 * 5 * 5), torch.nn.Unflatten(1, (2, 5, 5)),
                              torch.nn.ConvTranspose2d(2, 1, 3, 1, 1), torch.nn.Tanh()).double()
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, 2, 1), torch.nn.Softplus(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 3 * 3, 1)).double()
    seen: list[int] = []

    def energy(x):
        seen.append(len(x))
        return conv(x).squeeze(-1)

    z = torch.randn(10, 3, generator=torch.Generator().manual_seed(1), dtype=DT)
    e1, g1 = mcmc.energy_and_grad(mcmc.latent_energy(gen, energy, 2.0), z)
    seen.clear()
    e3, g3 = mcmc.energy_and_grad(mcmc.latent_energy(gen, energy, 2.0, rows=4), z)
    assert seen == [4, 4, 2]
    torch.testing.assert_close(e3, e1, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g3, g1, rtol=1e-12, atol=1e-12)
    assert float(g1.abs().min()) > 0  # the comparison has teeth: every gradient entry is non-zero
    with pytest.raises(ValueError, match="rows"):
        mcmc.latent_energy(gen, energy, 2.0, rows=0)


def test_energy_shape_is_checked():
    with pytest.raises(ValueError, match=r"shape \[b\]"):
        mcmc.langevin_init(torch.zeros(4, 2, dtype=DT), lambda x: (x**2).sum(1, keepdim=True))


def test_no_graph_or_parameter_gradient_is_kept():
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    net = net.double()
    energy = lambda x: net(x).squeeze(-1)  # noqa: E731
    x0, g = start(16, 10)
    with torch.no_grad():  # the sampler must still get its gradients
        res = mcmc.run(mcmc.hmc, x0, energy, n_steps=3, step_size=0.1, n_leapfrog=3, generator=g)
    s = res.final_state
    assert not s.x.requires_grad and s.energy.grad_fn is None and s.grad.grad_fn is None
    assert all(p.grad is None for p in net.parameters())


def test_runs_are_reproducible_and_thinning_keeps_states():
    outs = []
    for _ in range(2):
        x0, g = start(8, 11)
        outs.append(mcmc.run(mcmc.mala, x0, gaussian_energy, n_warmup=5, n_steps=10, thin=5,
                             step_size=0.3, generator=g))
    torch.testing.assert_close(outs[0].samples, outs[1].samples, rtol=0, atol=0)
    assert outs[0].samples.shape == (2, 8, 2)
    torch.testing.assert_close(outs[0].samples[-1], outs[0].final_state.x, rtol=0, atol=0)


def test_adaptation_rejects_unadjusted_samplers():
    x0, g = start(4, 12)
    with pytest.raises(ValueError, match="mala or hmc"):
        mcmc.run(mcmc.ula, x0, gaussian_energy, n_warmup=5, n_steps=5, step_size=0.1,
                 adapt_step_size=True, generator=g)


@pytest.mark.parametrize("algo", ["mala", "hmc"])
def test_per_chain_dual_averaging_fits_each_chains_scale(algo):
    """Chain i targets N(0, σ_i² I) with σ_i from 0.1 to 10: one global step size cannot suit them all (the widest
    chains barely move, the narrowest reject), while per-chain dual averaging brings every chain near the target
    acceptance, its step size in proportion to its scale (σ_i for HMC's leapfrog step, σ_i² for MALA's h, the
    variance of its proposal), and each chain's variance to σ_i²."""
    torch.manual_seed(0)
    b, d = 64, 2
    sigma = torch.logspace(-1, 1, b, dtype=torch.float64)[:, None]

    def energy(x):
        return 0.5 * ((x / sigma) ** 2).sum(1)

    algorithm = getattr(mcmc, algo)
    kw = {"n_leapfrog": 5} if algo == "hmc" else {}
    target = 0.65 if algo == "hmc" else 0.57
    g = torch.Generator().manual_seed(1)
    x0 = sigma * torch.randn(b, d, dtype=torch.float64, generator=g)
    per = mcmc.run(algorithm, x0, energy, n_steps=2000, n_warmup=1000, generator=g, adapt_step_size="per_chain",
                   target_accept=target, step_size=0.5, thin=1, **kw)
    glob = mcmc.run(algorithm, x0, energy, n_steps=2000, n_warmup=1000, generator=torch.Generator().manual_seed(1),
                    adapt_step_size=True, target_accept=target, step_size=0.5, **kw)
    acc = per.acceptance_rate
    assert ((acc - target).abs() < 0.12).all(), acc  # every chain near the target (2000 steps: se ~0.01-0.02)
    assert ((glob.acceptance_rate - target).abs() > 0.2).any()  # the global step size misses some chains
    eps = per.step_size
    power = 2 if algo == "mala" else 1
    ratio = eps.log() - power * sigma[:, 0].log()
    assert eps.shape == (b,) and ratio.std() < 0.25, ratio  # ε_i ∝ σ_i^power (within 25 % in log)
    var = per.samples.var(0).mean(1) / sigma[:, 0] ** 2
    assert (var.mean() - 1).abs() < 0.1 and var.min() > 0.5 and var.max() < 1.6, var


def test_dual_averaging_update_is_the_papers_formula():
    s = mcmc.dual_averaging_init(0.1, 2)
    s = mcmc.dual_averaging_update(s, torch.tensor([1.0, 0.0]), target=0.65, gamma=0.05, t0=10.0, kappa=0.75)
    w = 1 / 11
    h = torch.tensor([w * (0.65 - 1.0), w * 0.65], dtype=torch.float64)
    mu = math.log(10 * 0.1)
    assert torch.allclose(s.h_bar, h) and torch.allclose(s.log_eps, mu - 1 / 0.05 * h)
    assert torch.allclose(s.log_eps_bar, s.log_eps) and s.t == 1  # t^(-κ) = 1 at t = 1
    with pytest.raises(ValueError, match="per_chain"):
        mcmc.run(mcmc.mala, torch.zeros(2, 2), lambda x: (x ** 2).sum(1), n_steps=1, n_warmup=1,
                 generator=torch.Generator(), adapt_step_size="chains", step_size=0.1)
