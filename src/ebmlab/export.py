"""Samples to files and back: what ``ebmlab sample`` writes and ``ebmlab score`` reads.

The kind of output is chosen by the path given:

- ``NAME.npy``: the samples as one float32 array [n, *shape], in the data's own units (images in the data set's
  value range, e.g. [−1, 1]; a user's vectors standardised as in training);
- ``NAME.npz``: the same array under ``samples``, and ``info``: a JSON string of what drew them (run, step, seed,
  sampler and its settings, acceptance rates);
- ``NAME.png``: a picture — image data: a grid of the samples (at most ``MAX_GRID`` of them) with grey separators
  (white ones merge with the white strokes of binary images); 2D data: a scatter plot over the test points;
- a directory (a path ending in ``/``, or without a suffix): one 8-bit PNG per image sample, ``000000.png`` …
  (more digits past a million), written into a temporary directory beside it and renamed into place when complete.

Reading (``ebmlab score``): ``.npy``/``.npz`` (key ``samples``, else the only array) or a folder of PNG/JPEG
images, mapped to the data set's value range.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import EbmlabError

MAX_GRID = 1024
SUFFIXES = (".npy", ".npz", ".png")


def output_kind(out: str | Path) -> str:
    """npy, npz, png or dir, from the path's suffix (a trailing '/' or no suffix: a directory)."""
    text = str(out)
    p = Path(text)
    if p.suffix.lower() in SUFFIXES and not text.endswith(("/", os.sep)):
        return p.suffix.lower()[1:]
    if text.endswith(("/", os.sep)) or p.is_dir() or p.suffix == "":
        return "dir"
    raise EbmlabError(f"--out {out}: name a .npy, .npz or .png file, or a directory (ending in '/') for one PNG per "
                      f"image")


def check_output(out: str | Path, kind: str, spec: Any) -> None:
    """Refuse, before any sampling, an output that cannot be written or does not suit the data."""
    from .atomic import check_output_dir, require_utf8

    require_utf8(out)
    p = Path(out)
    if kind == "dir":
        if p.exists() and not p.is_dir():
            raise EbmlabError(f"--out {out} is an existing file; a folder of PNGs needs a directory path")
        if p.is_dir() and any(p.iterdir()):
            raise EbmlabError(f"--out {out} is a directory that is not empty; name a new or empty directory")
        if not spec.is_image:
            raise EbmlabError(f"--out {out}: a folder of PNGs needs image data; this run's samples have shape "
                              f"{spec.shape} — write a .npy or .npz file (or a .png plot for 2D data)")
        check_output_dir(p)
        return
    if p.is_dir():
        raise EbmlabError(f"--out {out} is a directory; name a .{kind} file")
    if kind == "png" and not spec.is_image and spec.shape != (2,):
        raise EbmlabError(f"--out {out}: a picture needs image or 2D data; this run's samples have shape "
                          f"{spec.shape} — write a .npy or .npz file")
    check_output_dir(p.parent if str(p.parent) else Path("."))


MEMINFO = "/proc/meminfo"
CGROUP_MEMORY = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
                 ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"))  # v1


def available_memory() -> int | None:
    """Bytes of memory available to new allocations without swapping, None where unknown: Linux's MemAvailable, or
    less where the process's control group (a container's memory limit) leaves less."""
    found = []
    try:
        with open(MEMINFO) as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    for limit_path, usage_path in CGROUP_MEMORY:
        try:
            limit = Path(limit_path).read_text().strip()
            if limit.isdigit():  # "max" (v2) is no limit; v1 writes a huge number then, kept by min() below
                found.append(max(0, int(limit) - int(Path(usage_path).read_text().strip())))
            break
        except (OSError, ValueError):
            continue
    return min(found) if found else None


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2 ** 30:.3g} GiB"


