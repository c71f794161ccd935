"""PacGAN packing of the GAN baseline: what the discriminator sees, and that a packed GAN trains."""

from dataclasses import replace

import pytest
import torch

from ebmlab.data.base import DataSpec
from ebmlab.errors import EbmlabError
from ebmlab.methods.gan import GAN, GANConfig


def make(spec, pack):
    return GAN(GANConfig(pack=pack, width=8), spec=spec, device=torch.device("cpu"),
               generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("spec", [DataSpec("toy2d", (2,)), DataSpec("image", (1, 8, 8), (-1.0, 1.0))])
def test_a_pack_is_m_consecutive_samples_side_by_side(spec):
    m = make(spec, 3)
    x = torch.randn(12, *spec.shape)
    expected = torch.cat([x[0::3], x[1::3], x[2::3]], dim=1)  # pack i = (x[3i], x[3i+1], x[3i+2]) on the first axis
    assert torch.equal(m.packed(x), expected)
    assert m.D(m.packed(x)).shape == (4, 1)
    with pytest.raises(EbmlabError, match="pack=1"):
        m.features(x)


def test_packed_gan_steps_leave_out_the_remainder_and_move_both_players():
    torch.manual_seed(0)
    m = make(DataSpec("toy2d", (2,)), 2)
    before = {k: [p.detach().clone() for p in n.parameters()] for k, n in m.networks.items()}
    out = m.train_step(torch.randn(7, 2), 1)  # 3 packs; the 7th example is left out
    assert all(map(lambda v: v == v, out.values()))
    for k, n in m.networks.items():
        assert any(not torch.equal(a, b) for a, b in zip(before[k], n.parameters())), k
    with pytest.raises(EbmlabError, match="at least 2"):
        m.train_step(torch.randn(1, 2), 2)
    assert torch.equal(make(DataSpec("toy2d", (2,)), 1).packed(torch.ones(3, 2)), torch.ones(3, 2))


def test_pacgan_architecture_options_build_its_networks():
    """PacGAN's 2D networks: generator Linear → BN → ReLU ×4 (400), discriminator 3 maxout layers (200 × 5
    pieces) on a packed input, weights N(0, 0.02²) with zero biases."""
    import torch.nn as nn

    from ebmlab.nets.mlp import Maxout
    cfg = GANConfig(g_hidden=(400,) * 4, d_hidden=(200,) * 3, act="relu", g_batchnorm="pre", d_maxout=5,
                    init="normal", pack=2)
    m = GAN(cfg, spec=DataSpec("toy2d", (2,)), device=torch.device("cpu"),
            generator=torch.Generator().manual_seed(0))
    kinds = [type(layer) for layer in m.G]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU] * 4 + [nn.Linear]
    lin = [layer for layer in m.D if isinstance(layer, nn.Linear)]
    assert [(x.in_features, x.out_features) for x in lin] == [(4, 1000), (200, 1000), (200, 1000), (200, 1)]
    assert sum(isinstance(layer, Maxout) for layer in m.D) == 3
    w = torch.cat([x.weight.flatten() for x in lin[:3]])  # 600,000 draws: the std's sampling error is ~2e-5
    assert abs(w.std().item() - 0.02) < 2e-4 and all(torch.count_nonzero(x.bias) == 0 for x in lin)
    post = GAN(replace(cfg, g_batchnorm="post"), spec=DataSpec("toy2d", (2,)), device=torch.device("cpu"),
               generator=torch.Generator())
    assert [type(layer) for layer in post.G][:3] == [nn.Linear, nn.ReLU, nn.BatchNorm1d]
    off = GAN(replace(cfg, g_batchnorm="off"), spec=DataSpec("toy2d", (2,)), device=torch.device("cpu"),
              generator=torch.Generator())
    assert not any(isinstance(layer, nn.BatchNorm1d) for layer in off.G)


def test_mlp_options_with_a_conv_gan_are_refused():
    with pytest.raises(EbmlabError, match="maxout.*net=conv"):
        GAN(GANConfig(d_maxout=5, width=8), spec=DataSpec("image", (1, 8, 8), (-1.0, 1.0)),
            device=torch.device("cpu"), generator=torch.Generator())
