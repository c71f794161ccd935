"""Known-answer tests for ebmlab.samplers.ais (float64, fixed seeds).

Each log Z check compares with a closed form. Where the tolerance is a number of standard
errors, the standard error is the result's own ``log_z_stderr`` (delta method, sqrt(1/ESS-1/n));
the fixed tolerances from the specification (0.02 and 0.05 nats) are >= 4 such standard errors
at the budgets used (stated per test).
"""

import math

import pytest
import torch

from ebmlab.samplers import ais
from ebmlab.samplers.classic import log_mean_exp

DT = torch.float64


def gen(seed):
    return torch.Generator().manual_seed(seed)


# Ring of 8 Gaussians, radius 2, std 0.2, equal weights, UNnormalised:
# exp(-E(x)) = Σ_k exp(-‖x - μ_k‖² / (2σ²)), so Z = 8 · 2πσ² and log Z = 0.6984.
RING_SIGMA = 0.2
_ang = 2 * math.pi * torch.arange(8, dtype=DT) / 8
RING_MEANS = 2.0 * torch.stack([_ang.cos(), _ang.sin()], 1)
RING_LOG_Z = math.log(8 * 2 * math.pi * RING_SIGMA**2)


def ring_energy(x):
    # ‖x - μ‖² expanded as ‖x‖² - 2 x·μ + ‖μ‖² (one matmul), then a max-shifted logsumexp.
    a = (2 * x @ RING_MEANS.T - (x * x).sum(1, keepdim=True) - (RING_MEANS**2).sum(1))
    a = a / (2 * RING_SIGMA**2)
    m = a.max(1, keepdim=True).values
    return -(m.squeeze(1) + (a - m).exp().sum(1).log())


def ring_samples(n, generator):
    k = torch.randint(0, 8, (n,), generator=generator)
    return RING_MEANS[k] + RING_SIGMA * torch.randn(n, 2, generator=generator, dtype=DT)


# Correlated Gaussians N(μ, Σ), unnormalised: log Z = (D/2) log 2π + ½ log det Σ.
def gaussian_problem(d, seed=123):
    g = gen(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=DT))
    cov = q @ torch.diag(torch.linspace(0.3, 2.0, d, dtype=DT)) @ q.T
    prec = torch.linalg.inv(cov)
    mu = torch.linspace(-1.0, 1.0, d, dtype=DT)

    def energy(x):
        r = x - mu
        return 0.5 * ((r @ prec) * r).sum(1)

    log_z = 0.5 * d * math.log(2 * math.pi) + 0.5 * torch.logdet(cov).item()
    return energy, log_z, mu, torch.linalg.cholesky(cov)


def test_ring_log_z_within_0_02_nats():
    # 1000 chains x 1000 MALA steps: log-weight std ~0.15, standard error ~0.005 nats, so the
    # 0.02-nat tolerance is ~4 standard errors. Base N(0, 1.5² I) covers the ring of radius 2.
    res = ais.ais_log_z(ring_energy, 2, n_chains=1000, n_steps=1000, generator=gen(0),
                        base_std=1.5, transition="mala", dtype=DT)
    assert abs(res.log_z - RING_LOG_Z) < 0.02, (res.log_z, RING_LOG_Z, res.log_z_stderr)
    assert res.log_z_stderr < 0.005  # the budget delivers the precision the tolerance assumes
    assert abs(res.acceptance_rate - 0.65) < 0.02  # adapted toward the target
    assert res.ess > 0.9 * 1000


def test_gaussian_10d_log_z_within_0_05_nats():
    energy, log_z, _, _ = gaussian_problem(10)
    # 500 chains x 600 MALA steps: standard error ~0.01 nats, 0.05 is ~5 of them.
    res = ais.ais_log_z(energy, 10, n_chains=500, n_steps=600, generator=gen(1),
                        transition="mala", dtype=DT)
    assert abs(res.log_z - log_z) < 0.05, (res.log_z, log_z, res.log_z_stderr)
    assert res.log_z_stderr < 0.0125


def test_hmc_transitions_give_log_z_within_4_standard_errors():
    energy, log_z, _, _ = gaussian_problem(2, seed=7)
    res = ais.ais_log_z(energy, 2, n_chains=500, n_steps=100, generator=gen(2),
                        transition="hmc", n_leapfrog=5, dtype=DT)
    assert abs(res.log_z - log_z) < 4 * res.log_z_stderr, (res.log_z, log_z, res.log_z_stderr)
    assert res.log_z_stderr < 0.03
    assert abs(res.acceptance_rate - 0.65) < 0.05