def check_sample_room(n: int, shape: tuple[int, ...], out: str | Path | None = None, kind: str | None = None) -> None:
    """Refuse, before any sampling, ``n`` samples that memory cannot hold (the float32 array, and half as much again
    for the batches and networks beside it) or that a .npy/.npz ``out`` cannot take on its file system (the float32
    array; PNGs are compressed, so their size is not known in advance and is not checked)."""
    per = 4 * int(np.prod(shape))
    size = n * per
    mem = available_memory()
    if mem is not None and 1.5 * size > mem:
        raise EbmlabError(f"{n} samples of shape {tuple(shape)} take {_gib(size)} as float32; this machine has "
                          f"{_gib(mem)} of memory available — draw at most about {max(1, int(mem / 1.5 / per))} at a "
                          f"time (calls with different seeds give independent draws)")
    if out is not None and kind in ("npy", "npz"):
        where = Path(out).absolute().parent
        while not where.exists():
            where = where.parent
        free = shutil.disk_usage(where).free
        if size > free:
            raise EbmlabError(f"--out {out}: {n} samples of shape {tuple(shape)} make a {_gib(size)} file; its file "
                              f"system has {_gib(free)} free — draw at most about {max(1, free // per)} or write "
                              f"elsewhere")


def to_uint8(x: torch.Tensor, value_range: tuple[float, float]) -> np.ndarray:
    """Images [n, C, H, W] in ``value_range`` → uint8 [n, H, W, C] (C = 1 or 3), rounded."""
    lo, hi = value_range
    a = ((x.detach().float().cpu().clamp(lo, hi) - lo) / (hi - lo) * 255.0).round().to(torch.uint8)
    return a.permute(0, 2, 3, 1).numpy()


def write_grid_png(x: torch.Tensor, out: str | Path, value_range: tuple[float, float], *, nrow: int) -> None:
    """Images [n, C, H, W] as one PNG grid of ``nrow`` columns (``plots.image_grid``), enlarged by an integer factor
    to about 512 pixels across, written atomically."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plots import image_grid
    from .atomic import atomic_write_bytes

    g = image_grid(x, value_range, nrow=nrow)
    scale = max(1, 512 // (x.shape[-1] * nrow))
    buf = io.BytesIO()
    plt.imsave(buf, np.kron(g, np.ones((scale, scale, 1))), format="png")
    atomic_write_bytes(Path(out), lambda fh: fh.write(buf.getvalue()))


def write_samples(x: torch.Tensor, out: str | Path, kind: str, spec: Any, info: dict[str, Any],
                  test: torch.Tensor | None = None) -> str:
    """Write samples [n, *shape] as ``kind`` (module docstring); returns what was written, for the user."""
    from .atomic import atomic_write_bytes, json_safe

    p = Path(out)
    arr = x.detach().float().cpu().numpy()
    if kind == "npy":
        atomic_write_bytes(p, lambda fh: np.save(fh, arr))
        return f"{len(arr)} samples of shape {arr.shape[1:]} to {p}"
    if kind == "npz":
        meta = np.array(json.dumps(json_safe(info)))
        atomic_write_bytes(p, lambda fh: np.savez(fh, samples=arr, info=meta))
        return f"{len(arr)} samples of shape {arr.shape[1:]} (and how they were drawn, key info) to {p}"
    vr = spec.value_range or (0.0, 1.0)
    if kind == "png" and spec.is_image:
        shown = x[:MAX_GRID]
        write_grid_png(shown, p, vr, nrow=int(np.ceil(np.sqrt(len(shown)))))
        return (f"a grid of {len(shown)} of the {len(x)} samples" if len(x) > MAX_GRID else
                f"a grid of the {len(x)} samples") + f" to {p}"
    if kind == "png":
        import io

        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig, ax = plt.subplots(figsize=(5, 5))
        if test is not None:
            ax.scatter(test[:, 0], test[:, 1], s=2, c="0.75", label="test data")
        ax.scatter(arr[:, 0], arr[:, 1], s=2, c="C0", label="samples")
        ax.set_aspect("equal")
        ax.legend(loc="upper right", fontsize=8)
        fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
        plt.close(fig)
        what = f"a scatter plot of the {len(x)} samples"
        atomic_write_bytes(p, lambda fh: fh.write(buf.getvalue()))
        return f"{what} to {p}"
    # a folder of PNGs, complete or absent: written beside, then renamed into place
    from PIL import Image

    imgs = to_uint8(x, vr)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent))
    try:
        width = max(6, len(str(len(imgs) - 1)))  # names sort in sample order beyond a million too
        for i, a in enumerate(imgs):
            Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a).save(tmp / f"{i:0{width}d}.png")
        (tmp / "info.json").write_text(json.dumps(json_safe(info), indent=1))
        if p.is_dir():
            p.rmdir()  # checked empty before sampling
        os.replace(tmp, p)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return f"{len(imgs)} PNG images of {imgs.shape[2]}x{imgs.shape[1]} to {p}/"


def read_samples(path: str | Path, spec: Any) -> torch.Tensor:
    """Generated samples from ``path`` (module docstring) as float32 [n, *spec.shape] in the data's units."""
    from .data.readers import image_files, image_values, open_image, read_numpy_file, read_user_array

    p = Path(path)
    if p.is_dir():
        files = image_files(p)
        if not spec.is_image:
            raise EbmlabError(f"{p} is a folder of images, but the data set holds samples of shape {spec.shape}")
        if not files:
            raise EbmlabError(f"{p} holds no PNG or JPEG images")
        grey = spec.shape[0] == 1
        out = []
        for f in files:
            im = open_image(f)
            a = image_values(im, grey)
            if a.ndim == 2:
                a = a[None] if grey else np.repeat(a[None], 3, 0)
            else:
                a = a.transpose(2, 0, 1)
            if a.shape != tuple(spec.shape):
                raise EbmlabError(f"{f} is {a.shape[2]}x{a.shape[1]} with {a.shape[0]} channel(s); the data set's "
                                  f"images are {spec.shape[2]}x{spec.shape[1]} with {spec.shape[0]}")
            out.append(a)
        lo, hi = spec.value_range or (0.0, 1.0)
        return torch.as_tensor(np.stack(out) * (hi - lo) + lo, dtype=torch.float32)
    if not p.is_file():
        raise EbmlabError(f"{p} does not exist; give a .npy/.npz file or a folder of images")
    if p.suffix not in (".npy", ".npz"):
        raise EbmlabError(f"{p}: give a .npy or .npz file, or a folder of PNG/JPEG images")
    if p.suffix == ".npz":
        def samples_key(names: list[str]) -> list[str]:
            keys = [k for k in names if k != "info"]
            if "samples" in names:
                return ["samples"]
            if len(keys) == 1:
                return keys
            raise EbmlabError(f"{p}: expected an array named samples (or a single array); found "
                              f"{', '.join(names) or 'none'}")

        arrays = read_numpy_file(p, samples_key)  # only that array is read: another (an object array) may be refused
        assert isinstance(arrays, dict)  # read_numpy_file checked that the .npz is an archive
        (arr,) = arrays.values()
    else:
        arr = read_user_array(p)["train"]
    return samples_tensor(arr, spec, str(p))


