"""Networks chosen by the data's kind and shape and a method's ``net`` option — the one place that maps a
:class:`~ebmlab.data.DataSpec` to architectures.

``net``: ``auto`` (MLP for toy2d and vectors, ``conv`` for C×H×W data), ``mlp`` (any shape: flattened in,
reshaped out), ``conv`` (the small ConvGenerator/ConvCritic of ``nets.conv``, width ``width``), ``dcgan``
(a small three-layer DCGAN 32×32 pair), ``ebmbb32`` (EBM-BB's own 32×32 pair, d = 8·width; 32×32 data only),
``vgan`` (the released VGAN code's energy trunk, VCD encoder and decoder), ``lbt`` (LBT-GAN's stacked-MNIST
generator and discriminator, width = its feature_dim 16), ``ebmbb_resnet`` (EBM-BB's ResNet pair for square 32, 64
or 128-pixel images, width 64 in the release), ``gebm_resnet`` (GEBM's resnet-sn pair, 32×32, width 128 in the
release); ``nets.resnet`` describes both. A generator's output goes through the data's range:
tanh for [−1, 1], sigmoid for [0, 1], nothing for unbounded data. On toy2d data every builder returns exactly
the network the 2D methods have always used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, cast

from torch import Tensor, nn

from ..data.base import DataSpec
from ..metadata import NETS, Net

from .conv import (ConvAutoEncoder, ConvCritic, ConvGenerator, ConvTimeEnergy, DCGANEnergy, DCGANGenerator,
                   EBMBBEnergy32, EBMBBGenerator32, LBTDiscriminator, LBTGenerator, Reshape, VGANDecoder,
                   VGANEncoder, VGANFeatures)
from .mlp import mlp
from .resnet import EBMBB_SIZES, EBMBBResNetEnergy, EBMBBResNetGenerator, GEBMResNetEnergy, GEBMResNetGenerator



class _WithFeatures(Protocol):
    """A critic with its penultimate features (``features``)."""

    def features(self, x: Tensor) -> Tensor: ...


class RangeOut(nn.Module):
    """Maps a network's output into the data's value range (lo, hi): lo + (hi − lo)·σ(x); tanh when (−1, 1)."""

    def __init__(self, lo: float, hi: float):
        super().__init__()
        self.lo, self.hi = lo, hi

    def forward(self, x: Tensor) -> Tensor:
        if (self.lo, self.hi) == (-1.0, 1.0):
            return x.tanh()
        return self.lo + (self.hi - self.lo) * x.sigmoid()


def family(spec, net: str) -> str:
    """The family ``net`` names on data of ``spec`` (``auto``: MLP for vectors and 2D, conv for images), or a
    ValueError saying why the data do not fit it."""
    if net not in NETS:
        raise ValueError(f"net must be one of {', '.join(NETS)}; got {net!r}")
    if net == "auto":
        return "conv" if spec.is_image else "mlp"
    if net != "mlp" and not spec.is_image:
        raise ValueError(f"net={net} needs C×H×W data; {spec.kind} data of shape {spec.shape} takes net=mlp")
    why = FAMILIES[net].misfit(spec) if net in FAMILIES else None
    if why:
        raise ValueError(f"net={net} {why}; the data are {spec.shape[1]}×{spec.shape[2]}: use net=conv")
    return net


def range_out(spec) -> nn.Module | None:
    return None if spec.value_range is None else RangeOut(*spec.value_range)


def _wrap_mlp_out(core: nn.Sequential, spec, out: nn.Module | None) -> nn.Sequential:
    """An MLP producing D values → [b, *shape] in the data's range (unchanged for 1-d data without a range)."""
    if out is not None:
        core.append(out)
    if len(spec.shape) > 1:
        core.append(Reshape(*spec.shape))
    return core


def _flat_in(core: nn.Module, spec) -> nn.Module:
    return core if len(spec.shape) == 1 else nn.Sequential(nn.Flatten(), core)


def _mlp_only(f: str, opts: dict) -> dict:
    """The MLP architecture options (``nets.mlp.mlp``: bn_position, maxout, spectral_norm, init, out_scale) apply
    to the MLP family only; asking for them with a conv network is an error, not a silent no-op."""
    changed = sorted(k for k, v in opts.items() if MLP_DEFAULTS.get(k, object()) != v)
    if f != "mlp" and changed:
        raise ValueError(f"the options {', '.join(changed)} shape MLP networks; net={f} does not take them")
    return opts


