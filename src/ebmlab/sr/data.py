"""Data for super-resolution: high-resolution grey images in [0, 1] split into train / validation / test.

- ``fashion``: Fashion-MNIST 28×28 (×4 → 7×7). Train: the first 55 000 training images; validation: the last
  5 000 (λ of ``tv`` and model selection); test: the official test split.
- ``skimage``: 64×64 crops (stride 32) of the photographs and textures that ship inside the scikit-image wheel,
  converted to grey. **Split by image**, never by crop: train astronaut, chelsea, rocket, coins, moon,
  immunohistochemistry, brick, grass; validation camera, clock; test coffee (a photograph) and gravel (a texture).
- a folder of the user's PNG/JPEG images: grey crops of ``crop`` pixels (stride crop/2); the images (sorted by
  name) are split by image: the last ~10 % (at least one) for test, the one before for validation.

Grey only: colour images are handled at upscaling time by super-resolving the luma channel (``api.upscale``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import EbmlabError

SKIMAGE_SPLIT = {
    "train": ["astronaut", "chelsea", "rocket", "coins", "moon", "immunohistochemistry", "brick", "grass"],
    "val": ["camera", "clock"],
    "test": ["coffee", "gravel"],
}


@dataclass
class SRData:
    name: str
    train: Tensor  # [n, 1, H, W] float32 in [0, 1]
    val: Tensor
    test: Tensor
    description: str

    @property
    def side(self) -> int:
        return int(self.train.shape[-1])


def _grey(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    if a.ndim == 3:
        a = a[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return a.astype(np.float64) / (255.0 if a.max() > 1.0 else 1.0)


def crops(img: np.ndarray, side: int, stride: int) -> np.ndarray:
    """All side×side crops of a 2-D image at the given stride, [n, side, side]."""
    h, w = img.shape
    if h < side or w < side:
        return np.zeros((0, side, side))
    return np.stack([img[r:r + side, c:c + side] for r in range(0, h - side + 1, stride)
                     for c in range(0, w - side + 1, stride)])


def _t(a: np.ndarray) -> Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float32))[:, None].clamp(0, 1)


def _skimage(side: int = 64) -> SRData:
    try:
        import skimage.data as sd
    except ImportError:
        raise EbmlabError("the skimage data set needs scikit-image (pip install scikit-image)") from None
    parts = {k: _t(np.concatenate([crops(_grey(getattr(sd, n)()), side, side // 2) for n in names]))
             for k, names in SKIMAGE_SPLIT.items()}
    desc = ", ".join(f"{k}: {'/'.join(v)} ({len(parts[k])} crops)" for k, v in SKIMAGE_SPLIT.items())
    return SRData("skimage", parts["train"], parts["val"], parts["test"], f"scikit-image {side}x{side} crops; {desc}")


def _fashion(data_dir: str | None) -> SRData:
    from ..data import ArrayDataset, get_dataset

    ds = get_dataset("fashion", data_dir=data_dir)
    assert isinstance(ds, ArrayDataset)  # the built-in Fashion-MNIST is read from its files as arrays
    tr = torch.as_tensor(ds.arrays.train_x, dtype=torch.float32) / 255.0
    te = torch.as_tensor(ds.arrays.test_x, dtype=torch.float32) / 255.0
    return SRData("fashion", tr[:55_000], tr[55_000:], te, "Fashion-MNIST 28x28: train 55000, val 5000, test 10000")


def _folder(path: str, side: int) -> SRData:
    from ..data.readers import image_files, image_values, open_image

    d = Path(path)
    files = image_files(d)
    if len(files) < 3:
        raise EbmlabError(f"{d}: super-resolution training needs at least 3 PNG/JPEG images (split by image into "
                          f"train / validation / test), found {len(files)}")
    imgs = [image_values(open_image(f), True) for f in files]
    n_test = max(1, len(files) // 10)
    groups = {"train": imgs[: -n_test - 1], "val": imgs[-n_test - 1: -n_test], "test": imgs[-n_test:]}
    parts = {}
    for k, g in groups.items():
        c = [crops(im, side, side // 2) for im in g]
        c = np.concatenate(c) if c else np.zeros((0, side, side))
        if len(c) == 0:
            raise EbmlabError(f"{d}: the {k} images are smaller than the crop size {side}; use larger images or a "
                              f"smaller crop")
        parts[k] = _t(c)
    return SRData(str(d), parts["train"], parts["val"], parts["test"],
                  f"folder {d}: {len(files)} images, {side}x{side} crops, split by image "
                  f"({len(groups['train'])}/{len(groups['val'])}/{len(groups['test'])})")


def sr_data_names() -> dict[str, str]:
    return {"fashion": "Fashion-MNIST 28x28 (x4 -> 7x7)",
            "skimage": "64x64 grey crops of scikit-image's photographs and textures, split by image",
            "PATH": "a folder of PNG/JPEG images (grey crops of --crop pixels, split by image)"}


def get_sr_data(name: str, *, scale: int, data_dir: str | None = None, crop: int = 64) -> SRData:
    if name == "fashion":
        data = _fashion(data_dir)
    elif name == "skimage":
        data = _skimage(crop)
    elif Path(name).is_dir():
        data = _folder(name, crop)
    else:
        raise EbmlabError(f"unknown super-resolution data {name!r}; expected fashion, skimage or a folder of images")
    if data.side % scale:
        raise EbmlabError(f"{name}: image side {data.side} is not a multiple of the scale {scale}; choose a scale "
                          f"that divides it (or --crop for a folder)")
    return data
