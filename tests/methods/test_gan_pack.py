"""PacGAN packing of the GAN baseline: what the discriminator sees, and that a packed GAN trains."""

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
