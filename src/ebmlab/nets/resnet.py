"""Residual image networks of two papers' releases, rebuilt from their layer lists.

**EBM-BB's ResNet** (gengcong940126/EBM-BB, ``network/Resnet.py``; the 64×64 runs of the paper, e.g. CelebA and
anime faces), ``net=ebmbb_resnet``, for square 32, 64 or 128-pixel inputs as the release's tables give them
(w = ``width``, 64 in the release):
- generator: Linear(z → c₀·4·4) → 4×4×c₀ → one up-block per doubling (BatchNorm → ReLU → nearest ×2 → conv 3×3
  → BatchNorm → ReLU → conv 3×3, plus the shortcut nearest ×2 → conv 1×1) → BatchNorm → ReLU → conv 3×3 → C → tanh.
  Channels (in → out per block): 32: 4w→4w ×3; 64: 16w→8w→4w→2w→w; 128: 16w→16w→8w→4w→2w→w. BatchNorm ε = 1e-4.
- energy: a first block (conv 3×3 → LeakyReLU(0.1) → conv 3×3 → avg-pool 2, plus avg-pool 2 → conv 1×1), then
  pre-activation blocks (LeakyReLU → conv 3×3 → LeakyReLU → conv 3×3 → [avg-pool 2], plus conv 1×1 → [avg-pool 2]
  when the block downsamples or changes channels), LeakyReLU, the sum over pixels, Linear(→ 1). Channels: 32: 2w
  throughout (down, down, –, –); 64: w, 2w, 4w, 8w, 16w (the last block keeps 4×4); 128: w … 16w, 16w. No
  normalisation (the release's ``bn=False``; its ``--sn`` spectral normalisation is off by default and not built).
  The release's LeakyReLU works in place, so in every block after the first the shortcut reads the *activated*
  input (the tensor it kept is overwritten by the activation); that is how the release computes, and it is built
  so. Deviations: the release constructs its BatchNorms with a keyword PyTorch's BatchNorm2d does not take
  (``in_features=``), so the file cannot run as published; the evident meaning (that many channels) is built.
  Inputs may have any number of channels C (the release: 3).

**GEBM's ResNet-SN pair** (MichaelArbel/GeneralizedEBM, ``models/generator.py`` and ``models/discriminator.py``,
``nn_type='resnet-sn'``, the default of its ``configs/training.yaml`` for CIFAR-10), ``net=gebm_resnet``, 32×32
only, 128 channels throughout (``width`` sets them):
- base (generator): Linear(z → 128·4·4) → three up-blocks (BatchNorm → ReLU → nearest ×2 → conv 3×3 → BatchNorm →
  ReLU → conv 3×3, plus nearest ×2 as the shortcut) → BatchNorm → ReLU → conv 3×3 → C → tanh;
- energy: a first block (conv 3×3 → ReLU → conv 3×3 → avg-pool 2, plus avg-pool 2 → conv 1×1), a downsampling
  block (ReLU → conv → ReLU → conv → avg-pool, plus conv 1×1 → avg-pool), two blocks at 8×8 with identity
  shortcuts, ReLU, avg-pool 8, Linear(128 → 1); spectral normalisation on every convolution and the Linear, and
  the output truncated below at −10 as the release does (``relu(f + 10) − 10``, its ``no_trunc=False``).
  Xavier-uniform initialisation (gain 1; √2 for the 1×1 shortcuts), as the release. No BatchNorm in the energy
  (its ``bn=False``).
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

# EBM-BB's tables (network/Resnet.py), in units of the width w: generator (in, out) channels per up-block; energy
# (in, out) channels per block (the first block reads the image) and which blocks halve the resolution
_EBMBB_G = {32: ([4, 4, 4], [4, 4, 4]), 64: ([16, 8, 4, 2], [8, 4, 2, 1]), 128: ([16, 16, 8, 4, 2], [16, 8, 4, 2, 1])}
_EBMBB_E = {32: ([2, 2, 2], [2, 2, 2, 2], [True, True, False, False]),
            64: ([1, 2, 4, 8], [1, 2, 4, 8, 16], [True, True, True, True, False]),
            128: ([1, 2, 4, 8, 16], [1, 2, 4, 8, 16, 16], [True, True, True, True, True, False])}
EBMBB_SIZES = tuple(_EBMBB_G)


class _UpBlock(nn.Module):
    """BN → ReLU → ×2 → conv 3×3 → BN → ReLU → conv 3×3, plus the shortcut ×2 (→ conv 1×1 when ``proj``)."""

    def __init__(self, a: int, b: int, *, proj: bool, eps: float):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(a, eps=eps), nn.BatchNorm2d(b, eps=eps)
        self.conv1, self.conv2 = nn.Conv2d(a, b, 3, 1, 1), nn.Conv2d(b, b, 3, 1, 1)
        self.short = nn.Conv2d(a, b, 1) if proj else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.interpolate(F.relu(self.bn1(x)), scale_factor=2, mode="nearest"))
        h = self.conv2(F.relu(self.bn2(h)))
        s = F.interpolate(x, scale_factor=2, mode="nearest")
        return h + (self.short(s) if self.short is not None else s)


class _ResGenerator(nn.Module):
    def __init__(self, z_dim: int, ins: list[int], outs: list[int], channels: int, *, proj: bool, eps: float,
                 out: nn.Module | None):
        super().__init__()
        self.c0 = ins[0]
        self.linear = nn.Linear(z_dim, ins[0] * 16)
        self.blocks = nn.Sequential(*(_UpBlock(a, b, proj=proj, eps=eps) for a, b in zip(ins, outs)))
        self.bn = nn.BatchNorm2d(outs[-1], eps=eps)
        self.conv = nn.Conv2d(outs[-1], channels, 3, 1, 1)
        self.out = out if out is not None else nn.Tanh()

    def forward(self, z: Tensor) -> Tensor:
        h = self.blocks(self.linear(z).view(z.shape[0], self.c0, 4, 4))
        return self.out(self.conv(F.relu(self.bn(h))))


class EBMBBResNetGenerator(_ResGenerator):
    """EBM-BB's ResNet generator for ``size``×``size`` images (module docstring)."""

    def __init__(self, z_dim: int = 128, width: int = 64, channels: int = 3, size: int = 64,
                 out: nn.Module | None = None):
        ins, outs = _EBMBB_G[size]
        super().__init__(z_dim, [width * k for k in ins], [width * k for k in outs], channels, proj=True, eps=1e-4,
                         out=out)


