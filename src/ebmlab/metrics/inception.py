"""Real FID and Inception Score with user-supplied weights: Inception-v3 in plain PyTorch (no torchvision).

The network is the FID variant of Inception-v3 (the TensorFlow graph of 2015-12-05 that FID was defined with,
as ported to PyTorch in ``pt_inception-2015-12-05-6726825d.pth``): the torchvision layout with 1008 classes and
the FID changes — average pooling without the padded zeros in the A, C and first E blocks, max pooling in the
last E block. Weights are never downloaded: the path comes from the argument or ``EBMLAB_INCEPTION``; the
file's sha256 must start with ``6726825d`` (the hash prefix in its name, as PyTorch hub checks it) and it is
loaded with ``weights_only=True`` and strict key matching.

Inputs: images in [−1, 1] (or [0, 1] with ``value_range``), grey images repeated to 3 channels, resized to
299×299 by bilinear interpolation without antialiasing (``align_corners=False``: the resize pytorch-fid uses; it
is close to, not identical with, TensorFlow's), then scaled to [−1, 1]. Outputs: the 2048-d pool features (FID)
and the 1008 logits (IS over the first 1000 classes, whose softmax the TF graph takes for IS).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import EbmlabError

from ..metadata import Metric

METRICS = {
    "fid": Metric("samples", "", "↓", "FID (Inception features)"),
    "inception_score": Metric("samples", "", "↑", "Inception score"),
}

WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
SHA256_PREFIX = "6726825d"


class BasicConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, **kw):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        d = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)), d, self.branch_pool(_avg(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        d = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), d, F.max_pool2d(x, 3, 2)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for m in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                  self.branch7x7dbl_5):
            d = m(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, 3, 2)], 1)


class InceptionE(nn.Module):
    def __init__(self, cin: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        pool = F.max_pool2d(x, 3, 1, 1) if self.max_pool else _avg(x)
        return torch.cat([self.branch1x1(x), b3, d, self.branch_pool(pool)], 1)


class FIDInceptionV3(nn.Module):
    """x [b, 3, 299, 299] in [−1, 1] → (pool features [b, 2048], logits [b, 1008])."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = InceptionA(192, 32), InceptionA(256, 64), InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b, self.Mixed_6c = InceptionC(768, 128), InceptionC(768, 160)
        self.Mixed_6d, self.Mixed_6e = InceptionC(768, 160), InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b, self.Mixed_7c = InceptionE(1280, max_pool=False), InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(2048, 1008)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, 2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, 2)
        for m in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                  self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = m(x)
        f = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return f, self.fc(f)


def preprocess(x: Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> Tensor:
    """Images [b, C, H, W] in ``value_range`` → [b, 3, 299, 299] in [−1, 1] (module docstring)."""
    lo, hi = value_range
    x = (x.float().clamp(lo, hi) - lo) / (hi - lo)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    if x.shape[1] != 3:
        raise EbmlabError(f"Inception needs 1- or 3-channel images, got {x.shape[1]} channels")
    x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False, antialias=False)
    return 2 * x - 1


def load_inception(path: str | Path | None = None) -> FIDInceptionV3:
    """The FID Inception from ``path`` (else ``EBMLAB_INCEPTION``), after checking its sha256 prefix."""
    from ..data.readers import sha256_file

    p = path or os.environ.get("EBMLAB_INCEPTION")
    if not p:
        raise EbmlabError(f"real FID/IS need the Inception weights {WEIGHTS_NAME}: pass their path (--inception "
                          f"PATH) or set EBMLAB_INCEPTION; they are never downloaded")
    p = Path(p)
    if not p.is_file():
        raise EbmlabError(f"Inception weights {p} do not exist")
    digest = sha256_file(p)
    if not digest.startswith(SHA256_PREFIX):
        raise EbmlabError(f"{p} has sha256 {digest[:16]}…, expected the prefix {SHA256_PREFIX} of {WEIGHTS_NAME}; "
                          f"not the FID Inception weights")
    net = FIDInceptionV3()
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError) as exc:
        raise EbmlabError(f"{p}: its tensors do not match the FID Inception-v3 ({str(exc)[:200]})") from None
    return net.eval()


@torch.no_grad()
def inception_outputs(net: FIDInceptionV3, x: Tensor, value_range=(-1.0, 1.0), chunk: int = 100) -> tuple[Tensor, Tensor]:
    """(pool features [n, 2048], softmax over the first 1000 logits [n, 1000]) of images x."""
    feats, probs = [], []
    for i in range(0, len(x), chunk):
        f, logits = net(preprocess(x[i:i + chunk], value_range))
        feats.append(f.double())
        probs.append(F.softmax(logits[:, :1000].double(), 1))
    return torch.cat(feats), torch.cat(probs)


def fid_is(samples: Tensor, real: Tensor, path: str | Path | None = None, value_range=(-1.0, 1.0)) -> dict[str, float]:
    """Real FID (samples vs real images) and IS of the samples, with the user's Inception weights."""
    from .features import frechet_distance, inception_style_score

    net = load_inception(path)
    fs, ps = inception_outputs(net, samples, value_range)
    fr, _ = inception_outputs(net, real, value_range)
    return {"fid": frechet_distance(fs, fr), "inception_score": inception_style_score(ps)}
