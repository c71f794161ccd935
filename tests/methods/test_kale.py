import copy
import math
from types import SimpleNamespace

import pytest
import torch

from ebmlab.errors import EbmlabError
from ebmlab.api import guided_samples
from ebmlab.samplers.latent import GuidedConfig
from ebmlab.trainer import build_method
from ebmlab.config import resolve_config


def fake_pair(m, s):
    """Identity generator and a quadratic energy E(x) = |x - m|^2 / (2 s^2): the latent target
    N(z; 0, I) exp(-T E(z)) is Gaussian with precision 1 + T/s^2 and mean (T m / s^2) / (1 + T/s^2)."""
    return SimpleNamespace(name="pair", has_energy=True, has_generator=True, latent_dim=2, device=torch.device("cpu"),
                           generate=lambda z: z, energy=lambda x: 0.5 * ((x - m) ** 2).sum(1) / s**2)


# (HMC: 5 leapfrog steps of 0.1 turn the trajectory by ~1 rad; 0.3 would be ~π, a periodic trajectory that
# returns to its start on this Gaussian — Neal 2011 §5.4.2.2)
@pytest.mark.parametrize("sampler, step", [("mala", 0.3), ("kinetic", 0.01), ("hmc", 0.1)])
def test_guided_samples_hit_the_tilted_latent_gaussian(sampler, step):
    m, s, T = torch.tensor([1.5, -1.0], dtype=torch.float64), 0.8, 2.0
    prec = 1 + T / s**2
    mean, var = (T * m / s**2) / prec, 1 / prec
    n = 4000
    x, info = guided_samples(fake_pair(m, s), n, GuidedConfig(sampler, T, 400, step, 1.0),
                             generator=torch.Generator().manual_seed(0))
    x = x.double()
    assert torch.allclose(x.mean(0), mean, atol=4 * math.sqrt(var / n))
    # sample variance: s.e. of a Gaussian variance estimate is var * sqrt(2/n); ULA-type bias of kinetic is O(h^2)
    assert torch.allclose(x.var(0), torch.full((2,), var, dtype=torch.float64), atol=4 * var * math.sqrt(2 / n) + 2e-3)
    assert info["latent_energy_end"] < info["latent_energy_start"]


def test_guided_sampling_needs_a_generator_and_an_energy():
    gan = build_method(resolve_config("gan", "ring8"), torch.device("cpu"))
    with pytest.raises(EbmlabError, match="needs both a generator and an energy"):
        guided_samples(gan, 10, GuidedConfig(), generator=torch.Generator().manual_seed(0))


def test_kale_energy_step_schedule_and_a_initialisation():
    cfg = resolve_config("kale", "ring8", overrides={"g_hidden": "16", "e_hidden": "16", "n_critic_burst": 7,
                                                       "n_critic": 2, "burst_every": 3})
    k = build_method(cfg, torch.device("cpu"))
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    counts = [k.train_step(x, i + 1)["n_energy_steps"] for i in range(7)]
    assert counts == [7, 2, 2, 7, 2, 2, 7]  # burst at the start and every `burst_every` base steps
    # A starts at its Monte-Carlo optimum: log mean exp(-E(G(z)))
    k2 = build_method(cfg, torch.device("cpu"))
    with torch.no_grad():
        e = k2.energy(k2.G(torch.randn(20000, 2, generator=torch.Generator().manual_seed(1))))
        expected = float(torch.logsumexp(-e, 0) - math.log(len(e)))
    k2.config = k2.config.__class__(**{**k2.config.__dict__, "n_critic_burst": 0})  # no energy step: A untouched
    k2.train_step(x, 1)
    assert abs(k2.A.value.item() - expected) < 0.02


