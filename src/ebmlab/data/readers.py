"""Readers for the standard on-disk formats, with checksums and errors that name what was expected.

Nothing here downloads. Every reader validates before it returns: the idx magic number, the counts in the
header against the file length, the md5 of the file against the published value where one is given (the
pickled CIFAR-10 batches are only unpickled after their md5 matched), and the shapes and value ranges of a
user's own arrays. A failure raises :class:`~ebmlab.errors.EbmlabError` with one message saying what was found,
what was expected and how to fix it.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import EbmlabError

IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def md5_of(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()  # noqa: S324 — the published checksums are md5 (integrity, not security)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise EbmlabError(f"cannot read {path}: {exc.strerror or exc}") from None


def _read_checked(path: Path, md5: str | None, mismatch: str) -> bytes:
    """The bytes of ``path``, refused (``mismatch`` says what it is not) when ``md5`` is given and differs."""
    blob = _read_bytes(path)
    if md5 is not None and md5_of(blob) != md5:
        raise EbmlabError(f"{path} has md5 {md5_of(blob)}, expected {md5}: {mismatch}")
    return blob


def read_idx(path: str | Path, *, md5_raw: str | None = None, md5_file: str | None = None) -> np.ndarray:
    """An idx file (MNIST's format: big-endian header, magic 2051 for images n×rows×cols, 2049 for labels n),
    raw or gzip-compressed (by the ``.gz`` suffix), as a uint8 array.

    ``md5_file`` is checked against the file as it is on disk; ``md5_raw`` against the decompressed bytes (the
    Debian Fashion-MNIST package recompressed the files, so only the decompressed content has a stable md5).
    """
    path = Path(path)
    blob = _read_bytes(path)
    if md5_file is not None and md5_of(blob) != md5_file:
        raise EbmlabError(f"{path} has md5 {md5_of(blob)}, expected {md5_file}: the file is corrupt or not the "
                          f"published one; replace it with the original file")
    if path.suffix == ".gz":
        try:
            blob = gzip.decompress(blob)
        except (OSError, EOFError) as exc:
            raise EbmlabError(f"{path} is not a valid gzip file ({exc}); replace it with the original file") from None
    if md5_raw is not None and md5_of(blob) != md5_raw:
        raise EbmlabError(f"{path} decompresses to content with md5 {md5_of(blob)}, expected {md5_raw}: the file "
                          f"is corrupt or not the published one; reinstall or replace it")
    if len(blob) < 8:
        raise EbmlabError(f"{path} is too short ({len(blob)} bytes) to be an idx file")
    magic = int.from_bytes(blob[:4], "big")
    shape: tuple[int, ...]
    if magic == IDX_IMAGES_MAGIC:
        if len(blob) < 16:
            raise EbmlabError(f"{path}: truncated idx image header ({len(blob)} bytes, expected 16)")
        n, rows, cols = (int.from_bytes(blob[i:i + 4], "big") for i in (4, 8, 12))
        want, offset, shape = n * rows * cols, 16, (n, rows, cols)
    elif magic == IDX_LABELS_MAGIC:
        n = int.from_bytes(blob[4:8], "big")
        want, offset, shape = n, 8, (n,)
    else:
        raise EbmlabError(f"{path}: idx magic number {magic}, expected {IDX_IMAGES_MAGIC} (images) or "
                          f"{IDX_LABELS_MAGIC} (labels); this is not an idx file")
    if len(blob) - offset != want:
        raise EbmlabError(f"{path}: the header announces {shape} = {want} bytes of data but the file holds "
                          f"{len(blob) - offset}; the file is truncated or corrupt")
    return np.frombuffer(blob, dtype=np.uint8, offset=offset).reshape(shape).copy()


def find_file(directory: Path, names: list[str], what: str) -> Path:
    """The first of ``names`` that exists in ``directory``; an error naming all of them otherwise."""
    for name in names:
        p = directory / name
        if p.is_file():
            return p
    raise EbmlabError(f"{what}: none of {', '.join(names)} found in {directory}; put the files there "
                      f"(or pass another --data-dir / set EBMLAB_DATA)")


def read_idx_pair(directory: Path, stem: str, *, what: str, md5_gz: dict[str, str] | None = None,
                  md5_raw: dict[str, str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one split (``stem`` = ``train`` or ``t10k``) from ``directory``, raw or .gz."""
    out = []
    for part, magic_name in (("images", "idx3"), ("labels", "idx1")):
        base = f"{stem}-{part}-{magic_name}-ubyte"
        p = find_file(directory, [base + ".gz", base], what)
        out.append(read_idx(p, md5_file=(md5_gz or {}).get(p.name), md5_raw=(md5_raw or {}).get(base)))
    images, labels = out
    if len(images) != len(labels):
        raise EbmlabError(f"{what}: {stem} has {len(images)} images but {len(labels)} labels")
    return images, labels


def read_cifar10(directory: str | Path, *, md5: dict[str, str] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CIFAR-10's python batches (``data_batch_1..5``, ``test_batch``) from ``directory`` (or its
    ``cifar-10-batches-py`` sub-folder): (train_x [50000, 3, 32, 32] uint8, train_y, test_x, test_y).

    Each pickle is unpickled only after its md5 matched ``md5[name]`` (``md5=None`` skips the check: for files
    whose content the caller made itself).
    """
    d = Path(directory)
    if (d / "cifar-10-batches-py").is_dir():
        d = d / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [n for n in names if not (d / n).is_file()]
    if missing:
        raise EbmlabError(f"cifar10: {', '.join(missing)} not found in {d}; expected the python version of "
                          f"CIFAR-10 (cifar-10-batches-py/data_batch_1..5 and test_batch)")
    parts = {}
    for n in names:
        blob = _read_checked(d / n, md5[n] if md5 else None, "not the published CIFAR-10 batch; it is not unpickled. "
                                                     "Replace it with the original file")
        try:
            obj = pickle.loads(blob, encoding="bytes")  # noqa: S301 — only after the checksum matched
            data = np.asarray(obj[b"data"], dtype=np.uint8)
            labels = np.asarray(obj[b"labels"], dtype=np.int64)
        except Exception as exc:  # a pickle that passed the checksum but is not a CIFAR batch (md5=None case)
            raise EbmlabError(f"{d / n} is not a CIFAR-10 python batch ({type(exc).__name__}: {exc})") from None
        if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
            raise EbmlabError(f"{d / n}: data of shape {data.shape} with {len(labels)} labels, expected [n, 3072] "
                              f"with n labels")
        parts[n] = (data.reshape(-1, 3, 32, 32), labels)
    train_x = np.concatenate([parts[n][0] for n in names[:5]])
    train_y = np.concatenate([parts[n][1] for n in names[:5]])
    return train_x, train_y, parts["test_batch"][0], parts["test_batch"][1]


def read_svhn(directory: str | Path, *, md5: dict[str, str] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                        np.ndarray]:
    """SVHN's cropped digits (``train_32x32.mat``, ``test_32x32.mat``: MATLAB 5 files holding X [32, 32, 3, n]
    uint8 and y [n, 1] with labels 1..10, where 10 stands for the digit 0) from ``directory`` or its ``svhn``
    sub-folder: (train_x [n, 3, 32, 32] uint8, train_y 0..9, test_x, test_y).

    Each file's md5 is checked against ``md5[name]`` before it is parsed (``md5=None`` skips the check: for files
    whose content the caller made itself). The extra split is not read.
    """
    import io

    import scipy.io

    d = Path(directory)
    if (d / "svhn").is_dir():
        d = d / "svhn"
    names = ["train_32x32.mat", "test_32x32.mat"]
    missing = [n for n in names if not (d / n).is_file()]
    if missing:
        raise EbmlabError(f"svhn: {', '.join(missing)} not found in {d}; expected SVHN's cropped-digit files "
                          f"train_32x32.mat and test_32x32.mat (format 2)")
    out = []
    for n in names:
        blob = _read_checked(d / n, md5[n] if md5 else None, "not the published SVHN file; replace it with the original")
        try:
            mat = scipy.io.loadmat(io.BytesIO(blob))
            X, y = np.asarray(mat["X"]), np.asarray(mat["y"])
        except Exception as exc:  # a file that is not a MATLAB 5 file with X and y
            raise EbmlabError(f"{d / n} is not an SVHN .mat file with arrays X and y ({type(exc).__name__}: "
                              f"{exc})") from None
        if X.ndim != 4 or X.shape[:3] != (32, 32, 3) or X.dtype != np.uint8 or y.size != X.shape[3]:
            raise EbmlabError(f"{d / n}: X of shape {X.shape} ({X.dtype}) with {y.size} labels; expected X "
                              f"[32, 32, 3, n] uint8 and n labels")
        y = y.reshape(-1).astype(np.int64)
        if y.min() < 1 or y.max() > 10:
            raise EbmlabError(f"{d / n}: labels range over {y.min()}..{y.max()}; SVHN's are 1..10 (10 for the digit 0)")
        out += [np.ascontiguousarray(X.transpose(3, 2, 0, 1)), y % 10]
    return out[0], out[1], out[2], out[3]


def read_amat(path: str | Path, dim: int = 784) -> np.ndarray:
    """A fixed-binarised MNIST ``.amat`` file: rows of ``dim`` space-separated 0/1 values, as uint8 [n, dim]."""
    path = Path(path)
    text = _read_bytes(path).decode("ascii", errors="replace")
    rows = [r for r in text.splitlines() if r.strip()]
    try:
        arr = np.array([r.split() for r in rows], dtype=np.float64)
    except ValueError:
        raise EbmlabError(f"{path}: rows of different lengths or non-numeric values; expected rows of {dim} "
                          f"space-separated 0/1 values") from None
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise EbmlabError(f"{path}: {arr.shape[-1] if arr.ndim == 2 else '?'} values per row, expected {dim}")
    if not np.isin(arr, (0.0, 1.0)).all():
        raise EbmlabError(f"{path}: values other than 0 and 1; expected a binarised data set")
    return arr.astype(np.uint8)


# --- a user's own data -----------------------------------------------------------------------------------------

def read_csv_table(path: Path) -> dict[str, np.ndarray]:
    """A numeric ``.csv`` table: one sample per row, comma-separated, an optional header line (recognised by a
    non-numeric field); a header column named ``label`` holds integer class labels and is not a feature. Every other
    field must be a finite number: an empty, text or NaN field is refused with its line and column."""
    import csv
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.reader(fh) if r and any(f.strip() for f in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise EbmlabError(f"{path}: cannot read it as a comma-separated table ({exc})") from None
    if not rows:
        raise EbmlabError(f"{path}: the table is empty; expected one sample per line of comma-separated numbers")

    def numeric(f: str) -> bool:
        try:
            float(f)
            return True
        except ValueError:
            return False
    header = None if all(numeric(f) for f in rows[0]) else [f.strip() for f in rows[0]]
    body, first = (rows[1:], 2) if header else (rows, 1)
    width = len(rows[0])
    values = np.empty((len(body), width), dtype=np.float64)
    for i, r in enumerate(body):
        if len(r) != width:
            raise EbmlabError(f"{path}: line {i + first} has {len(r)} fields, the first line {width}; every line "
                              f"must have the same number of comma-separated fields")
        for j, f in enumerate(r):
            try:
                v = float(f)
            except ValueError:
                v = float("nan")
            if not np.isfinite(v):
                col = f" ({header[j]})" if header else ""
                raise EbmlabError(f"{path}: line {i + first}, column {j + 1}{col} holds {f.strip()!r}; expected a "
                                  f"finite number in every field (remove or impute missing values first)")
            values[i, j] = v
    if len(values) < 2:
        raise EbmlabError(f"{path}: {len(values)} data line(s); expected at least 2 samples")
    out: dict[str, np.ndarray] = {}
    if header and "label" in header:
        j = header.index("label")
        y = values[:, j]
        if (y != np.round(y)).any() or y.min() < 0:
            raise EbmlabError(f"{path}: the label column holds values other than non-negative integers; expected "
                              f"class indices 0, 1, 2, …")
        out["train_y"] = y.astype(np.int64)
        values = np.delete(values, j, axis=1)
    if values.shape[1] == 0:
        raise EbmlabError(f"{path}: no feature columns besides the label")
    out["train"] = values
    return out


NPY_MAGIC = b"\x93NUMPY"  # the first bytes of every .npy file (numpy.lib.format)
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a .npz is a zip archive (the second: an empty one)


def read_numpy_file(path: Path, members: Callable[[list[str]], list[str]] | None = None
                    ) -> np.ndarray | dict[str, np.ndarray]:
    """The array of a ``.npy`` file, or the arrays of a ``.npz`` (name -> array; ``members(names)`` chooses which
    of them to read, all by default), never unpickling.

    The file's first bytes are checked against its suffix before NumPy reads it: a file that is neither format, or
    one of them under the other's name (``np.load`` goes by content and would return an array where an archive was
    expected), gets one message saying which."""
    suffix = path.suffix
    try:
        # the file is opened here so that it is closed on every path: np.load leaves its own handle open when
        # a truncated .npz fails inside zipfile
        with open(path, "rb") as fh:
            head = fh.read(len(NPY_MAGIC))
            fh.seek(0)
            found = ".npy" if head == NPY_MAGIC else ".npz" if head[:4] in ZIP_MAGICS else None
            if found is None:
                raise EbmlabError(f"{path}: not a NumPy {suffix} file (it does not begin with the "
                                  f"{'NumPy array' if suffix == '.npy' else 'zip archive'} header; "
                                  f"{'it is empty' if not head else 'the file is corrupt or in another format'}); "
                                  f"write it with numpy.{'save' if suffix == '.npy' else 'savez'}")
            if found != suffix:
                what = "one array" if found == ".npy" else "a zip archive of arrays"
                raise EbmlabError(f"{path}: holds a {found} file ({what}) under a {suffix} name; rename it to "
                                  f"{path.with_suffix(found).name}")
            if suffix == ".npy":
                return np.load(fh, allow_pickle=False)
            with np.load(fh, allow_pickle=False) as z:
                return {k: z[k] for k in (z.files if members is None else members(list(z.files)))}
    except ValueError as exc:
        raise EbmlabError(f"{path}: not a readable numeric {suffix} file ({exc}); object arrays are refused "
                          f"(they would need unpickling): save plain numeric arrays") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise EbmlabError(f"{path}: cannot read it as {suffix} ({exc}); the file is truncated or corrupt") from None


def read_user_array(path: str | Path) -> dict[str, np.ndarray]:
    """``.npy`` (one array: the training samples), ``.npz`` (keys ``train`` or ``x``/``x_train``, optional
    ``test``/``x_test``, optional labels ``y_train``/``y_test``) or ``.csv`` (:func:`read_csv_table`). Never unpickles
    (``allow_pickle=False``)."""
    path = Path(path)
    if not path.is_file():
        raise EbmlabError(f"data file {path} does not exist; pass an existing .npy, .npz or .csv file")
    if path.suffix == ".csv":
        return read_csv_table(path)
    arrays = read_numpy_file(path)
    if isinstance(arrays, np.ndarray):
        return {"train": arrays}
    keys = {"train": ("train", "x_train", "x"), "test": ("test", "x_test"), "train_y": ("y_train", "y"),
            "test_y": ("y_test",)}
    out = {}
    for role, names in keys.items():
        for n in names:
            if n in arrays:
                out[role] = arrays[n]
                break
    if "train" not in out:
        raise EbmlabError(f"{path}: no training array; expected a key named train, x_train or x "
                          f"(found: {', '.join(arrays) or 'none'})")
    return out


GREY_MODES = ("L", "1", "I;16", "I;16B", "I;16L", "I;16N", "I", "F", "LA")
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # more than 8 bits per pixel


def image_values(im, grey: bool) -> np.ndarray:
    """A PIL image as float64 values in [0, 1]: [H, W] when ``grey`` else [H, W, 3].

    8-bit modes (L, P, RGB, RGBA, CMYK, ...) go through PIL's conversion and are divided by 255. 16-bit grey
    images (modes I;16*, and I as PIL opens 16-bit PNGs) are divided by 65535 — PIL's own conversion to L clips
    them at 255, which makes a 16-bit image all white. Float images (F) are taken as values in [0, 1].
    """
    if im.mode in WIDE_MODES:
        a = np.asarray(im).astype(np.float64)
        if im.mode != "F":
            a = a / 65535.0
        a = np.clip(a, 0.0, 1.0)
        return a if grey else np.repeat(a[..., None], 3, axis=2)
    return np.asarray(im.convert("L" if grey else "RGB"), dtype=np.float64) / 255.0


def image_files(directory: str | Path) -> list[Path]:
    """The PNG/JPEG files under ``directory``, recursively, sorted by name."""
    return sorted(p for p in Path(directory).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def open_image(path: str | Path):
    """The image at ``path`` as a loaded PIL image, or one clear error naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise EbmlabError(f"{path} is not a readable image ({exc}); remove or replace it") from None