def replicate_means(res, replicates):
    """Split the chains into ``replicates`` independent groups, estimate log Z from each group
    and return the mean estimate and its standard error over groups: the EXPECTATION of the
    estimator at that group size, which is where the Jensen biases live."""
    sign = 1.0 if res.direction == "forward" else -1.0
    per_group = sign * log_mean_exp(res.log_weights.view(replicates, -1), dim=1)
    return per_group.mean().item(), per_group.std().item() / math.sqrt(replicates)


@pytest.mark.parametrize("problem", ["gaussian_10d", "ring"])
def test_reverse_ais_over_and_forward_under_estimate_on_average(problem):
    # 500 replicates of 10 chains on a deliberately short path (10 steps), so that both Jensen
    # biases are large: at these settings the forward mean sits 5.7 (ring) and 13 (10-D), the
    # reverse mean 12 and 13 standard errors from the truth; 4 are required.
    r, n = 500, 10
    if problem == "gaussian_10d":
        energy, log_z, mu, chol = gaussian_problem(10)
        n_steps, dim, base_std = 10, 10, 1.0
        x_exact = mu + torch.randn(r * n, 10, generator=gen(4), dtype=DT) @ chol.T
    else:
        energy, log_z, n_steps, dim, base_std = ring_energy, RING_LOG_Z, 10, 2, 1.5
        x_exact = ring_samples(r * n, gen(4))
    fwd = ais.ais_log_z(energy, dim, n_chains=r * n, n_steps=n_steps, generator=gen(3),
                        base_std=base_std, transition="mala", dtype=DT)
    rev = ais.reverse_ais_log_z(energy, x_exact, n_steps=n_steps, generator=gen(5),
                                base_std=base_std, transition="mala")
    f_mean, f_se = replicate_means(fwd, r)
    r_mean, r_se = replicate_means(rev, r)
    assert f_mean + 4 * f_se < log_z < r_mean - 4 * r_se, (f_mean, f_se, log_z, r_mean, r_se)
    assert "UNDER-estimates" in fwd.bias_note and "OVER-estimates" in rev.bias_note
    assert fwd.direction == "forward" and rev.direction == "reverse"


def test_base_equal_to_target_gives_exact_log_z_with_zero_spread():
    # E(x) = ½‖(x - m)/s‖² and base N(m, s²): every log-weight equals log Z = Σ ½ log(2π s_i²)
    # exactly, whatever the transitions do.
    m = torch.tensor([0.5, -1.0, 2.0], dtype=DT)
    s = torch.tensor([0.5, 1.0, 2.0], dtype=DT)
    energy = lambda x: 0.5 * (((x - m) / s) ** 2).sum(1)  # noqa: E731
    res = ais.ais_log_z(energy, 3, n_chains=64, n_steps=20, generator=gen(9), base_mean=m,
                        base_std=s, transition="hmc", n_leapfrog=3)
    exact = 0.5 * torch.log(2 * math.pi * s**2).sum().item()
    torch.testing.assert_close(res.log_weights, torch.full((64,), exact, dtype=DT))
    assert res.log_z == pytest.approx(exact, abs=1e-12)
    assert res.ess == pytest.approx(64) and res.log_weight_std < 1e-12


def test_sigmoid_schedule_matches_definition():
    b = ais.sigmoid_schedule(8, delta=4.0)
    s = torch.sigmoid(torch.linspace(-4.0, 4.0, 9, dtype=DT))
    torch.testing.assert_close(b, (s - s[0]) / (s[-1] - s[0]))
    assert b[0] == 0.0 and b[-1] == 1.0 and bool((b[1:] > b[:-1]).all())


def test_unadjusted_langevin_is_refused_and_schedules_are_checked():
    with pytest.raises(ValueError, match="not a valid AIS kernel"):
        ais.ais_log_z(ring_energy, 2, n_chains=4, n_steps=3, generator=gen(0), transition="ula",
                      dtype=DT)
    with pytest.raises(ValueError, match="from exactly 0 to exactly 1"):
        ais.ais_log_z(ring_energy, 2, n_chains=4, n_steps=3, generator=gen(0), dtype=DT,
                      schedule=torch.tensor([0.0, 0.7, 0.5, 1.0]))
