"""DCGAN-style networks for 32×32 images (Radford, Metz, Chintala 2016), as used by EBM-BB's image runs.

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
