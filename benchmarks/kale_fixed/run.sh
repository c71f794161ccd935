#!/bin/sh
# KALE with a fixed base on a tabular set: the flow alone (base_nll) against flow + energy (nll_ebm) in the same
# run, on the same test points, for two flow budgets, and a fixed N(0, I) base; 3 seeds each.
#   sh benchmarks/kale_fixed/run.sh OUTDIR
set -e
OUT=${1:-/tmp/kale_fixed}
mkdir -p "$OUT"
python benchmarks/kale_fixed/make_data.py "$OUT/breast_cancer.csv"
COMMON="--no-progress inverse_temperature=1 mcmc_steps=200 threads=1 batch_size=64 plots=false loggers="
for seed in 0 1 2; do
  ebmlab train kale --data "$OUT/breast_cancer.csv" --steps 2300 --seed $seed --out "$OUT/flow300-s$seed" $COMMON \
    base=flow flow_steps=300 flow_layers=4 flow_hidden=64
  ebmlab train kale --data "$OUT/breast_cancer.csv" --steps 3000 --seed $seed --out "$OUT/flow1000-s$seed" $COMMON \
    base=flow flow_steps=1000 flow_layers=4 flow_hidden=64
  ebmlab train kale --data "$OUT/breast_cancer.csv" --steps 2000 --seed $seed --out "$OUT/gauss-s$seed" $COMMON \
    base=gaussian
done
# a smaller flow, fitted briefly (less room to overfit 512 training rows in 30 dimensions)
for seed in 0 1 2; do
  ebmlab train kale --data "$OUT/breast_cancer.csv" --steps 2200 --seed $seed --out "$OUT/flowsmall-s$seed" $COMMON \
    base=flow flow_steps=200 flow_layers=2 flow_hidden=32
done
# ablation: the energy's gradient penalty off (it bounds how steep the correction of the base can be)
for seed in 0 1 2; do
  ebmlab train kale --data "$OUT/breast_cancer.csv" --steps 2000 --seed $seed --out "$OUT/gauss_nogp-s$seed" $COMMON \
    base=gaussian penalty=0
  ebmlab train kale --data "$OUT/breast_cancer.csv" --steps 2200 --seed $seed --out "$OUT/flowsmall_nogp-s$seed" $COMMON \
    base=flow flow_steps=200 flow_layers=2 flow_hidden=32 penalty=0
done
