import pytest
import torch

from ebmlab.nets import BoundedExpertHead, mlp


def test_bounded_head_logit_form_equals_the_binary_entropy_of_clipped_probabilities():
    torch.manual_seed(0)
    head = BoundedExpertHead(mlp(2, (16,), 16), 16, n_experts=32).double()
    with torch.no_grad():
        head.experts.weight.mul_(30)  # push many experts into the clipped range
    x = torch.randn(500, 2, dtype=torch.float64) * 3
    e_fast = head(x)
    e_ref = head.energy_from_probs(head.probs(x))
    assert torch.allclose(e_fast, e_ref, rtol=0, atol=1e-9)
    assert (e_ref >= 0).all() and (e_ref <= 32 * torch.log(torch.tensor(2.0))).all()


def test_mlp_architecture_options():
    """The papers' MLP options: BatchNorm before or after the activation, maxout, spectral norm, N(0, 0.02²) and
    Glorot initialisation, a learned output scale — checked by the layer order and by known values."""
    import pytest

    from ebmlab.nets.mlp import LearnedScale, Maxout

    kinds = lambda net: [type(m).__name__ for m in net]  # noqa: E731
    assert kinds(mlp(2, (4,), 1, act="prelu", batchnorm=True)) == ["Linear", "BatchNorm1d", "PReLU", "Linear"]
    assert kinds(mlp(2, (4,), 1, act="prelu", batchnorm=True, bn_position="post")) == [
        "Linear", "PReLU", "BatchNorm1d", "Linear"]
    net = mlp(2, (4, 3), 1, maxout=5)
    assert kinds(net) == ["Linear", "Maxout", "Linear", "Maxout", "Linear"] and net[0].out_features == 20
    x = torch.tensor([[1.0, -2.0, 3.0, 0.5, 7.0, -1.0]])
    assert torch.equal(Maxout(3)(x), torch.tensor([[3.0, 7.0]]))  # max of (1, −2, 3) and of (0.5, 7, −1)
    torch.manual_seed(0)
    big = mlp(64, (512,), 1, init="normal")
    assert abs(big[0].weight.std().item() - 0.02) < 0.001 and big[0].bias.abs().max() == 0  # 32768 draws: se 8e-5
    xav = mlp(64, (512,), 1, init="xavier")
    assert abs(xav[0].weight.std().item() - (2 / (64 + 512)) ** 0.5) < 0.002 and xav[0].bias.abs().max() == 0
    sn = mlp(3, (50,), 1, spectral_norm=True)
    for _ in range(30):  # power iterations run at each training-mode forward
        sn(torch.randn(8, 3))
    sn.eval()
    assert abs(torch.linalg.matrix_norm(sn[0].weight, ord=2).item() - 1.0) < 1e-3
    scaled = mlp(2, (4,), 1, out_scale=True)
    assert isinstance(scaled[-1], LearnedScale) and -1 <= scaled[-1].scale.item() <= 1
    with torch.no_grad():
        scaled[-1].scale.fill_(-3.0)
    z = torch.randn(5, 2)
    assert torch.allclose(scaled(z), -3.0 * scaled[:-1](z))
    with pytest.raises(ValueError, match="bn_position"):
        mlp(2, (4,), 1, bn_position="middle")


def test_mlp_options_are_refused_by_conv_networks():
    import pytest

    from ebmlab.data import get_dataset
    from ebmlab.nets import build

    spec = get_dataset("digits").spec
    build.critic(spec, 1, net="conv", spectral_norm=False)  # defaults are fine
    with pytest.raises(ValueError, match="maxout shape MLP networks"):
        build.critic(spec, 1, net="conv", maxout=2)