class _DownBlock(nn.Module):
    """[act] → conv 3×3 → act → conv 3×3 → [pool], plus [conv 1×1 → pool]; ``first``: no leading activation and
    the shortcut pools before its convolution (EBM-BB's DiscOptBlock, GEBM's FirstResBlockDiscriminator)."""

    def __init__(self, a: int, b: int, *, down: bool, first: bool, act: nn.Module, act_shortcut: bool = False):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(a, b, 3, 1, 1), nn.Conv2d(b, b, 3, 1, 1)
        self.short = nn.Conv2d(a, b, 1) if (first or down or a != b) else None
        self.down, self.first, self.act, self.act_shortcut = down, first, act, act_shortcut

    def forward(self, x: Tensor) -> Tensor:
        if self.first:
            h = self.conv2(self.act(self.conv1(x)))
        else:
            a = self.act(x)
            h = self.conv2(self.act(self.conv1(a)))
            if self.act_shortcut:
                x = a
        if self.down:
            h = F.avg_pool2d(h, 2)
        if self.short is None:
            return h + x
        if self.first:
            return h + self.short(F.avg_pool2d(x, 2))
        s = self.short(x)
        return h + (F.avg_pool2d(s, 2) if self.down else s)


class EBMBBResNetEnergy(nn.Module):
    """EBM-BB's ResNet energy for ``size``×``size`` images: x [b, C, s, s] → [b] (module docstring)."""

    def __init__(self, width: int = 64, channels: int = 3, size: int = 64):
        super().__init__()
        ins, outs, down = _EBMBB_E[size]
        chans = [channels] + [width * k for k in ins]
        outs = [width * k for k in outs]
        act = nn.LeakyReLU(0.1)
        self.blocks = nn.Sequential(*(_DownBlock(a, b, down=d, first=i == 0, act=act, act_shortcut=True)
                                      for i, (a, b, d) in enumerate(zip(chans, outs, down))))
        self.act = act
        self.linear = nn.Linear(outs[-1], 1)
        self.feat_dim = outs[-1]

    def features(self, x: Tensor) -> Tensor:
        return self.act(self.blocks(x)).sum((2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.features(x)).squeeze(1)


class GEBMResNetGenerator(_ResGenerator):
    """GEBM's resnet-sn base for 32×32 images (module docstring)."""

    def __init__(self, z_dim: int = 100, width: int = 128, channels: int = 3, out: nn.Module | None = None):
        super().__init__(z_dim, [width] * 3, [width] * 3, channels, proj=False, eps=1e-5, out=out)
        nn.init.xavier_uniform_(self.linear.weight, 1.0)
        nn.init.xavier_uniform_(self.conv.weight, 1.0)
        for b in self.blocks:
            nn.init.xavier_uniform_(b.conv1.weight, 1.0)
            nn.init.xavier_uniform_(b.conv2.weight, 1.0)


class GEBMResNetEnergy(nn.Module):
    """GEBM's resnet-sn energy for 32×32 images, x [b, C, 32, 32] → [b], truncated below at −``floor``."""

    def __init__(self, width: int = 128, channels: int = 3, floor: float = 10.0):
        super().__init__()
        act = nn.ReLU()
        blocks = [_DownBlock(channels, width, down=True, first=True, act=act),
                  _DownBlock(width, width, down=True, first=False, act=act),
                  _DownBlock(width, width, down=False, first=False, act=act),
                  _DownBlock(width, width, down=False, first=False, act=act)]
        for b in blocks:  # the release's initialisation, before the spectral reparametrisation
            nn.init.xavier_uniform_(b.conv1.weight, 1.0)
            nn.init.xavier_uniform_(b.conv2.weight, 1.0)
            if b.short is not None:
                nn.init.xavier_uniform_(b.short.weight, math.sqrt(2))
        for b in blocks:
            b.conv1, b.conv2 = spectral_norm(b.conv1), spectral_norm(b.conv2)
            if b.short is not None:
                b.short = spectral_norm(b.short)
        self.blocks = nn.Sequential(*blocks)
        fc = nn.Linear(width, 1)
        nn.init.xavier_uniform_(fc.weight, 1.0)
        self.fc = spectral_norm(fc)
        self.floor = floor
        self.feat_dim = width

    def features(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(F.relu(self.blocks(x)), 8).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return (F.relu(self.fc(self.features(x)) + self.floor) - self.floor).squeeze(1)
