"""The method contract, checked for every registered method."""

import io
import math

import pytest
import torch

from ebmlab.data import get_dataset
from ebmlab.methods import METHODS
from ebmlab.trainer import build_method
from ebmlab.config import resolve_config


def data_for(name):
    """ring8 for every method that models any data; the binary methods (BiHM, RWS) take binary digits; the
    semi-supervised ones (EBGAN-LN) labelled digits."""
    if METHODS[name].needs_labels:
        return "digits"
    return "ring8" if METHODS[name].data_kinds is None else "digits_bin"


def make(name, seed=0, **over):
    cfg = resolve_config(name, data_for(name), overrides={"seed": seed, **over})
    return build_method(cfg, torch.device("cpu"))


def batch(n=64, seed=0, name="gan"):
    ds = get_dataset(data_for(name))
    idx = torch.randint(0, len(ds.train), (n,), generator=torch.Generator().manual_seed(seed))
    return ds.train[idx]


def floats(metrics):
    """A step's metrics (detached 0-d tensors or numbers, read by the trainer only at log steps) as floats."""
    for k, v in metrics.items():
        if isinstance(v, torch.Tensor):
            assert v.dim() == 0 and not v.requires_grad, f"metric {k} must be a detached 0-d tensor: {v}"
        else:
            assert isinstance(v, (int, float)) and not isinstance(v, bool), f"metric {k}: {v!r}"
    return {k: float(v) for k, v in metrics.items()}


def snapshot(modules):
    return {k: [p.detach().clone() for p in m.parameters()] for k, m in modules.items()}


@pytest.mark.parametrize("name", list(METHODS))
def test_step_is_finite_and_moves_exactly_the_trained_networks(name):
    m = make(name)
    before, before_frozen = snapshot(m.networks), snapshot(m.frozen)
    metrics = floats(m.train_step(batch(name=name), 1))
    assert metrics and all(math.isfinite(v) for v in metrics.values()), metrics
    for k, params in snapshot(m.networks).items():
        assert any(not torch.equal(a, b) for a, b in zip(params, before[k])), f"{name}: network {k} did not move"
    for k, params in snapshot(m.frozen).items():
        assert all(torch.equal(a, b) for a, b in zip(params, before_frozen[k])), f"{name}: frozen {k} moved"
    x = m.sample(50, generator=torch.Generator().manual_seed(0))
    assert x.shape == (50, *get_dataset(data_for(name)).shape) and torch.isfinite(x).all()
    if m.has_energy:
        e = m.energy(x)
        assert e.shape == (50,) and torch.isfinite(e).all()


@pytest.mark.parametrize("name", list(METHODS))
def test_save_load_round_trip_is_bit_exact(name):
    a = make(name, seed=1)
    for s in range(3):
        a.train_step(batch(seed=s, name=name), s + 1)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = make(name, seed=2)  # different initialisation, overwritten by the load
    b.load_state_dict(torch.load(buf, weights_only=True))
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    # the continuation is identical too: optimizer state and noise generator were restored
    ma, mb = floats(a.train_step(batch(seed=9, name=name), 4)), floats(b.train_step(batch(seed=9, name=name), 4))
    assert ma == mb
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize("name", list(METHODS))
def test_sampling_is_deterministic_given_a_generator(name):
    m = make(name)
    x1 = m.sample(20, generator=torch.Generator().manual_seed(5))
    x2 = m.sample(20, generator=torch.Generator().manual_seed(5))
    assert torch.equal(x1, x2)
