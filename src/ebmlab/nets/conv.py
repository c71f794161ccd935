"""Convolutional networks for images.

``DCGANGenerator``/``DCGANEnergy`` (``net=dcgan``): a small three-layer DCGAN-style pair for 32×32 images (Radford,
Metz, Chintala 2016); it is *not* EBM-BB's. ``EBMBBGenerator32``/``EBMBBEnergy32`` (``net=ebmbb32``): EBM-BB's own
32×32 pair, layer for layer as its released ``network/DCGAN.py``. ``VGANFeatures``/``VGANEncoder``/``VGANDecoder``
(``net=vgan``): the released VGAN code's energy trunk and VCD transition (any C×H×W with H, W divisible by 4).
``LBTGenerator``/``LBTDiscriminator`` (``net=lbt``): LBT-GAN's stacked-MNIST generator and discriminator.
Parameter counts of both are checked against the official layer lists in tests/nets/test_build.py.

``DCGANGenerator``: z [b, z_dim] → Linear → 4×4×(4·ngf) → ConvT → 8×8×(2·ngf) → ConvT → 16×16×ngf → ConvT →
32×32×channels, tanh; BatchNorm + ReLU after every layer but the last. With z_dim = 128 and ngf = 64 this is
z 128 → 4×4×256 → 8×8 → 16×16 → 32×32×3.
``DCGANEnergy``: x [b, channels, 32, 32] → Conv 16×16×ndf → 8×8×(2·ndf) → 4×4×(4·ndf) (LeakyReLU 0.2) → Linear
→ [b] energies. Architecture only.

BatchNorm in training mode couples the rows of a batch; the Jacobian bounds need the generator in eval mode
(see ``ebmlab.bounds.entropy``).
"""

from __future__ import annotations

from torch import Tensor, nn


class DCGANGenerator(nn.Module):
    def __init__(self, z_dim: int = 128, ngf: int = 64, channels: int = 3):
        super().__init__()
        self.z_dim, self.ngf = z_dim, ngf
        self.fc = nn.Sequential(nn.Linear(z_dim, 4 * 4 * 4 * ngf), nn.BatchNorm1d(4 * 4 * 4 * ngf), nn.ReLU())
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(4 * ngf, 2 * ngf, 4, 2, 1), nn.BatchNorm2d(2 * ngf), nn.ReLU(),  # 8×8
            nn.ConvTranspose2d(2 * ngf, ngf, 4, 2, 1), nn.BatchNorm2d(ngf), nn.ReLU(),  # 16×16
            nn.ConvTranspose2d(ngf, channels, 4, 2, 1), nn.Tanh(),  # 32×32
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.deconv(self.fc(z).reshape(z.shape[0], 4 * self.ngf, 4, 4))


class DCGANEnergy(nn.Module):
    def __init__(self, ndf: int = 64, channels: int = 3):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2),  # 16×16
            nn.Conv2d(ndf, 2 * ndf, 4, 2, 1), nn.LeakyReLU(0.2),  # 8×8
            nn.Conv2d(2 * ndf, 4 * ndf, 4, 2, 1), nn.LeakyReLU(0.2),  # 4×4
            nn.Flatten(), nn.Linear(4 * ndf * 4 * 4, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(1)


class Reshape(nn.Module):
    def __init__(self, *shape: int):
        super().__init__()
        self.shape = shape

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], *self.shape)


# --- EBM-BB's own 32×32 pair (gengcong940126/EBM-BB, network/DCGAN.py), d = 8·width (the paper: width 64) --------