def test_kale_initial_log_partition_in_eval_mode_and_blocks_leaves_batch_norm_alone():
    """The initial A is log mean exp(−E(G(z))) over 100·b draws with both networks in eval mode, as the release's
    init_log_partition, computed b draws a call: in float64 the same value as one call over all draws (rows are
    computed independently in eval mode; only the convolutions' algorithm and the summation order can differ with
    the call's size), and the generator's batch-norm running statistics are not moved by it."""
    torch.set_default_dtype(torch.float64)
    try:
        cfg = resolve_config("kale", "digits", overrides={"net": "conv", "width": 4})
        k = build_method(cfg, torch.device("cpu"))
        k.config = k.config.__class__(**{**k.config.__dict__, "n_critic_burst": 0})  # no energy step: A untouched
        k.G.train()
        bn = [m for m in k.G.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        assert bn  # the case that differs between train and eval mode
        before = [int(m.num_batches_tracked) for m in bn]
        g = torch.Generator().manual_seed(0)
        g.set_state(k.rng.get_state())
        z = torch.randn(100 * 16, k.latent_dim, generator=g)  # the draws the first step will make
        k.G.eval()
        k.E.eval()
        with torch.no_grad():
            expected = float(torch.logsumexp(-k.energy(k.G(z)), 0) - math.log(len(z)))
            k.G.train()
            k.E.train()
            # train mode (batch statistics of all 1,600 draws; on a copy, whose running statistics it moves) gives
            # another value: the test tells the two apart
            e_train = k.energy(copy.deepcopy(k.G)(z))
        assert abs(float(torch.logsumexp(-e_train, 0) - math.log(len(z))) - expected) > 1e-3
        x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        k.train_step(x, 1)  # A is its initial value
        assert k.A.value.item() == pytest.approx(expected, abs=1e-12)
        # one batch-norm update per layer: the generator's step; the 1,600 draws behind A moved none of them
        assert [int(m.num_batches_tracked) for m in bn] == [n + 1 for n in before]
    finally:
        torch.set_default_dtype(torch.float32)


def test_kale_base_only_and_guided_samples_differ_but_are_deterministic():
    cfg = resolve_config("kale", "ring8", overrides={"mcmc_steps": 20})
    k = build_method(cfg, torch.device("cpu"))
    a = k.sample(50, generator=torch.Generator().manual_seed(3))
    b = k.sample(50, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    base = k.G(torch.randn(50, 2, generator=torch.Generator().manual_seed(3)))
    assert not torch.allclose(a, base)


@pytest.mark.parametrize("name", ["vgan", "kale", "bib", "ebgan", "ebgan_pt"])
def test_every_generator_energy_pair_supports_guided_sampling(name):
    m = build_method(resolve_config(name, "ring8"), torch.device("cpu"))
    m.train(False)
    x, info = guided_samples(m, 64, GuidedConfig("mala", 1.0, 5, 1e-3, 1.0), generator=torch.Generator().manual_seed(0))
    assert x.shape == (64, 2) and torch.isfinite(x).all() and 0 < info["acceptance"] <= 1


def test_guided_samples_of_images_in_blocks_equal_one_call(tmp_path):
    """On the CPU a method runs its networks on 128 images of 28×28 or more a call (``forward_rows``): KALE's guided
    samples of 300 such images (blocks of 128, 128, 44) are those of the chains run in one call; 8×8 digits and 2D
    data are run in one call. (A user's 28×28 images, written here: Fashion-MNIST may not be installed.)"""
    import numpy as np

    from ebmlab.samplers.latent import latent_samples

    path = tmp_path / "imgs.npy"
    np.save(path, np.random.default_rng(0).integers(0, 256, (64, 28, 28), dtype=np.uint8))
    cfg = resolve_config("kale", str(path), overrides={"mcmc_steps": 2, "width": 8})
    k = build_method(cfg, torch.device("cpu"))
    assert k.forward_rows == 128
    for data in ("digits", "ring8"):
        assert build_method(resolve_config("kale", data), torch.device("cpu")).forward_rows is None
    for net in k.networks.values():
        net.eval()
    x = k.sample(300, generator=torch.Generator().manual_seed(5))
    y, _ = latent_samples(k.generate, k.energy, k.latent_dim, 300, k.guided_config(),
                          generator=torch.Generator().manual_seed(5), rows=None)
    assert x.shape == (300, 1, 28, 28)
    torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-7)
    with torch.no_grad():  # the chains' start: the same first draw of the generator
        base = k.G(torch.randn(300, k.latent_dim, generator=torch.Generator().manual_seed(5)))
    assert float((x - base).abs().max()) > 1e-4  # the chains moved: the comparison is of guided samples


@pytest.mark.parametrize("sampler, has_rate", [("kinetic", False), ("ula", False), ("mala", True), ("hmc", True)])
def test_an_acceptance_rate_only_for_samplers_that_accept_or_reject(sampler, has_rate):
    """`sample --sampler kinetic` printed "mean acceptance 1" for a sampler without an accept/reject step."""
    m = build_method(resolve_config("kale", "ring8"), torch.device("cpu"))
    _, info = guided_samples(m, 16, GuidedConfig(sampler, 1.0, 3, 1e-3, 1.0), generator=torch.Generator().manual_seed(0))
    assert (info["acceptance"] is not None) == has_rate


def test_base_samples_are_scored_at_the_guided_sets_count():
    """The guided samples of a stacked set were counted over 26,000 and the base generator's over 2500 in the same
    table; the base is now drawn at the evaluator's count, and the evaluator truncates a larger extra set and notes a
    smaller one."""
    from ebmlab.config import resolve_config
    from ebmlab.data import get_dataset
    from ebmlab.metrics.evaluators import Toy2D
    from ebmlab.placement import build_method

    ds = get_dataset("ring8")
    k = build_method(resolve_config("kale", "ring8"), torch.device("cpu"))
    for n in (2500, 26000, 7):
        assert len(k.evaluate_extra(ds, n)["samples"]["base"]) == n
    ev = Toy2D()
    x = ds.sample(300, generator=torch.Generator().manual_seed(0))
    same = ev._scored_beside("base", torch.cat([x, x]), 300, ds, 300)
    assert "base_note" not in same and same["base_modes"] == ev.sample_metrics(x, ds)["modes"]
    fewer = ev._scored_beside("base", x[:100], 300, ds, 300)
    assert "not comparable" in fewer["base_note"]


def test_the_step_size_decay_is_gebms_schedule_to_float64_rounding():
    """GEBM's released Langevin sampler multiplies its step by 0.1 after every 200 steps (samplers.py,
    LangevinSampler): latent_samples with mcmc_decay_every=3 equals a hand-written ULA loop on the same draws, with
    the step dropping at steps 3 and 6 (float64), and kinetic Langevin refuses a decay it could not carry."""
    from ebmlab.samplers.latent import latent_samples

    T, h = 2.0, 0.05
    cfg = GuidedConfig("ula", T, 8, h, mcmc_decay_every=3, mcmc_decay=0.1)
    a = torch.tensor([[1.0, 0.5], [0.0, 2.0]], dtype=torch.float64)

    def energy(x):  # E(x) = ½ |A x|², G the identity: U(z) = ½|z|² + T·E(z)
        return 0.5 * ((x @ a.T.to(x.dtype)) ** 2).sum(1)

    def grad_u(z):
        return z + T * (z @ a.T) @ a

    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # the chains' start and noise drawn in float64
    try:
        x, _ = latent_samples(lambda z: z, energy, 2, 5, cfg, generator=torch.Generator().manual_seed(0))
        g = torch.Generator().manual_seed(0)
        z = torch.randn(5, 2, generator=g)
        for t in range(8):
            step = h * 0.1 ** (t // 3)
            z = z - step / 2 * grad_u(z) + step ** 0.5 * torch.randn(5, 2, generator=g)
    finally:
        torch.set_default_dtype(old)
    assert x.dtype == torch.float64
    torch.testing.assert_close(x, z, rtol=1e-12, atol=1e-12)
    constant, _ = latent_samples(lambda z: z, energy, 2, 5, GuidedConfig("ula", T, 8, h),
                                 generator=torch.Generator().manual_seed(0))
    assert float((constant.double() - x).abs().max()) > 1e-3  # the schedule changed the chains
    with pytest.raises(EbmlabError, match="kinetic Langevin's velocity"):
        GuidedConfig("kinetic", mcmc_decay_every=200)
    with pytest.raises(EbmlabError, match="mcmc_decay"):
        build_method(resolve_config("kale", "ring8", overrides={"mcmc_decay_every": 5}), torch.device("cpu"))


def test_spectral_norm_energy_has_every_layer_normalised():
    """e_spectral_norm (GEBM's dcgan-sn/resnet-sn critics): after a training step every weight of the energy has
    largest singular value ≈ 1 (one power iteration a forward, so within a few per cent); the step compiles (its
    power iteration carried: tests/test_compiled.py)."""
    from torch.nn.utils.parametrize import is_parametrized

    for data, over in (("ring8", {"e_hidden": "16,16"}), ("stacked_fashion32", {"net": "dcgan", "width": 4})):
        k = build_method(resolve_config("kale", data, overrides={"e_spectral_norm": True, "n_critic_burst": 3,
                                                                 "batch_size": 8, **over}), torch.device("cpu"))
        layers = [m for m in k.E.modules() if is_parametrized(m, "weight")]
        assert layers and len(layers) == sum(1 for m in k.E.modules() if hasattr(m, "weight")
                                              and isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)))
        x = torch.randn(8, *k.spec.shape, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
        for step in range(1, 4):
            k.train_step(x, step)
        for m in layers:
            w = m.weight.detach().flatten(1)
            assert abs(float(torch.linalg.svdvals(w)[0]) - 1.0) < 0.1
        assert k.compile_blocker() is None


def test_sngan_discriminator_is_spectrally_normalised():
    """d_spectral_norm (SNGAN, the baseline class of GEBM's Table 1): every layer of the DCGAN discriminator is
    parametrised by spectral norm; the step compiles (its power iteration carried)."""
    from torch.nn.utils.parametrize import is_parametrized

    g = build_method(resolve_config("gan", "stacked_fashion32", overrides={"net": "dcgan", "width": 4,
                                                                          "d_spectral_norm": True}), torch.device("cpu"))
    convs = [m for m in g.D.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    assert convs and all(is_parametrized(m, "weight") for m in convs)
    assert g.compile_blocker() is None
