#!/bin/sh
# EBGAN-LN against the ladder network alone (margin=0: the same ladder, batches and labelled subsets, no generator)
# on permutation-invariant Fashion-MNIST, 100 and 1000 labels, 3 label subsets / seeds, two runs at a time with one
# thread each.
#   sh benchmarks/ebgan_ln/run.sh OUTDIR equal_steps      EBGAN-LN and the ladder, both 2500 steps
#   LABELS=1000 sh benchmarks/ebgan_ln/run.sh OUTDIR equal_time   the ladder alone for as many steps as
#                                      EBGAN-LN's wall time buys (after equal_steps; LABELS: default "100 1000")
# then: python benchmarks/ebgan_ln/collect.py OUTDIR
set -e
OUT=${1:-/tmp/ebgan_ln}
PHASE=${2:-equal_steps}
STEPS=2500
mkdir -p "$OUT"
COMMON="--no-progress --data fashion batch_size=100 threads=1 eval_every=0 log_every=100 plots=false loggers="
if [ "$PHASE" = equal_time ]; then
  # as many ladder steps as the wall time of STEPS EBGAN-LN steps buys: STEPS x (mean training-loop seconds of the
  # six EBGAN-LN runs) / (mean of the six ladder runs) of the equal-steps phase, measured side by side under one load
  EQ_STEPS=$(python -c "
import json, glob, sys
def t(pat): v = [json.load(open(f))['sessions'][-1]['train_seconds'] for f in glob.glob(pat)]; return sum(v) / len(v)
print(round($STEPS * t('$OUT/ebgan_ln-l*/run.json') / t('$OUT/ln-l*/run.json')))")
  echo "equal wall time: the ladder for $EQ_STEPS steps"
fi
jobs() {
  for labels in ${LABELS:-100 1000}; do
    for seed in 0 1 2; do
      if [ "$PHASE" = equal_steps ]; then
        echo "ebmlab train ebgan_ln --out $OUT/ebgan_ln-l$labels-s$seed $COMMON steps=$STEPS labels=$labels label_seed=$seed seed=$seed margin_decay_steps=$STEPS"
        echo "ebmlab train ebgan_ln --out $OUT/ln-l$labels-s$seed $COMMON steps=$STEPS labels=$labels label_seed=$seed seed=$seed margin=0 margin_schedule=constant"
      else
        echo "ebmlab train ebgan_ln --out $OUT/ln_time-l$labels-s$seed $COMMON steps=$EQ_STEPS labels=$labels label_seed=$seed seed=$seed margin=0 margin_schedule=constant"
      fi
    done
  done
}
jobs | xargs -P 2 -I CMD sh -c "CMD > /dev/null 2>&1 || echo 'failed: CMD'"
