#!/usr/bin/env bash
# The GPU measurements of benchmarks/gpu/results.md, run on a lent GPU machine from the repository root, with
# .gpu/ (benchmarks/gpu/carry.sh) carried beside the working tree. Results go to $OUT (at most 8 files come back).
#
#   bash benchmarks/gpu/on_device.sh tests                  # the CUDA tests of tests/test_graphs.py, loop_cost.py
#   bash benchmarks/gpu/on_device.sh speed METHODS STEPS    # benchmarks/gpu/speed.py for those methods
#   bash benchmarks/gpu/on_device.sh official STEPS         # speed.py's BiB rows and EBM-BB's train_image.py
#   bash benchmarks/gpu/on_device.sh long METHODS SECONDS   # one stacked-Fashion run per method, side by side
#
# Several parts may follow each other in one call (`... tests; ... speed ...`): each writes its own files.
# Plan for a session's 30 minutes of device time (10 per call; a call that finds no warm machine spends a minute
# or two starting one):
#   call 1: tests; speed gan,vgan,vae,ebgan,kale,ebgan+precision=bf16+channels_last=true 2000,kale=1000
#                                                                       (about 8 min)
#   call 2: official 300                                                (about 6 min)
#   call 3: long gan,vgan,vgan_vcd,vae,ebgan,ebgan_pt,kale,bib 360      (about 9 min)
# (call again within the 30 s a machine stays warm, or the next call starts a bare one: a minute or two more).
# DEVICE=cpu runs the same commands on a CPU (a check of this script; the numbers mean nothing there);
# SPEED_ARGS adds arguments to speed.py (e.g. "--width 8 --bare-steps 3"), LONG_ARGS options to the long runs.
set -uo pipefail
OUT=${OUT:?set OUT to the folder whose files come back}
DEVICE=${DEVICE:-cuda}
root=$PWD
[ -d .gpu/whl ] || { echo "error: .gpu/ is missing: run benchmarks/gpu/carry.sh here and carry .gpu" >&2; exit 2; }

# The wheels of what this Python lacks (a module already importable is left as it is).
site=/tmp/ebmlab-site
mkdir -p "$site"
export PYTHONPATH=$root/src:$site PYTHONUNBUFFERED=1 MPLBACKEND=Agg
for pair in ot:pot zuko:zuko stochman:stochman torchplot:torchplot tensorboardX:tensorboardx; do
  mod=${pair%%:*} whl=${pair##*:}
  python3 -c "import $mod" 2>/dev/null || python3 -m pip install -q --no-index --no-deps --no-compile \
    --no-cache-dir --upgrade --target "$site" .gpu/whl/"$whl"-*.whl || exit 3
done
export EBMLAB_DATA=$root/.gpu/data EBMLAB_CLASSIFIERS=$root/.gpu/classifiers
work=/tmp/ebmlab-gpu-work
mkdir -p "$work"
{ date -u; nvidia-smi 2>/dev/null || echo "no nvidia-smi"; python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"; nproc; } >"$OUT/machine.txt" 2>&1

part=${1:?part: tests, speed, official or long}
case $part in
tests)
  python3 -m pytest tests/test_graphs.py -n 0 -q -p no:cacheprovider -rs -k cuda 2>&1 | tee "$OUT/tests.log"
  # the trainer's own cost per step (an empty step; µs): the distance between its rate and a graph ceiling
  python3 benchmarks/gpu/loop_cost.py --device "$DEVICE" >"$OUT/loop_cost.json" 2>"$OUT/loop_cost.log"
  ;;
speed)
  methods=${2:?methods} steps=${3:?steps}
  tag=speed_$(printf %s "$methods" | tr -c 'A-Za-z0-9._-' '_')  # names that come back: letters, digits, . _ -
  python3 benchmarks/gpu/speed.py "$OUT/$tag" --device "$DEVICE" --methods "$methods" \
    --steps "$steps" --work "$work/speed" ${SPEED_ARGS:-} 2>&1 | tee "$OUT/$tag.log"
  ;;
official)
  steps=${2:?steps}
  python3 benchmarks/gpu/speed.py "$OUT/speed_bib" --device "$DEVICE" \
    --methods bib,bib@ebmbb32,bib@ebmbb32+share_jacobian=true+data_gp_weight=0 --steps "$steps" \
    --work "$work/official" --official .gpu/ebmbb/EBM-BB --deps "$site" ${SPEED_ARGS:-} 2>&1 | tee "$OUT/speed_bib.log"
  ;;
long)
  methods=${2:?methods} seconds=${3:?seconds}
  # Each run trains until 20,000 steps or SECONDS of its loop, evaluating every 2000 steps (classifier features,
  # stacked modes); all run at once on the one GPU (two CPU threads each, of the machine's 16), so each run's
  # rate is not a speed measurement.
  mkdir -p "$work/long"
  pids=()
  for m in ${methods//,/ }; do
    python3 -m ebmlab train "$m" --data stacked_fashion --out "$work/long/$m" --seed 0 --no-progress \
      --device "$DEVICE" steps=20000 max_seconds="$seconds" eval_every=2000 eval_samples=1000 ckpt_every=2000 \
      loggers= plots=true threads=2 ${LONG_ARGS:-} >"$work/long/$m.log" 2>&1 &
    pids+=($!)
  done
  # Archived by LONG_DEADLINE seconds (default SECONDS + 150: start-up and the last evaluation) even if runs are
  # still going, so that a call cut off by its limit still brings back every evaluation written so far (a call
  # whose runs outlasted the call's limit once brought back nothing).
  deadline=$((SECONDS + ${LONG_DEADLINE:-$((seconds + 150))}))
  running() { local p; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
  while [ "$SECONDS" -lt "$deadline" ] && running; do sleep 2; done
  fail=0 left=0
  for p in "${pids[@]}"; do
    if kill -0 "$p" 2>/dev/null; then left=$((left + 1)); else wait "$p" || fail=$((fail + 1)); fi
  done
  # One archive: each run's record and logs (no checkpoints; they stay on the machine).
  tar -czf "$OUT/long.tar.gz" -C "$work" --exclude='*.pt' long
  echo "long runs: ${#pids[@]} started, $fail failed, $left still running when archived" | tee "$OUT/long.txt"
  ;;
*)
  echo "error: unknown part '$part' (tests, speed, official, long)" >&2; exit 2
  ;;
esac
