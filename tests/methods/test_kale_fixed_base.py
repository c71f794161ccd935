"""KALE with a fixed base (contrastive maximum likelihood of exp(−E)·base): known answers.

- Gaussian base N(0, 2² I) and a quadratic energy family E(x) = ½ xᵀSx − bᵀx (S symmetric, unconstrained): the
  model exp(−E)·base is N(μ, Σ) with Σ⁻¹ = S + I/4 and μ = Σ b, and the KALE optimum is the moment match — the
  Gaussian maximum-likelihood estimate (sample mean and biased sample covariance of the data). The test data's
  MLE differs from the generating Gaussian by 0.04 in a covariance entry (n = 500), more than the tolerance, so the test
  tells the MLE from the truth as well as from the base.
- The flow base: invertible to float tolerance, its log-determinant equal to the autograd Jacobian's, and the
  importance-sampling log Z of the run equal to the exact quadrature's on 2D data.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ebmlab.config import resolve_config
from ebmlab.errors import EbmlabError
from ebmlab.methods.base import adam
from ebmlab.nets.flow import FlowBase, GaussianBase
from ebmlab.trainer import build_method


class Quadratic(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(d, d))
        self.b = nn.Parameter(torch.zeros(d))

    def s(self) -> torch.Tensor:
        return 0.5 * (self.w + self.w.T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (0.5 * ((x @ self.s()) * x).sum(1) - x @ self.b).unsqueeze(1)


def test_gaussian_base_with_a_quadratic_energy_reaches_the_gaussian_mle():
    torch.manual_seed(0)
    true_mean = torch.tensor([0.5, -0.3])
    chol = torch.tensor([[1.0, 0.0], [0.6, 0.5]])
    data = true_mean + torch.randn(500, 2, generator=torch.Generator().manual_seed(1)) @ chol.T
    mle_mean = data.double().mean(0)
    mle_cov = torch.cov(data.double().T, correction=0)
    cfg = resolve_config("kale", "ring8", overrides={"base": "gaussian", "base_std": 2.0, "penalty": 0.0})
    m = build_method(cfg, torch.device("cpu"))
    m.E = Quadratic(2)
    m.networks["energy"] = m.E
    m.optimizers["energy"] = adam(list(m.E.parameters()) + list(m.A.parameters()), 5e-2, (0.9, 0.999))
    sched = torch.optim.lr_scheduler.LinearLR(m.optimizers["energy"], 1.0, 0.01, 600)
    for step in range(1, 601):
        m.train_step(data, step)
        sched.step()
    with torch.no_grad():
        prec = m.E.s().double() + torch.eye(2, dtype=torch.float64) / 4
        cov = torch.linalg.inv(prec)
        mean = cov @ m.E.b.double()
    # what is left is the noise of 500 base draws per step at the final learning rate (measured ≈ 0.001 / 0.012)
    torch.testing.assert_close(mean, mle_mean, rtol=0, atol=0.01)
    torch.testing.assert_close(cov, mle_cov, rtol=0, atol=0.025)
    # and the MLE is not the truth by more than that: the fit found the data's moments, not the generating ones
    assert float((mle_cov - chol.double() @ chol.double().T).abs().max()) > 0.035


def test_flow_base_is_invertible_with_the_right_log_determinant():
    torch.manual_seed(0)
    f = FlowBase(3, layers=4, hidden=(16,)).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    flow = f.flow()
    z, ladj = flow.transform.call_and_ladj(x)
    torch.testing.assert_close(f(z), x, rtol=0, atol=1e-10)
    jac = torch.stack([torch.autograd.functional.jacobian(lambda v: flow.transform(v[None])[0], xi) for xi in x])
    torch.testing.assert_close(ladj, torch.linalg.slogdet(jac)[1], rtol=0, atol=1e-10)
    # log p(x) = log N(T(x)) + log|det J|
    want = -0.5 * z.square().sum(1) - 1.5 * math.log(2 * math.pi) + ladj
    torch.testing.assert_close(f.log_prob(x), want, rtol=0, atol=1e-10)
    g = GaussianBase(2, 2.0)
    torch.testing.assert_close(g.log_prob(torch.zeros(1, 2)), torch.tensor([-math.log(8 * math.pi)]))


def test_flow_base_run_phases_and_log_z_against_quadrature():
    cfg = resolve_config("kale", "banana", overrides={"base": "flow", "flow_steps": 30, "flow_layers": 2, "flow_hidden": (16,),
                                           "e_hidden": (16,), "log_z_samples": 20000, "mcmc_steps": 5,
                                           "inverse_temperature": 1.0})
    m = build_method(cfg, torch.device("cpu"))
    from ebmlab.data import get_dataset
    ds = get_dataset("banana")
    g = torch.Generator().manual_seed(0)
    flow_params = [p.detach().clone() for p in m.G.parameters()]
    for step in range(1, 61):
        out = m.train_step(ds.sample(256, generator=g).float(), step)
        if step == 30:
            assert set(out) == {"base_nll"}
            moved = [p.detach().clone() for p in m.G.parameters()]
            assert any(not torch.equal(a, b) for a, b in zip(flow_params, moved))
    assert "kale" in out
    assert all(torch.equal(a, b) for a, b in zip(moved, m.G.parameters()))  # frozen after flow_steps
    from ebmlab.metrics.density import density_metrics
    q = density_metrics(m.density_energy, ds, device=torch.device("cpu"))
    rep = m.fixed_base_likelihoods(ds.test, generator=torch.Generator().manual_seed(2))
    assert abs(rep["log_z_ebm"] - q["log_z"]) < 5 * rep["log_z_ebm_se"] + 2e-3
    assert rep["nll_ebm"] == pytest.approx(q["nll"], abs=5 * rep["log_z_ebm_se"] + 2e-3)
    assert rep["base_nll"] > 0 or rep["base_nll"] < 0  # a number
    x = m.sample(16, generator=torch.Generator().manual_seed(3))
    assert x.shape == (16, 2) and torch.isfinite(x).all()


def test_fixed_base_needs_flat_data():
    with pytest.raises(EbmlabError, match="flat data"):
        build_method(resolve_config("kale", "stacked_digits", overrides={"base": "flow"}), torch.device("cpu"))


def test_a_log_z_resting_on_few_base_draws_is_flagged():
    # exp(−E)·base concentrated in a narrow well far in the base's tail: a handful of the 20,000 draws carry Ẑ
    cfg = resolve_config("kale", "ring8", overrides={"base": "gaussian", "log_z_samples": 20000})
    m = build_method(cfg, torch.device("cpu"))
    m.E = Quadratic(2)
    with torch.no_grad():
        m.E.w.copy_(torch.eye(2) * 400.0)
        m.E.b.fill_(400.0 * 2.5)
    rep = m.fixed_base_likelihoods(torch.zeros(10, 2), generator=torch.Generator().manual_seed(0))
    assert rep["log_z_ebm_ess"] * rep["log_z_ebm_samples"] < 100
    assert "unreliable" in rep["log_z_ebm_note"]
    m.E.w.data.zero_()
    m.E.b.data.zero_()
    assert "log_z_ebm_note" not in m.fixed_base_likelihoods(torch.zeros(10, 2), generator=torch.Generator())


def test_the_flow_base_is_captured_like_every_method():
    """zuko's coupling layers found their mask's indices on the host at every call, so KALE with a flow base ran
    eagerly on a GPU; the indices are now buffers computed once: no host read in a step, steps of one kind run the
    same operations, and steps replayed from the (emulated) captured graphs leave the state eager steps leave. The
    flow's numbers are zuko's."""
    import zuko

    from ebmlab.nets.flow import FlowBase
    from ebmlab.testing import check_capture, check_no_host_reads, check_step_kinds

    over = {"base": "flow", "flow_steps": 3, "flow_layers": 2, "flow_hidden": (16,), "e_hidden": (16,),
            "log_z_samples": 200}
    assert build_method(resolve_config("kale", "banana", overrides=over), torch.device("cpu")).capture_blocker() is None
    check_no_host_reads("kale", "banana", **over)
    check_step_kinds("kale", "banana", 10, **over)
    check_capture("kale", "banana", 16, **over)
    torch.manual_seed(0)
    f = FlowBase(4)
    plain = zuko.flows.RealNVP(features=4, context=0, transforms=6, randmask=False, hidden_features=(64, 64))
    plain.load_state_dict(f.flow.state_dict())  # the same parameters under the same names
    x, z = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    f, plain = f.double(), plain.double()
    assert torch.equal(f.log_prob(x), plain().log_prob(x)) and torch.equal(f(z), plain().transform.inv(z))