def test_spectral_norm_applies_to_every_layer_of_a_conv_energy():
    """spectral_norm=True on a conv family: every Linear/Conv weight has largest singular value 1 after the power
    iterations have converged (checked against torch.linalg.matrix_norm(·, 2) of the reshaped weight)."""
    import torch
    from torch import nn

    from ebmlab.data.base import DataSpec
    from ebmlab.nets import build

    spec = DataSpec("image", (3, 32, 32), (-1.0, 1.0), 256)
    e = build.critic(spec, net="ebmbb32", width=2, spectral_norm=True)
    layers = [m for m in e.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert len(layers) == 8  # seven convolutions and the output layer
    x = torch.randn(4, 3, 32, 32)
    for _ in range(200):  # training forwards run the power iteration
        e(x)
    e.eval()
    for m in layers:
        w = m.weight.detach().reshape(m.weight.shape[0], -1)
        assert float(torch.linalg.matrix_norm(w, 2)) == pytest.approx(1.0, rel=1e-3)
    assert build.n_params(e) == build.n_params(build.critic(spec, net="ebmbb32", width=2))


def test_ebmbb32_pair_is_the_official_layer_list():
    """EBM-BB's released network/DCGAN.py at d = 512 (width 64), z 128, 3 channels, counted by hand from its layer
    list: energy convs 3→64 (3×3), 64→64 (4×4), 64→128 (3×3), 128→128 (4×4), 128→256 (3×3), 256→256 (4×4),
    256→512 (3×3), then Linear(8192 → 1); generator Linear(128 → 8192), ConvT 512→256→128→64 (4×4) each with
    BatchNorm, Conv 64→3 (3×3)."""
    import torch

    from ebmlab.data.base import DataSpec
    from ebmlab.nets import build

    def conv(a, b, k):
        return a * b * k * k + b

    energy = (conv(3, 64, 3) + conv(64, 64, 4) + conv(64, 128, 3) + conv(128, 128, 4) + conv(128, 256, 3)
              + conv(256, 256, 4) + conv(256, 512, 3) + (4 * 4 * 512 + 1))
    gen = ((128 * 8192 + 8192) + conv(512, 256, 4) + 2 * 256 + conv(256, 128, 4) + 2 * 128 + conv(128, 64, 4)
           + 2 * 64 + conv(64, 3, 3))
    assert (energy, gen) == (2_935_873, 3_812_355)
    spec = DataSpec("image", (3, 32, 32), (-1.0, 1.0), 256)
    e = build.critic(spec, net="ebmbb32", width=64)
    g = build.generator(spec, 128, net="ebmbb32", width=64)
    assert build.n_params(e) == energy and build.n_params(g) == gen
    z = torch.randn(4, 128)
    with torch.no_grad():
        x = g(z)
        assert x.shape == (4, 3, 32, 32) and float(x.abs().max()) <= 1
        assert e(x).shape == (4, 1)
    phi, dim = build.features(spec, net="ebmbb32", width=64)
    assert dim == 8192 and phi(x).shape == (4, 8192)
    with pytest.raises(ValueError, match="32×32"):
        build.generator(DataSpec("image", (1, 28, 28), (-1.0, 1.0), 256), 128, net="ebmbb32")


def test_vgan_networks_are_the_released_layer_lists():
    """VGAN's configs/mnist_config.py: energy conv 5×5 (1→64) ReLU pool, conv 5×5 (64→64) ReLU pool, dense 1024
    ReLU, 128 sigmoid experts; VCD transition conv-BN-ReLU-pool ×2 (64), dense 256 → BN → tanh (the code), noise,
    dense 64·7·7 → BN → ReLU, deconv 5×5/2 (64) → BN → ReLU, deconv 5×5/2 (→1). Counted by hand (a BatchNorm
    has 2 parameters per channel; every dense/conv layer has its bias, as lasagne's do)."""
    import torch

    from ebmlab.data.base import DataSpec
    from ebmlab.methods.vgan_vcd import VCD
    from ebmlab.nets import build

    def conv(a, b, k):
        return a * b * k * k + b

    def dense(a, b):
        return a * b + b

    energy = conv(1, 64, 5) + conv(64, 64, 5) + dense(64 * 7 * 7, 1024) + dense(1024, 128)
    transition = (conv(1, 64, 5) + 2 * 64 + conv(64, 64, 5) + 2 * 64 + dense(64 * 7 * 7, 256) + 2 * 256
                  + dense(256, 64 * 7 * 7) + 2 * 64 * 7 * 7 + conv(64, 64, 5) + 2 * 64 + conv(64, 1, 5))
    assert (energy, transition) == (3_447_616, 1_824_385)
    spec = DataSpec("image", (1, 28, 28), (-1.0, 1.0), 256)
    m = VCD(VCD.Config(net="vgan", width=64, code_dim=256, n_experts=128), spec=spec, device=torch.device("cpu"),
            generator=torch.Generator().manual_seed(0))
    assert build.n_params(m.E) == energy and build.n_params(m.T) == transition
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        assert m.T(x, torch.Generator()).shape == (4, 1, 28, 28) and m.E(x).shape == (4,)
    cifar = DataSpec("image", (3, 32, 32), (-1.0, 1.0), 256)
    assert build.generator(cifar, 2048, net="vgan", width=256)(torch.randn(2, 2048)).shape == (2, 3, 32, 32)


def test_lbt_gan_pair_is_the_released_layer_list():
    """LBT-GAN_smnist.py at its defaults (feature_dim 16, z 256, no BatchNorm in D): D conv 4×4/2 3→16 (bias),
    16→32 (no bias), dense 1568→1024 (no bias), dense 1024→1; G dense 256→1024 (no bias) + BN, dense 1024→1568
    (no bias) + BN, deconv 5×5/2 32→16 (no bias) + BN, deconv 5×5/2 16→3 (bias). Counted by hand."""
    import torch

    from ebmlab.data.base import DataSpec
    from ebmlab.nets import build

    d = (3 * 16 * 16 + 16) + 16 * 32 * 16 + 1568 * 1024 + (1024 + 1)
    g = 256 * 1024 + 2 * 1024 + 1024 * 1568 + 2 * 1568 + 32 * 16 * 25 + 2 * 16 + (16 * 3 * 25 + 3)
    assert (d, g) == (1_615_633, 1_886_995)
    spec = DataSpec("image", (3, 28, 28), (-1.0, 1.0), 256)
    dis, gen = build.critic(spec, net="lbt", width=16), build.generator(spec, 256, net="lbt", width=16)
    assert build.n_params(dis) == d and build.n_params(gen) == g
    with torch.no_grad():
        x = gen(torch.randn(4, 256))
        assert x.shape == (4, 3, 28, 28) and dis(x).shape == (4, 1)


def _conv(a, b, k):
    return a * b * k * k + b


def test_ebmbb_resnet64_pair_is_the_official_layer_list():
    """EBM-BB's network/Resnet.py at input_size 64, width 64, z 128, counted by hand from its layer list.
    Generator: Linear(128 → 1024·16); up-blocks 1024→512→256→128→64, each BN(in) + BN(out) (2 per channel), conv 1×1
    shortcut, conv 3×3 in→out, conv 3×3 out→out; BN(64); conv 3×3 64→3. Energy: first block 3→64 (1×1 shortcut,
    3×3, 3×3), blocks 64→128→256→512→1024 (1×1 shortcut, 3×3, 3×3), Linear(1024 → 1)."""
    import torch

    from ebmlab.data.base import DataSpec
    from ebmlab.nets import build

    def up(a, b):
        return 2 * a + 2 * b + _conv(a, b, 1) + _conv(a, b, 3) + _conv(b, b, 3)

    def down(a, b):
        return _conv(a, b, 1) + _conv(a, b, 3) + _conv(b, b, 3)

    gen = (128 * 16384 + 16384) + up(1024, 512) + up(512, 256) + up(256, 128) + up(128, 64) + 2 * 64 + _conv(64, 3, 3)
    energy = down(3, 64) + down(64, 128) + down(128, 256) + down(256, 512) + down(512, 1024) + (1024 + 1)
    assert (gen, energy) == (12_220_675, 19_542_721)
    spec = DataSpec("image", (3, 64, 64), (-1.0, 1.0), 256)
    g, e = build.generator(spec, 128, net="ebmbb_resnet", width=64), build.critic(spec, net="ebmbb_resnet", width=64)
    assert build.n_params(g) == gen and build.n_params(e) == energy
    small = DataSpec("image", (3, 64, 64), (-1.0, 1.0), 256)  # shapes at a CPU-sized width
    g, e = build.generator(small, 16, net="ebmbb_resnet", width=4), build.critic(small, net="ebmbb_resnet", width=4)
    with torch.no_grad():
        x = g(torch.randn(3, 16))
        assert x.shape == (3, 3, 64, 64) and float(x.abs().max()) <= 1 and e(x).shape == (3, 1)
    phi, dim = build.features(small, net="ebmbb_resnet", width=4)
    assert dim == 64 and phi(x).shape == (3, 64)
    for size in (32, 128):  # the release's other tables build and keep their resolution
        s = DataSpec("image", (1, size, size), (-1.0, 1.0), 256)
        with torch.no_grad():
            x = build.generator(s, 8, net="ebmbb_resnet", width=2)(torch.randn(2, 8))
            assert x.shape == (2, 1, size, size) and build.critic(s, net="ebmbb_resnet", width=2)(x).shape == (2, 1)
    with pytest.raises(ValueError, match="square images of 32, 64, 128"):
        build.critic(DataSpec("image", (3, 28, 28), (-1.0, 1.0), 256), net="ebmbb_resnet")


def test_ebmbb_resnet_energy_shortcut_reads_the_activated_input_as_the_release_computes():
    """The release's in-place LeakyReLU overwrites the tensor its shortcut kept: a block after the first adds the
    activated input. With both convolutions zeroed the block is its shortcut, so the output is LeakyReLU(x)."""
    import torch

    from ebmlab.nets.resnet import _DownBlock

    blk = _DownBlock(4, 4, down=False, first=False, act=torch.nn.LeakyReLU(0.1), act_shortcut=True)
    for c in (blk.conv1, blk.conv2):
        torch.nn.init.zeros_(c.weight)
        torch.nn.init.zeros_(c.bias)
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    blk = blk.double()
    assert torch.equal(blk(x), torch.nn.functional.leaky_relu(x, 0.1))


def test_gebm_resnet_pair_is_the_official_layer_list():
    """GEBM's resnet-sn (models/generator.py, models/discriminator.py) at 128 channels, z 100, counted by hand.
    Base: Linear(100 → 128·16); three up-blocks (BN 128, conv 3×3, BN 128, conv 3×3, identity-upsample shortcut);
    BN(128); conv 3×3 128→3. Energy: first block (3×3 3→128, 3×3 128→128, 1×1 3→128), a downsampling block (two 3×3,
    1×1 shortcut), two blocks with identity shortcuts (two 3×3 each), Linear(128 → 1); spectral normalisation adds
    no parameters."""
    import torch

    from ebmlab.data.base import DataSpec
    from ebmlab.nets import build

    block = 2 * 128 + _conv(128, 128, 3) + 2 * 128 + _conv(128, 128, 3)
    gen = (100 * 2048 + 2048) + 3 * block + 2 * 128 + _conv(128, 3, 3)
    energy = ((_conv(3, 128, 3) + _conv(128, 128, 3) + _conv(3, 128, 1)) + (2 * _conv(128, 128, 3) + _conv(128, 128, 1))
              + 2 * (2 * _conv(128, 128, 3)) + (128 + 1))
    assert (gen, energy) == (1_097_603, 1_053_825)
    spec = DataSpec("image", (3, 32, 32), (-1.0, 1.0), 256)
    g, e = build.generator(spec, 100, net="gebm_resnet", width=128), build.critic(spec, net="gebm_resnet", width=128)
    assert build.n_params(g) == gen and build.n_params(e) == energy
    with torch.no_grad():
        x = g(torch.randn(3, 100))
        assert x.shape == (3, 3, 32, 32) and float(x.abs().max()) <= 1
        assert e(x).shape == (3, 1)
        # the release truncates the energy below at −10: a large negative output bias reaches the floor exactly
        assert bool((e(x) > -10).all())
        e.e.fc.bias.fill_(-1e4)
        assert torch.equal(e(x), torch.full((3, 1), -10.0))
    with pytest.raises(ValueError, match="32×32 pair"):
        build.critic(DataSpec("image", (3, 64, 64), (-1.0, 1.0), 256), net="gebm_resnet")
