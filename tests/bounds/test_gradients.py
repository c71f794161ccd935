"""Known answers for the ELBO gradient estimators (float64), on p(z) = N(0, I), p(x|z) = N(z, s² I).

Both estimators are unbiased: their sample means over n draws must match the exact gradient within 5 standard
errors (the standard error itself estimated from the draws). The reparameterised ∂/∂μ is −z(1 + 1/s²) + x/s², so
its variance is σ²(1 + 1/s²)² per coordinate; a sample variance over n draws has a relative standard error of
√(2/(n − 1)) (Gaussian estimates), so 5 of those bound the check.
"""

from __future__ import annotations

import math

import pytest
import torch

from ebmlab.bounds.gradients import elbo_gradient_samples, linear_gaussian_elbo_gradient

DT = torch.float64
S2 = 0.3


def log_joint(x):
    def f(z):
        return (-0.5 * z.square() - 0.5 * (x - z).square() / S2).sum(1) - z.shape[1] * (
            math.log(2 * math.pi) + 0.5 * math.log(S2))
    return f


@pytest.mark.parametrize("estimator", ["reparam", "score"])
@pytest.mark.parametrize("where", ["optimum", "off"])
def test_estimators_are_unbiased(estimator, where):
    x = torch.tensor([1.2, -0.4, 3.0], dtype=DT)
    if where == "optimum":  # the exact posterior: the gradient is 0
        mu, ls = x / (1 + S2), torch.full((3,), 0.5 * math.log(S2 / (1 + S2)), dtype=DT)
    else:
        mu, ls = torch.tensor([0.0, 1.0, -2.0], dtype=DT), torch.tensor([0.3, -1.0, 0.0], dtype=DT)
    exact = linear_gaussian_elbo_gradient(x, mu, ls, S2)
    if where == "optimum":
        torch.testing.assert_close(exact, torch.zeros(6, dtype=DT), rtol=0, atol=1e-12)
    n = 200_000
    g = elbo_gradient_samples(log_joint(x), mu, ls, n, estimator=estimator, generator=torch.Generator().manual_seed(1))
    assert g.shape == (n, 6) and g.dtype == DT
    se = g.std(0) / math.sqrt(n)
    assert bool(((g.mean(0) - exact).abs() <= 5 * se + 1e-12).all()), (g.mean(0), exact, se)


def test_reparameterised_variance_is_known_and_far_below_the_score_functions():
    x = torch.tensor([1.2, -0.4, 3.0], dtype=DT)
    mu, ls = torch.tensor([0.0, 1.0, -2.0], dtype=DT), torch.tensor([0.3, -1.0, 0.0], dtype=DT)
    n = 100_000
    gen = torch.Generator().manual_seed(2)
    rep = elbo_gradient_samples(log_joint(x), mu, ls, n, estimator="reparam", generator=gen)
    sco = elbo_gradient_samples(log_joint(x), mu, ls, n, estimator="score", generator=gen)
    want = torch.exp(2 * ls) * (1 + 1 / S2) ** 2
    rel = 5 * math.sqrt(2 / (n - 1))
    torch.testing.assert_close(rep[:, :3].var(0), want, rtol=rel, atol=0)
    assert bool((sco.var(0) > 10 * rep.var(0)).all())


def test_a_baseline_keeps_the_score_function_unbiased_and_cuts_its_variance():
    x = torch.tensor([0.5], dtype=DT)
    mu, ls = torch.tensor([0.2], dtype=DT), torch.tensor([-0.5], dtype=DT)
    f = log_joint(x)
    n = 200_000
    plain = elbo_gradient_samples(f, mu, ls, n, estimator="score", generator=torch.Generator().manual_seed(3))
    # b = the ELBO itself (a constant in z), the usual control variate
    b = float(f(mu + ls.exp() * torch.randn(100_000, 1, dtype=DT, generator=torch.Generator().manual_seed(4))).mean()
              + ls.sum() + 0.5 * math.log(2 * math.pi * math.e))
    based = elbo_gradient_samples(f, mu, ls, n, estimator="score", generator=torch.Generator().manual_seed(3),
                                  baseline=b)
    exact = linear_gaussian_elbo_gradient(x, mu, ls, S2)
    se = based.std(0) / math.sqrt(n)
    assert bool(((based.mean(0) - exact).abs() <= 5 * se).all())
    assert bool((based.var(0) < 0.5 * plain.var(0)).all())


def test_bad_arguments_are_refused():
    f = log_joint(torch.zeros(2, dtype=DT))
    with pytest.raises(ValueError, match="vectors of one shape"):
        elbo_gradient_samples(f, torch.zeros(2, dtype=DT), torch.zeros(3, dtype=DT), 4, estimator="score",
                              generator=torch.Generator())
    with pytest.raises(ValueError, match="'reparam' or 'score'"):
        elbo_gradient_samples(f, torch.zeros(2, dtype=DT), torch.zeros(2, dtype=DT), 4, estimator="pathwise",
                              generator=torch.Generator())