MLP_DEFAULTS = {"bn_position": "pre", "maxout": 1, "spectral_norm": False, "init": "default", "out_scale": False}


def generator(spec, z_dim: int, *, net: str = "auto", hidden: tuple[int, ...] = (128, 128, 128), act: str = "relu",
              width: int = 32, batchnorm: bool = False, **mlp_opts) -> nn.Module:
    """G: z [b, z_dim] → x [b, *spec.shape]."""
    f = family(spec, net)
    _mlp_only(f, mlp_opts)
    if f == "mlp":
        return _wrap_mlp_out(mlp(z_dim, hidden, spec.dim, act=act, batchnorm=batchnorm, **mlp_opts), spec,
                             range_out(spec))
    return FAMILIES[f].generator(spec, z_dim, width, batchnorm, range_out(spec))


def decoder(spec, z_dim: int, *, net: str = "auto", hidden: tuple[int, ...] = (128, 128), act: str = "relu",
            width: int = 32) -> nn.Module:
    """A decoder's raw output (Bernoulli logits or Gaussian means): z [b, z_dim] → [b, *spec.shape], no range map."""
    f = family(spec, net)
    if f == "mlp":
        return _wrap_mlp_out(mlp(z_dim, hidden, spec.dim, act=act), spec, None)
    return ConvGenerator(z_dim, spec.shape, width, batchnorm=False, out=None)


def critic(spec, out_dim: int = 1, *, net: str = "auto", hidden: tuple[int, ...] = (128, 128, 128),
           act: str = "relu", width: int = 32, **mlp_opts) -> nn.Module:
    """x [b, *spec.shape] → [b, out_dim] (a discriminator, an energy before squeezing, an encoder's outputs).

    ``spectral_norm=True`` divides every linear and convolutional layer's weight by its largest singular value (one
    power iteration per training forward), for MLPs and for every conv family alike."""
    f = family(spec, net)
    if f != "mlp" and mlp_opts.pop("spectral_norm", False):
        _mlp_only(f, mlp_opts)
        return spectral_normalise(critic(spec, out_dim, net=net, hidden=hidden, act=act, width=width, **mlp_opts))
    _mlp_only(f, mlp_opts)
    if f == "mlp":
        return _flat_in(mlp(spec.dim, hidden, out_dim, act=act, **mlp_opts), spec)
    row = FAMILIES[f]
    if out_dim != 1 and not row.encodes:
        raise ValueError(f"net={f}'s energy has one output; use net=conv for encoders")
    return row.critic(spec, out_dim, width)


def spectral_normalise(net: nn.Module) -> nn.Module:
    """Spectral normalisation (``torch.nn.utils.parametrizations.spectral_norm``) on every Linear, Conv2d and
    ConvTranspose2d weight of ``net`` not normalised already; returns ``net``."""
    from torch.nn.utils import parametrize
    from torch.nn.utils.parametrizations import spectral_norm

    for m in list(net.modules()):
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)) and not parametrize.is_parametrized(m, "weight"):
            spectral_norm(m, dim=1 if isinstance(m, nn.ConvTranspose2d) else 0)
    return net


