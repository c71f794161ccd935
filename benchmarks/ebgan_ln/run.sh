#!/bin/sh
# EBGAN-LN against the ladder network alone (margin=0: the same ladder, batches and labelled subsets, no generator)
# on permutation-invariant Fashion-MNIST, 100 and 1000 labels, 3 label subsets / seeds, two runs at a time with one
# thread each.
#   sh benchmarks/ebgan_ln/run.sh OUTDIR equal_steps      EBGAN-LN and the ladder, both 2500 steps
#   sh benchmarks/ebgan_ln/run.sh OUTDIR equal_time       the ladder alone for the wall time of an EBGAN-LN run
# then: python benchmarks/ebgan_ln/collect.py OUTDIR
set -e
OUT=${1:-/tmp/ebgan_ln}
PHASE=${2:-equal_steps}
STEPS=2500
mkdir -p "$OUT"
COMMON="--no-progress --data fashion batch_size=100 threads=1 eval_every=0 log_every=100 plots=false tensorboard=false"
jobs() {
  for labels in 100 1000; do
    for seed in 0 1 2; do
      if [ "$PHASE" = equal_steps ]; then
        echo "ebmlab train ebgan_ln --out $OUT/ebgan_ln-l$labels-s$seed $COMMON steps=$STEPS labels=$labels label_seed=$seed seed=$seed margin_decay_steps=$STEPS"
        echo "ebmlab train ebgan_ln --out $OUT/ln-l$labels-s$seed $COMMON steps=$STEPS labels=$labels label_seed=$seed seed=$seed margin=0 margin_schedule=constant"
      else
        # the wall time of the matching EBGAN-LN run's training loop
        T=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['sessions'][-1]['train_seconds'])" "$OUT/ebgan_ln-l$labels-s$seed/run.json")
        echo "ebmlab train ebgan_ln --out $OUT/ln_time-l$labels-s$seed $COMMON steps=100000 max_seconds=$T labels=$labels label_seed=$seed seed=$seed margin=0 margin_schedule=constant"
      fi
    done
  done
}
jobs | xargs -P 2 -I CMD sh -c "CMD > /dev/null 2>&1 || echo 'failed: CMD'"