def samples_tensor(arr: Any, spec: Any, what: str) -> torch.Tensor:
    """Samples [n, *spec.shape] of real numbers — a NumPy array or a torch tensor — as float32 on the CPU, checked
    (``what`` names them in the message)."""
    if isinstance(arr, torch.Tensor):
        t = arr.detach().cpu()
        arr = (t.float() if t.is_floating_point() else t).numpy()  # bfloat16 has no NumPy type
    arr = np.asarray(arr)
    if arr.dtype.kind not in "biuf":
        raise EbmlabError(f"{what}: holds {arr.dtype} values; expected real numbers")
    if tuple(arr.shape[1:]) != tuple(spec.shape):  # a 0-d array too: its () is no data set's sample shape
        raise EbmlabError(f"{what}: samples of shape {tuple(arr.shape[1:])} (an array of shape {arr.shape}); the "
                          f"data set's samples have shape {tuple(spec.shape)}: expected "
                          f"[n, {', '.join(map(str, spec.shape))}]")
    if len(arr) < 2:
        raise EbmlabError(f"{what}: {len(arr)} sample(s); scoring needs at least 2")
    return torch.as_tensor(np.asarray(arr, dtype=np.float32))


__all__ = ["available_memory", "check_output", "check_sample_room", "output_kind", "read_samples", "samples_tensor",
           "to_uint8", "write_grid_png", "write_samples"]
