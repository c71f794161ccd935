#!/usr/bin/env bash
# The GPU measurements of benchmarks/gpu/results.md, run on a lent GPU machine from the repository root, with
# .gpu/ (benchmarks/gpu/carry.sh) carried beside the working tree. Results go to $OUT (at most 8 files come back).
#
#   bash benchmarks/gpu/on_device.sh tests                  # the CUDA tests of tests/test_graphs.py, loop_cost.py
#   bash benchmarks/gpu/on_device.sh speed METHODS STEPS    # benchmarks/gpu/speed.py for those methods
#   bash benchmarks/gpu/on_device.sh official STEPS         # speed.py's BiB rows and EBM-BB's train_image.py
#   bash benchmarks/gpu/on_device.sh long METHODS SECONDS   # one stacked-Fashion run per method, side by side
#   bash benchmarks/gpu/on_device.sh claims IDS SCALE SECONDS
#                           # `ebmlab claims run ID --scale SCALE --device cuda` for each claim (comma-separated),
#                           # stopped by SECONDS; the results, curves and runs' records come back (claims.tar), the
#                           # unfinished runs' checkpoints too while they fit (ckpt.tar.part*), and a later call
#                           # carrying them in .gpu/ (claims_back.py puts them there) resumes those runs
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

part=${1:?part: tests, speed, official, long or claims}
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
claims)
  ids=${2:?claim ids} scale=${3:?scale} seconds=${4:?seconds}
  # The claims run from a clone of the commit carried as .gpu/head.bundle (carry.sh), so that each result records
  # the commit it ran on, as on the CPU. Not from the copied working tree: its .git, when one comes along, can be
  # the session's first checkout, older than the tree (a lease recorded HEAD 2637fcb, "dirty", for code at 2cdc9a9).
  src=$root
  if [ -f .gpu/head.bundle ] && command -v git >/dev/null; then
    rm -rf /tmp/ebmlab-src
    git -c advice.detachedHead=false clone -q .gpu/head.bundle /tmp/ebmlab-src && src=/tmp/ebmlab-src
    export PYTHONPATH=$src/src:$site
  fi
  echo "claims: code from $src at $(git -C "$src" rev-parse HEAD 2>/dev/null || echo 'no commit')" \
    | tee -a "$OUT/claims.log"
  mkdir -p "$work/claims-runs"
  [ -f .gpu/claims-runs.tar.gz ] && tar -xzf .gpu/claims-runs.tar.gz -C "$work"  # an earlier lease's finished runs
  [ -f .gpu/ckpt.tar.gz ] && tar -xzf .gpu/ckpt.tar.gz -C "$work"  # and its unfinished ones, to resume
  deadline=$((SECONDS + seconds))
  for id in ${ids//,/ }; do
    left=$((deadline - SECONDS))
    [ "$left" -gt 30 ] || { echo "claims: no time left for $id" | tee -a "$OUT/claims.log"; break; }
    # SIGINT at the deadline: the runs checkpoint and stop as on Ctrl-C, resumable by the next lease
    (cd "$src" && timeout --signal=INT --kill-after=20 "$left" python3 -m ebmlab claims run "$id" --scale "$scale" \
      --device "$DEVICE" --jobs "${JOBS:-6}" --out "$work/claims-runs") 2>&1 | tee -a "$OUT/claims.log"
  done
  mkdir -p "$work/back/results"
  cp "$src"/benchmarks/claims/results/*-"$scale"-cuda-curves.png "$work/back/results/" 2>/dev/null
  for id in ${ids//,/ }; do cp "$src/benchmarks/claims/results/$id.json" "$work/back/results/" 2>/dev/null; done
  # What comes back is at most 8 files of 16 MiB, 64 MiB together (the device tool). A lease whose six unfinished runs
  # had 29 MB checkpoints each once brought back 4 of 7 parts of one archive, and nothing usable, so two archives:
  # claims.tar, always (the results, their curves, claims-runs.tar.gz: the finished runs' records, metrics and
  # summaries; unfinished.tar.gz: the unfinished runs' records and metrics, to read — a few MiB, no event files or
  # checkpoints); and ckpt.tar.part* of 15 MiB, the unfinished runs whole (no summary.json: what a later lease
  # resumes), only while they fit in CKPT_MIB (default 30: two parts) — else those runs start again at the next lease.
  (cd "$work" && find claims-runs -name config.json | while read -r f; do
     [ -f "$(dirname "$f")/summary.json" ] || dirname "$f"; done >"$work/unfinished.txt")
  tar -czf "$work/back/claims-runs.tar.gz" -C "$work" --exclude='events.out*' --exclude='*.pt' \
    --exclude-from="$work/unfinished.txt" claims-runs
  tar -czf "$work/back/unfinished.tar.gz" -C "$work" --exclude='events.out*' --exclude='*.pt' -T "$work/unfinished.txt"
  tar -cf "$OUT/claims.tar" -C "$work/back" .
  if [ -s "$work/unfinished.txt" ]; then
    tar -czf "$work/ckpt.tar.gz" -C "$work" --exclude='events.out*' -T "$work/unfinished.txt"
    mib=$(( ($(stat -c %s "$work/ckpt.tar.gz") + 1048575) / 1048576 ))
    if [ "$mib" -le "${CKPT_MIB:-30}" ]; then
      split -b 15m -d -a 1 "$work/ckpt.tar.gz" "$OUT/ckpt.tar.part"
    else
      echo "claims: the unfinished runs ($(wc -l <"$work/unfinished.txt"), $mib MiB with their checkpoints) exceed" \
        "CKPT_MIB (${CKPT_MIB:-30}): not brought back; they start again at the next lease" | tee -a "$OUT/claims.log"
    fi
  fi
  ls -la "$OUT"
  ;;
*)
  echo "error: unknown part '$part' (tests, speed, official, long, claims)" >&2; exit 2
  ;;
esac
