"""A scattering-like convolutional network: the sufficient statistics Φ(x) of the super-resolution model.

Bruna, Sprechmann & LeCun (ICLR 2016, §3-4) take Φ from a CNN whose filters are *initialised with multiscale
complex wavelets*: a wavelet-modulus-average cascade (the scattering transform) is stable to small deformations
and has low variance on stationary textures, which is what makes E[Φ(x) | y] predictable from y. We build the
filter bank ourselves:

    ψ_{j,θ}(u) = exp(−|u|² / (2σ_j²)) (exp(i ξ_j e_θ·u) − κ_{j,θ}),   σ_j = 0.8·2^j,  ξ_j = (3π/4)/2^j,

θ = πl/L, l = 0..L−1, κ chosen so that Σ_u ψ = 0 (Morlet's correction; zero mean is exact in any dtype), kernel
side 2⌈3σ_j⌉+1. φ is a normalised Gaussian of width ``avg_sigma``. Φ(x) stacks, each averaged by φ and
sub-sampled by ``stride``:
  order 0: x itself;   order 1: |x ⋆ ψ_{j,θ}|;   order 2: ||x ⋆ ψ_{j1,θ1}| ⋆ ψ_{j2,θ2}| for j2 > j1,
and each channel is standardised with a mean and standard deviation fitted once on training images (so that the
L2 distance in feature space weights channels equally; the paper leaves the weighting implicit).

``learn=True`` makes the wavelets parameters (real and imaginary parts free), initialised from the bank: the
learned variant that the paper fine-tunes. Deviations: only two orders and J ≤ 3 scales (images here are 28-64
pixels), and the modulus is √(a² + b² + ε) with ε = 1e-6 so that its gradient exists at 0.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def morlet(j: int, theta: float, dtype=torch.float64) -> Tensor:
    """The complex wavelet ψ_{j,θ} as a [K, K] complex tensor (zero mean; module docstring)."""
    sigma, xi = 0.8 * 2 ** j, (3 * math.pi / 4) / 2 ** j
    half = math.ceil(3 * sigma)
    r = torch.arange(-half, half + 1, dtype=dtype)
    u1, u2 = torch.meshgrid(r, r, indexing="ij")
    env = torch.exp(-(u1 ** 2 + u2 ** 2) / (2 * sigma ** 2))
    wave = torch.exp(1j * xi * (math.cos(theta) * u1 + math.sin(theta) * u2))
    kappa = (env * wave).sum() / env.sum()
    psi = env * (wave - kappa)
    return psi / psi.abs().sum()


def gaussian(sigma: float, dtype=torch.float64) -> Tensor:
    """A normalised Gaussian low-pass φ, [K, K], summing to 1."""
    half = max(1, math.ceil(3 * sigma))
    r = torch.arange(-half, half + 1, dtype=dtype)
    g = torch.exp(-r ** 2 / (2 * sigma ** 2))
    g = g[:, None] * g[None, :]
    return g / g.sum()


def _pad_to(k: Tensor, side: int) -> Tensor:
    p = (side - k.shape[-1]) // 2
    return F.pad(k, (p, p, p, p))


class Scattering(nn.Module):
    """Φ: [b, 1, H, W] → [b, C, H/stride, W/stride] (module docstring). ``padding``: 'reflect' or 'circular'."""

    def __init__(self, J: int = 2, L: int = 4, *, order: int = 2, avg_sigma: float = 2.0, stride: int = 2,
                 learn: bool = False, padding: str = "reflect", modulus: bool = True):
        super().__init__()
        self.J, self.L, self.order, self.stride, self.padding, self.modulus = J, L, order, stride, padding, modulus
        self.learn = learn
        self.avg_sigma = avg_sigma
        side = 2 * math.ceil(3 * 0.8 * 2 ** (J - 1)) + 1
        bank = torch.stack([_pad_to(morlet(j, math.pi * l / L), side) for j in range(J) for l in range(L)])
        w = torch.cat([bank.real, bank.imag])[:, None].float()  # [2·J·L, 1, K, K]: real parts, then imaginary
        if learn:
            self.wave = nn.Parameter(w)
        else:
            self.register_buffer("wave", w)
        self.register_buffer("init_wave", w.clone())
        self.register_buffer("phi", gaussian(avg_sigma)[None, None].float())
        n = self.n_channels
        self.register_buffer("mean", torch.zeros(n))
        self.register_buffer("std", torch.ones(n))

    @property
    def n_channels(self) -> int:
        n1 = self.J * self.L
        n2 = self.L * self.L * self.J * (self.J - 1) // 2 if self.order >= 2 else 0
        return 1 + n1 + n2

    def _conv(self, x: Tensor, w: Tensor, groups: int = 1, stride: int = 1) -> Tensor:
        p = w.shape[-1] // 2
        mode = self.padding if min(x.shape[-2:]) > p else "replicate"
        return F.conv2d(F.pad(x, (p, p, p, p), mode=mode), w.to(x.dtype), groups=groups, stride=stride)

    def _average(self, u: Tensor) -> Tensor:
        """u ⋆ φ sub-sampled by ``stride``. φ is a separable Gaussian, g gᵀ: two 1-d passes (2K products per pixel
        instead of K²) give the same values as the 2-d kernel up to rounding."""
        g = self.phi[0, 0].sum(1)  # the 1-d factor: φ = g gᵀ with Σ g = 1
        k, c = len(g), u.shape[1]
        p = k // 2
        mode = self.padding if min(u.shape[-2:]) > p else "replicate"
        u = F.pad(u, (p, p, p, p), mode=mode)
        u = F.conv2d(u, g.to(u.dtype).view(1, 1, k, 1).expand(c, 1, k, 1), groups=c, stride=(self.stride, 1))
        return F.conv2d(u, g.to(u.dtype).view(1, 1, 1, k).expand(c, 1, 1, k), groups=c, stride=(1, self.stride))

    def _wavelet(self, x: Tensor, scales: list[int]) -> Tensor:
        """|x ⋆ ψ_{j,θ}| for every input channel of x and every j in ``scales``, θ: [b, c·len(scales)·L, H, W]."""
        n = self.J * self.L
        idx = [j * self.L + l for j in scales for l in range(self.L)]
        w = torch.cat([self.wave[idx], self.wave[[n + i for i in idx]]])  # [2m, 1, K, K]
        if not self.learn and len(scales) == 1:  # fixed filters: cut the bank's zero padding to this scale's support
            keep = 2 * math.ceil(3 * 0.8 * 2 ** scales[0]) + 1
            cut = (w.shape[-1] - keep) // 2
            w = w[..., cut:w.shape[-1] - cut, cut:w.shape[-1] - cut]
        c, m = x.shape[1], len(idx)
        out = self._conv(x, w.repeat(c, 1, 1, 1), groups=c)  # [b, c·2m, H, W]
        out = out.unflatten(1, (c, 2, m))
        if not self.modulus:
            return out[:, :, 0].flatten(1, 2)
        return (out[:, :, 0] ** 2 + out[:, :, 1] ** 2 + 1e-6).sqrt().flatten(1, 2)

    def raw(self, x: Tensor) -> Tensor:
        """The unstandardised statistics."""
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"Scattering expects grey images [b, 1, H, W], got {tuple(x.shape)}")
        feats = [x]
        if self.learn:
            u1 = self._wavelet(x, list(range(self.J)))  # [b, J·L, H, W], scale-major
        else:
            u1 = torch.cat([self._wavelet(x, [j]) for j in range(self.J)], 1)  # the same, each scale at its support
        feats.append(u1)
        if self.order >= 2:
            for j2 in range(1, self.J):
                feats.append(self._wavelet(u1[:, : j2 * self.L], [j2]))
        return self._average(torch.cat(feats, 1))

    def forward(self, x: Tensor) -> Tensor:
        f = self.raw(x)
        return (f - self.mean.to(f.dtype)[:, None, None]) / self.std.to(f.dtype)[:, None, None]

    @torch.no_grad()
    def fit_normalisation(self, x: Tensor, chunk: int = 256) -> None:
        """Per-channel mean and standard deviation of the raw statistics over the images ``x``."""
        s = s2 = 0.0
        n = 0
        for i in range(0, len(x), chunk):
            f = self.raw(x[i:i + chunk]).double()
            s = s + f.sum((0, 2, 3))
            s2 = s2 + (f * f).sum((0, 2, 3))
            n += f.shape[0] * f.shape[2] * f.shape[3]
        mean = s / n
        self.mean.copy_(mean.to(self.mean.dtype))
        self.std.copy_((s2 / n - mean ** 2).clamp_min(1e-12).sqrt().to(self.std.dtype))

    def drift(self) -> Tensor:
        """‖w − w₀‖² / ‖w₀‖²: how far learned filters moved from the wavelet initialisation."""
        return ((self.wave - self.init_wave) ** 2).sum() / (self.init_wave ** 2).sum()
