"""What `on_device.sh claims` brought back, merged into this checkout: the GPU results (``<scale>@cuda`` keys only —
the CPU's results of the same claims stay as they are here), their curve pictures, and the runs' archive kept for the
next lease (``.gpu/claims-runs.tar.gz``, carried to resume unfinished runs).

    python benchmarks/gpu/claims_back.py DIR_WITH_claims.tar.partN [--specs benchmarks/claims]

Then `ebmlab claims render`.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import tarfile
from pathlib import Path

from ebmlab.atomic import write_json


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("back", help="the folder holding claims.tar.part0, part1, ...")
    ap.add_argument("--specs", default="benchmarks/claims")
    a = ap.parse_args()
    parts = sorted(Path(a.back).glob("claims.tar.part*"))
    if not parts:
        raise SystemExit(f"error: no claims.tar.part* in {a.back}")
    tar = tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts)))
    results = Path(a.specs) / "results"
    for m in tar.getmembers():
        name = Path(m.name).name
        f = tar.extractfile(m) if m.isfile() else None
        if f is None:
            continue
        if m.name.startswith("./results/") and name.endswith(".json"):
            gpu = {k: v for k, v in json.loads(f.read()).items() if "@" in k}
            if not gpu:
                continue
            here = results / name
            doc = json.loads(here.read_text()) if here.is_file() else {}
            doc.update(gpu)
            write_json(here, doc)
            print(f"{here}: {', '.join(sorted(gpu))}")
        elif m.name.startswith("./results/") and name.endswith(".png"):
            with (results / name).open("wb") as out:
                shutil.copyfileobj(f, out)
            print(f"{results / name}")
        elif name == "claims-runs.tar.gz":
            Path(".gpu").mkdir(exist_ok=True)
            with open(".gpu/claims-runs.tar.gz", "wb") as out:
                shutil.copyfileobj(f, out)
            print(".gpu/claims-runs.tar.gz (carry it to resume the runs)")


if __name__ == "__main__":
    main()