class EBMBBGenerator32(nn.Sequential):
    """z → Linear → 4×4×d → [ConvT 4/2 → BatchNorm → ReLU] × 3 (d/2, d/4, d/8 channels; 8, 16, 32 pixels) →
    Conv 3×3 → C channels → tanh. A plain Sequential of layers the Jacobian rules know (``nets.jacobian``), so
    BiB's bounds run through it; as in the official code, no BatchNorm after the first Linear."""

    def __init__(self, z_dim: int = 128, width: int = 64, channels: int = 3):
        d = 8 * width
        super().__init__(
            nn.Linear(z_dim, 4 * 4 * d), Reshape(d, 4, 4),
            nn.ConvTranspose2d(d, d // 2, 4, 2, 1), nn.BatchNorm2d(d // 2), nn.ReLU(),
            nn.ConvTranspose2d(d // 2, d // 4, 4, 2, 1), nn.BatchNorm2d(d // 4), nn.ReLU(),
            nn.ConvTranspose2d(d // 4, d // 8, 4, 2, 1), nn.BatchNorm2d(d // 8), nn.ReLU(),
            nn.Conv2d(d // 8, channels, 3, 1, 1), nn.Tanh(),
        )


class EBMBBEnergy32(nn.Module):
    """x [b, C, 32, 32] → seven convolutions alternating 3×3/1 and 4×4/2 (d/8, d/8, d/4, d/4, d/2, d/2, d
    channels; 32 → 16 → 8 → 4 pixels), LeakyReLU(0.1) after each → Linear(4·4·d → 1) → [b]; no normalisation."""

    def __init__(self, width: int = 64, channels: int = 3):
        super().__init__()
        d = 8 * width
        chans = [channels, d // 8, d // 8, d // 4, d // 4, d // 2, d // 2, d]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(chans[:-1], chans[1:])):
            layers += [nn.Conv2d(a, b, 3, 1, 1) if i % 2 == 0 else nn.Conv2d(a, b, 4, 2, 1), nn.LeakyReLU(0.1)]
        self.main = nn.Sequential(*layers, nn.Flatten())
        self.expand = nn.Linear(4 * 4 * d, 1)
        self.feat_dim = 4 * 4 * d

    def features(self, x: Tensor) -> Tensor:
        return self.main(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.expand(self.main(x)).squeeze(1)


# --- VGAN's own networks (Shuangfei/vgan, configs/{mnist,cifar10}_config.py): MNIST width 64, CIFAR-10 128/256 --

def _vgan_side(shape: tuple[int, ...]) -> tuple[int, int, int]:
    c, h, w = shape
    if h % 4 or w % 4:
        raise ValueError(f"VGAN's networks pool twice: H and W must be divisible by 4, got {h}x{w}")
    return c, h, w


class VGANFeatures(nn.Sequential):
    """The energy's trunk: [Conv 5×5 (same) → ReLU → MaxPool 2] × 2 (``width`` channels) → Dense 1024 → ReLU. The
    released code puts its 128 sigmoid experts on these features (``nets.BoundedExpertHead``)."""

    def __init__(self, shape: tuple[int, ...], width: int = 64, dense: int = 1024):
        c, h, w = _vgan_side(shape)
        super().__init__(nn.Conv2d(c, width, 5, 1, 2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(width, width, 5, 1, 2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(width * (h // 4) * (w // 4), dense), nn.ReLU())
        self.feat_dim = dense


class VGANEncoder(nn.Sequential):
    """VCD's transition encoder: [Conv 5×5 → BatchNorm → ReLU → MaxPool 2] × 2 → Dense ``out_dim`` (the transition
    adds the BatchNorm and tanh of the code, ``dense_batchnorm_tanh``)."""

    def __init__(self, shape: tuple[int, ...], out_dim: int, width: int = 64):
        c, h, w = _vgan_side(shape)
        super().__init__(nn.Conv2d(c, width, 5, 1, 2), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(width, width, 5, 1, 2), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(width * (h // 4) * (w // 4), out_dim))


class VGANDecoder(nn.Sequential):
    """VCD's transition decoder / VGAN's generator: Dense → BatchNorm → ReLU → width × H/4 × W/4 → ConvT 5×5/2 →
    BatchNorm → ReLU → ConvT 5×5/2 → C channels (the released code's ``deconv``: stride 2, 'half' padding);
    ``out`` maps to the data's range (the code's sigmoid for [0, 1] pixels; tanh for ebmlab's [−1, 1])."""

    def __init__(self, z_dim: int, shape: tuple[int, ...], width: int = 64, out: nn.Module | None = None):
        c, h, w = _vgan_side(shape)
        layers: list[nn.Module] = [
            nn.Linear(z_dim, width * (h // 4) * (w // 4)), nn.BatchNorm1d(width * (h // 4) * (w // 4)), nn.ReLU(),
            Reshape(width, h // 4, w // 4),
            nn.ConvTranspose2d(width, width, 5, 2, 2, output_padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.ConvTranspose2d(width, c, 5, 2, 2, output_padding=1)]
        if out is not None:
            layers.append(out)
        super().__init__(*layers)


# --- LBT-GAN's stacked-MNIST pair (taufikxu/Learning-By-Teaching, LBT-GAN_smnist.py; feature_dim f = width = 16) -

class LBTGenerator(nn.Sequential):
    """z → Dense 1024 → BN → ReLU → Dense 2f·H/4·W/4 → BN → ReLU → ConvT 5×5/2 (f) → BN → ReLU → ConvT 5×5/2 (C),
    dense layers and the first deconvolution without bias (each is followed by BatchNorm), as the released code;
    ``out`` maps to the data's range (the code's sigmoid for [0, 1]; tanh for ebmlab's [−1, 1])."""

    def __init__(self, z_dim: int, shape: tuple[int, ...], width: int = 16, out: nn.Module | None = None):
        c, h, w = _vgan_side(shape)
        cells = 2 * width * (h // 4) * (w // 4)
        layers: list[nn.Module] = [
            nn.Linear(z_dim, 1024, bias=False), nn.BatchNorm1d(1024), nn.ReLU(),
            nn.Linear(1024, cells, bias=False), nn.BatchNorm1d(cells), nn.ReLU(), Reshape(2 * width, h // 4, w // 4),
            nn.ConvTranspose2d(2 * width, width, 5, 2, 2, output_padding=1, bias=False), nn.BatchNorm2d(width),
            nn.ReLU(), nn.ConvTranspose2d(width, c, 5, 2, 2, output_padding=1)]
        if out is not None:
            layers.append(out)
        super().__init__(*layers)


class LBTDiscriminator(nn.Module):
    """x → Conv 4×4/2 (f) → LeakyReLU(0.2) → Conv 4×4/2 (2f, no bias) → LeakyReLU → Dense 1024 (no bias) →
    LeakyReLU → Dense 1 (the released code's default, without its optional BatchNorm)."""

    def __init__(self, shape: tuple[int, ...], width: int = 16):
        super().__init__()
        c, h, w = _vgan_side(shape)
        self.main = nn.Sequential(
            nn.Conv2d(c, width, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(2 * width * (h // 4) * (w // 4), 1024, bias=False),
            nn.LeakyReLU(0.2))
        self.out = nn.Linear(1024, 1)

    def features(self, x: Tensor) -> Tensor:
        return self.main(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.main(x))


# --- small convolutional networks for any C×H×W with H, W divisible by 4 (8×8, 28×28, 32×32, …) -------------


def _check_side(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ValueError(f"conv networks need a (C, H, W) sample shape, got {shape}")
    c, h, w = shape
    if h % 4 or w % 4:
        raise ValueError(f"conv networks need H and W divisible by 4 (two stride-2 stages), got {h}x{w}; "
                         f"use net=mlp or resize the images (image_size=...)")
    return c, h, w


class ConvGenerator(nn.Module):
    """z [b, z_dim] → x [b, C, H, W]: Linear → (2w)×H/4×W/4 → ConvT(4, 2, 1) → w×H/2×W/2 → ConvT(4, 2, 1) → C×H×W,
    ReLU (with BatchNorm before it when ``batchnorm``) after every layer but the last, then ``out`` (the data's
    range: tanh for [−1, 1], sigmoid for [0, 1], or nothing)."""

    def __init__(self, z_dim: int, shape: tuple[int, int, int], width: int = 32, *, batchnorm: bool = True,
                 out: nn.Module | None = None):
        super().__init__()
        c, h, w = _check_side(shape)
        bn1 = [nn.BatchNorm1d(2 * width * (h // 4) * (w // 4))] if batchnorm else []
        bn2 = [nn.BatchNorm2d(width)] if batchnorm else []
        self.net = nn.Sequential(
            nn.Linear(z_dim, 2 * width * (h // 4) * (w // 4)), *bn1, nn.ReLU(), Reshape(2 * width, h // 4, w // 4),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), *bn2, nn.ReLU(),
            nn.ConvTranspose2d(width, c, 4, 2, 1), *([out] if out is not None else []))

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class ConvCritic(nn.Module):
    """x [b, C, H, W] → [b, out_dim]: Conv3×3 → w, Conv4/2 → 2w, Conv4/2 → 4w (LeakyReLU 0.2 after each), flatten,
    Linear → 8w features (LeakyReLU), Linear → out_dim. ``features(x)`` is the 8w-dimensional penultimate layer
    (the linear probe's input and VGAN's expert inputs). No BatchNorm: gradient penalties and per-example
    energies must not couple the rows of a batch."""

    def __init__(self, shape: tuple[int, int, int], width: int = 32, out_dim: int = 1):
        super().__init__()
        c, h, w = _check_side(shape)
        self.feat_dim = 8 * width
        self.trunk = nn.Sequential(
            nn.Conv2d(c, width, 3, 1, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 4 * width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(4 * width * (h // 4) * (w // 4), self.feat_dim), nn.LeakyReLU(0.2))
        self.head = nn.Linear(self.feat_dim, out_dim)

    def features(self, x: Tensor) -> Tensor:
        return self.trunk(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x))


class ConvTimeEnergy(nn.Module):
    """E(x, t): x [b, C, H, W], t [b] (or a 0-d tensor) → [b]; the ConvCritic layout with a sinusoidal embedding of
    t projected to a per-channel shift after every convolution and the hidden linear layer (BiB's diffusion
    upper bound on images)."""

    def __init__(self, shape: tuple[int, int, int], width: int = 32, *, emb_dim: int = 32):
        super().__init__()
        c, h, w = _check_side(shape)
        self.emb_dim = emb_dim
        self.convs = nn.ModuleList([nn.Conv2d(c, width, 3, 1, 1), nn.Conv2d(width, 2 * width, 4, 2, 1),
                                    nn.Conv2d(2 * width, 4 * width, 4, 2, 1)])
        self.t_proj = nn.ModuleList([nn.Linear(emb_dim, k, bias=False) for k in (width, 2 * width, 4 * width, 8 * width)])
        self.fc = nn.Linear(4 * width * (h // 4) * (w // 4), 8 * width)
        self.out = nn.Linear(8 * width, 1)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        from .time_energy import sinusoidal_embedding

        t = t.to(x.dtype).expand(x.shape[0]) if t.dim() == 0 else t.to(x.dtype)
        emb = sinusoidal_embedding(t, self.emb_dim)
        h = x
        for conv, tp in zip(self.convs, self.t_proj):
            h = self.act(conv(h) + tp(emb)[:, :, None, None])
        h = self.act(self.fc(h.flatten(1)) + self.t_proj[-1](emb))
        return self.out(h).squeeze(1)


class ConvAutoEncoder(nn.Module):
    """EBGAN's auto-encoder energy on images: ConvCritic encoder → code [b, code_dim] → ConvGenerator decoder
    (no BatchNorm, output in the data's range). ``forward`` returns (reconstruction, code)."""

    def __init__(self, shape: tuple[int, int, int], width: int = 32, code_dim: int = 64, out: nn.Module | None = None):
        super().__init__()
        self.encoder = ConvCritic(shape, width, code_dim)
        self.decoder = ConvGenerator(code_dim, shape, width, batchnorm=False, out=out)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        code = self.encoder(x)
        return self.decoder(code), code
