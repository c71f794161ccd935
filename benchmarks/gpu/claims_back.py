"""What `on_device.sh claims` brought back, merged into this checkout: the GPU results (``<scale>@cuda`` keys only —
the CPU's results of the same claims stay as they are here), their curve pictures, and what the next lease carries in
``.gpu/``: the finished runs (``claims-runs.tar.gz``: read again, not retrained) and the unfinished ones with their
checkpoints (``ckpt.tar.gz``, from ``ckpt.tar.part*`` when they came back: resumed). The unfinished runs' records and
metrics (``unfinished.tar.gz``) are unpacked into ``DIR/unfinished`` to be read.

    python benchmarks/gpu/claims_back.py DIR_WITH_claims.tar [--specs benchmarks/claims]

Then `ebmlab claims render`.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import IO

from ebmlab.atomic import write_json


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("back", help="the folder holding claims.tar (and ckpt.tar.part0, part1, ... when they came back)")
    ap.add_argument("--specs", default="benchmarks/claims")
    a = ap.parse_args()
    back = Path(a.back)
    if not (back / "claims.tar").is_file():
        raise SystemExit(f"error: no claims.tar in {back}")
    gpu_dir = Path(".gpu")
    gpu_dir.mkdir(exist_ok=True)
    (gpu_dir / "ckpt.tar.gz").unlink(missing_ok=True)  # an older lease's unfinished runs: superseded by this one's
    results = Path(a.specs) / "results"
    with tarfile.open(back / "claims.tar") as tar:
        for m in tar.getmembers():
            f = tar.extractfile(m) if m.isfile() else None
            if f is not None:
                _take(m.name, f, results, back, gpu_dir)
    parts = sorted(back.glob("ckpt.tar.part*"))
    if parts:
        with open(gpu_dir / "ckpt.tar.gz", "wb") as out:
            for p in parts:
                out.write(p.read_bytes())
        print(".gpu/ckpt.tar.gz (the unfinished runs with their checkpoints: carry it to resume them)")


def _take(member: str, f: IO[bytes], results: Path, back: Path, gpu_dir: Path) -> None:
    name = Path(member).name
    if member.startswith("./results/") and name.endswith(".json"):
        gpu = {k: v for k, v in json.loads(f.read()).items() if "@" in k}
        if gpu:
            here = results / name
            doc = json.loads(here.read_text()) if here.is_file() else {}
            doc.update(gpu)
            write_json(here, doc)
            print(f"{here}: {', '.join(sorted(gpu))}")
    elif member.startswith("./results/") and name.endswith(".png"):
        with (results / name).open("wb") as out:
            shutil.copyfileobj(f, out)
        print(f"{results / name}")
    elif name == "claims-runs.tar.gz":
        with open(gpu_dir / name, "wb") as out:
            shutil.copyfileobj(f, out)
        print(".gpu/claims-runs.tar.gz (the finished runs: carry it so that they are read, not trained again)")
    elif name == "unfinished.tar.gz":
        with tarfile.open(fileobj=io.BytesIO(f.read())) as t:
            t.extractall(back / "unfinished", filter="data")
        print(f"{back / 'unfinished'} (the unfinished runs' records and metrics)")

if __name__ == "__main__":
    main()
