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
    with pytest.raises(ValueError, match="spectral_norm shape MLP networks"):
        build.critic(spec, 1, net="conv", spectral_norm=True)
