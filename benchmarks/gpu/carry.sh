#!/usr/bin/env bash
# Builds .gpu/ (ignored by git) with what benchmarks/gpu/on_device.sh needs on a bare GPU machine that cannot
# download anything: the wheels its Python lacks, EBM-BB's official code, Fashion-MNIST and the fashion classifier.
#
#   bash benchmarks/gpu/carry.sh [EBM-BB checkout or bare git dir]
#   CLASSIFIER=0 bash benchmarks/gpu/carry.sh ...   # without the classifier (the speed and official parts need none)
#
# Run here, from the repository root, with this project's virtual environment active (it reads the classifier
# from its cache, training it first if need be: `ebmlab classifier train --data fashion`, ~5 min on one core).
# The device tool then carries .gpu/ with the working tree (64 MiB in all; this folder is about 33 MiB).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
ebmbb=${1:-/work/.mirror/gengcong940126+EBM-BB/repo}  # where a fetch of github:gengcong940126/EBM-BB puts it
[ "${EBMBB:-1}" = 0 ] || [ -e "$ebmbb" ] || { echo "error: no EBM-BB at $ebmbb: pass a checkout (or its bare git directory)" >&2; exit 2; }
mkdir -p .git/info
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
# The claims runs of earlier leases (claims_back.py keeps them here: claims-runs.tar.gz, ckpt.tar.gz) stay.
mkdir -p .gpu && find .gpu -mindepth 1 -maxdepth 1 ! -name claims-runs.tar.gz ! -name ckpt.tar.gz -exec rm -rf {} +
mkdir -p .gpu/whl .gpu/ebmbb/EBM-BB .gpu/data/fashion-mnist .gpu/classifiers

# Wheels for the device's Python 3.12 (its image holds torch, numpy, scipy, scikit-learn, scikit-image, matplotlib,
# tensorboard, tqdm, protobuf, torchvision; not POT, zuko, or EBM-BB's stochman, torchplot, tensorboardX).
# POT 0.9.6.post1: its wheel is 1.5 MB against 33 MB for 0.9.7.post1, and both satisfy ebmlab's POT>=0.9.4.
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .gpu/whl POT==0.9.6.post1 zuko==1.6.0 tensorboardX==2.6.5
python3 -m pip wheel -q --no-deps -w .gpu/whl stochman==0.3.0 torchplot==0.2.0  # source-only: pure-Python wheels

# This commit as a git bundle: the claims part clones it there, so that results record the commit they ran on.
git bundle create -q .gpu/head.bundle HEAD

# EBM-BB's official code (commit 3b9ca22 is what benchmarks/official/ was checked with); EBMBB=0: without it (the
# claims and long parts need none).
if [ "${EBMBB:-1}" = 0 ]; then
  :
elif [ -d "$ebmbb/.git" ] || [ -f "$ebmbb/HEAD" ]; then
  git --git-dir="$( [ -d "$ebmbb/.git" ] && echo "$ebmbb/.git" || echo "$ebmbb")" archive HEAD | tar -x -C .gpu/ebmbb/EBM-BB
else
  cp -r "$ebmbb"/. .gpu/ebmbb/EBM-BB/
fi
[ "${EBMBB:-1}" = 0 ] || test -f .gpu/ebmbb/EBM-BB/train/train_image.py

# Fashion-MNIST as the Debian package installs it (the loader checks the decompressed md5s there too).
cp /usr/share/datasets/fashion-mnist/*-ubyte.gz .gpu/data/fashion-mnist/

# The fashion classifier of this machine type (its record names the weights' sha256; loading checks it).
[ "${CLASSIFIER:-1}" = 0 ] && { du -sh .gpu; exit 0; }
python3 - <<'EOF'
import json, shutil
from pathlib import Path
from ebmlab.data import get_dataset
from ebmlab.metrics.classifier import classifier_dir, get_classifier
get_classifier(get_dataset("fashion"))  # trains it first if missing
d = classifier_dir()
rec = json.loads((d / "fashion.json").read_text())
shutil.copy(d / "fashion.json", ".gpu/classifiers/")
for f in d.glob("fashion.*.pt"):
    shutil.copy(f, ".gpu/classifiers/")
print("classifier", rec.get("sha256", "?")[:12])
EOF
du -sh .gpu
git ls-files -z | du -c --files0-from=- | tail -1 | awk '{printf "tracked files: %.1f MiB\n", $1/1024}'