def read_image_folder(directory: str | Path, *, size: int | None, grey: bool | None = None) -> np.ndarray:
    """Every PNG/JPEG in ``directory`` (sorted by name, recursively) as uint8 [n, C, size, size].

    ``size``: the side images are resized to (bilinear, after a centre crop to a square); None keeps the
    original size, which must then be the same for every image. ``grey``: None decides by the images (all grey
    → 1 channel, else 3); True/False forces it.
    """
    from PIL import Image

    d = Path(directory)
    if not d.is_dir():
        raise EbmlabError(f"image folder {d} does not exist")
    files = image_files(d)
    if not files:
        raise EbmlabError(f"image folder {d} holds no PNG or JPEG images (looked for {', '.join(IMAGE_SUFFIXES)})")
    imgs, modes, sizes = [], set(), {}  # type: list[Image.Image], set[str], dict[tuple[int, int], Path]
    for f in files:
        im = open_image(f)
        modes.add("L" if im.mode in GREY_MODES else "RGB")
        sizes.setdefault(im.size, f)
        imgs.append(im)
    if size is None and len(sizes) > 1:
        (s1, f1), (s2, f2) = list(sizes.items())[:2]
        raise EbmlabError(f"images of different sizes in {d}: {f1.name} is {s1[0]}x{s1[1]}, {f2.name} is "
                          f"{s2[0]}x{s2[1]}; pass image_size=N to resize them all to N x N")
    use_grey = (modes == {"L"}) if grey is None else grey
    out = []
    for im in imgs:
        a = np.round(image_values(im, use_grey) * 255.0).astype(np.uint8)
        if size is not None:
            im = Image.fromarray(a)
            w, h = im.size
            s = min(w, h)
            im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
            im = im.resize((size, size), Image.Resampling.BILINEAR)
            a = np.asarray(im, dtype=np.uint8)
        out.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    return np.stack(out)