class _OneOut(nn.Module):
    """An energy [b] as a critic [b, 1], with its penultimate features."""

    def __init__(self, e: nn.Module):
        super().__init__()
        self.e = e

    def features(self, x: Tensor) -> Tensor:
        return cast(_WithFeatures, self.e).features(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.e(x)[:, None]


class _DCGANCritic(nn.Module):
    def __init__(self, e: DCGANEnergy):
        super().__init__()
        self.e = e

    def features(self, x: Tensor) -> Tensor:
        return self.e.net[:-1](x)

    def forward(self, x: Tensor) -> Tensor:
        return self.e(x)[:, None]


def features(spec, *, net: str = "auto", hidden: tuple[int, ...] = (128, 128), act: str = "relu",
             width: int = 32) -> tuple[nn.Module, int]:
    """(φ, F): a feature map x [b, *shape] → [b, F] ending in the activation (VGAN's expert inputs)."""
    f = family(spec, net)
    if f == "mlp":
        return _flat_in(mlp(spec.dim, hidden[:-1], hidden[-1], act=act, out_act=act), spec), hidden[-1]
    return FAMILIES[f].features(spec, width)


class _Features(nn.Module):
    def __init__(self, c: nn.Module):
        super().__init__()
        self.c = c

    def forward(self, x: Tensor) -> Tensor:
        return cast(_WithFeatures, self.c).features(x)


def time_energy(spec, *, net: str = "auto", hidden: tuple[int, ...] = (100, 100), act: str = "prelu",
                width: int = 32, emb_dim: int = 32) -> nn.Module:
    """E(x, t): x [b, *shape], t [b] → [b]."""
    from .time_energy import TimeEnergy

    f = family(spec, net)
    if f == "mlp":
        e = TimeEnergy(spec.dim, hidden, emb_dim=emb_dim, act=act)
        return e if len(spec.shape) == 1 else _FlatTime(e)
    return ConvTimeEnergy(spec.shape, width, emb_dim=emb_dim)


class _FlatTime(nn.Module):
    def __init__(self, e: nn.Module):
        super().__init__()
        self.e = e

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.e(x.flatten(1), t)


def autoencoder(spec, code_dim: int, *, net: str = "auto", hidden: tuple[int, ...] = (128, 128), act: str = "relu",
                width: int = 32) -> nn.Module:
    """EBGAN's auto-encoder: x → (reconstruction [b, *shape], code [b, code_dim])."""
    f = family(spec, net)
    if f == "mlp":
        return _MLPAutoEncoder(spec, hidden, code_dim, act)
    return ConvAutoEncoder(spec.shape, width, code_dim, out=range_out(spec))


class _MLPAutoEncoder(nn.Module):
    def __init__(self, spec, hidden, code_dim, act):
        super().__init__()
        self.shape = spec.shape
        self.encoder = mlp(spec.dim, hidden, code_dim, act=act)
        self.decoder = mlp(code_dim, tuple(reversed(hidden)), spec.dim, act=act)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        code = self.encoder(x.flatten(1) if len(self.shape) > 1 else x)
        r = self.decoder(code)
        return (r.reshape(x.shape) if len(self.shape) > 1 else r), code


def penultimate(net: nn.Module, x: Tensor) -> Tensor:
    """The penultimate layer of a critic built here: ``net.features`` for conv/DCGAN critics, every layer but the
    last for an MLP (the linear probe's input)."""
    if hasattr(net, "features"):
        return cast(_WithFeatures, net).features(x)
    seq = cast(nn.Sequential, net)
    if isinstance(seq, nn.Sequential) and isinstance(seq[0], nn.Flatten):
        return cast(nn.Sequential, seq[1])[:-1](seq[0](x))
    return seq[:-1](x)


def default_batchnorm(spec, net: str) -> bool:
    """BatchNorm in a generator by default for conv generators (DCGAN practice), never for MLPs (the 2D recipes)."""
    return family(spec, net) != "mlp"


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _chw(spec: DataSpec) -> tuple[int, int, int]:
    """The C×H×W shape of image data (family() has refused any other before a builder runs)."""
    c, h, w = spec.shape
    return c, h, w


def _square32(spec: DataSpec) -> str | None:
    return None if tuple(spec.shape[1:]) == (32, 32) else "is a 32×32 pair"


def _ebmbb_sizes(spec: DataSpec) -> str | None:
    ok = spec.shape[1] == spec.shape[2] and spec.shape[1] in EBMBB_SIZES
    return None if ok else f"is built for square images of {', '.join(map(str, EBMBB_SIZES))} pixels"


def _critic_features(critic_of: Callable[[DataSpec, int, int], nn.Module]) -> Callable[[DataSpec, int], tuple[nn.Module, int]]:
    """Features of a critic that has ``features`` and its width as ``e.feat_dim``."""
    def features(spec: DataSpec, width: int) -> tuple[nn.Module, int]:
        c = critic_of(spec, 1, width)
        return _Features(c), int(cast(Any, c).e.feat_dim)
    return features


def _conv_features(spec: DataSpec, width: int) -> tuple[nn.Module, int]:
    c = ConvCritic(_chw(spec), width, 1)
    return c.trunk, c.feat_dim


def _ebmbb32_features(spec: DataSpec, width: int) -> tuple[nn.Module, int]:
    e = EBMBBEnergy32(width, spec.shape[0])
    return e.main, e.feat_dim


def _vgan_features(spec: DataSpec, width: int) -> tuple[nn.Module, int]:
    v = VGANFeatures(spec.shape, width)
    return v, v.feat_dim


@dataclass(frozen=True)
class Family:
    """A convolutional network family: its builders, each of (spec, ..., width), and what data it fits.

    ``generator(spec, z_dim, width, batchnorm, out)``; ``critic(spec, out_dim, width)`` (a critic [b, out_dim] with
    ``features``); ``features(spec, width) -> (φ, F)``; ``misfit(spec)``: why the data do not fit, or None;
    ``encodes``: its critic takes out_dim > 1 (an encoder)."""
    generator: Callable[[DataSpec, int, int, bool, nn.Module | None], nn.Module]
    critic: Callable[[DataSpec, int, int], nn.Module]
    features: Callable[[DataSpec, int], tuple[nn.Module, int]]
    misfit: Callable[[DataSpec], str | None] = lambda spec: None
    encodes: bool = False


# the convolutional families (the rows of metadata.NETS but auto and mlp, whose MLPs take hidden sizes and
# activations instead): adding a family is a row here and a name with its meaning in metadata.NETS
FAMILIES: dict[str, Family] = {
    "conv": Family(lambda spec, z, w, bn, out: ConvGenerator(z, _chw(spec), w, batchnorm=bn, out=out),
                   lambda spec, k, w: ConvCritic(_chw(spec), w, k), _conv_features, encodes=True),
    "dcgan": Family(lambda spec, z, w, bn, out: DCGANGenerator(z, w, spec.shape[0]),
                    lambda spec, k, w: _DCGANCritic(DCGANEnergy(w, spec.shape[0])),
                    lambda spec, w: (_Features(_DCGANCritic(DCGANEnergy(w, spec.shape[0]))), 4 * w * 16), _square32),
    "ebmbb32": Family(lambda spec, z, w, bn, out: EBMBBGenerator32(z, w, spec.shape[0]),
                      lambda spec, k, w: _OneOut(EBMBBEnergy32(w, spec.shape[0])), _ebmbb32_features, _square32),
    "vgan": Family(lambda spec, z, w, bn, out: VGANDecoder(z, spec.shape, w, out=out),
                   lambda spec, k, w: VGANEncoder(spec.shape, k, w), _vgan_features, encodes=True),
    "lbt": Family(lambda spec, z, w, bn, out: LBTGenerator(z, spec.shape, w, out=out),
                  lambda spec, k, w: LBTDiscriminator(spec.shape, w),
                  lambda spec, w: (LBTDiscriminator(spec.shape, w).main, 1024)),
    "ebmbb_resnet": Family(lambda spec, z, w, bn, out: EBMBBResNetGenerator(z, w, spec.shape[0], spec.shape[1], out=out),
                           lambda spec, k, w: _OneOut(EBMBBResNetEnergy(w, spec.shape[0], spec.shape[1])),
                           _critic_features(lambda spec, k, w: FAMILIES["ebmbb_resnet"].critic(spec, k, w)),
                           _ebmbb_sizes),
    "gebm_resnet": Family(lambda spec, z, w, bn, out: GEBMResNetGenerator(z, w, spec.shape[0], out=out),
                          lambda spec, k, w: _OneOut(GEBMResNetEnergy(w, spec.shape[0])),
                          _critic_features(lambda spec, k, w: FAMILIES["gebm_resnet"].critic(spec, k, w)),
                          _square32),
}
assert set(FAMILIES) == set(NETS) - {"auto", "mlp"}, "nets.build.FAMILIES and metadata.NETS name the same families"


__all__ = ["autoencoder", "critic", "decoder", "default_batchnorm", "FAMILIES", "Family", "family", "features",
           "generator", "n_params", "Net", "penultimate", "range_out", "RangeOut", "spectral_normalise",
           "time_energy"]
