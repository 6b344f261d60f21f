#!/usr/bin/env bash
# Prepared, NOT run (no GPU machine was lent again that session): an A/B
# of a register cap on the bf16 kernels. It needs an experiment build: in
# lowerNormOp (NormToGPU.cpp), after setKnownBlockSizeAttr, when
# NORMJIT_EXP_MINTHREADS=T is set and T / blockSize > 1, set the gpu.func
# attribute "nvvm.minctasm" to T / blockSize (PTX .minnctapersm: ptxas then
# caps registers so that many blocks fit an SM). Then scripts/bundle.sh and
# run this from the repository root on the GPU machine, the bundle carried.
export PYTHONUNBUFFERED=1
B=build-bundle/normjit-bundle
N=$B/bin/normjit
export NORMJIT_CACHE_DIR=/tmp/nj-cache
g() { sed -n 's/.*"gbps":\([0-9.]*\).*/\1/p'; }
for spec in "layer_norm 2048 4096 bf16" "layer_norm 8192 1024 bf16" "layer_norm 4096 768 bf16" "layer_norm 32768 4096 bf16" "rms_norm 2048 4096 bf16" "rms_norm 8192 1024 bf16" "layer_norm 2048 4096 f32"; do
  set -- $spec
  line="$1 $2x$3 $4"
  for r in 1 2; do for t in 0 1280 1536; do
    v=$(NORMJIT_EXP_MINTHREADS=$t timeout 20 $N bench --device cuda:0 --op $1 --rows $2 --cols $3 --dtype $4 --json --min-time 0.1 | g)
    line="$line $t:$v"
  done; done
  echo "$line"
done | tee $OUT/ab.txt
for r in 1 2; do for t in 0 1280 1536; do
  NORMJIT_EXP_MINTHREADS=$t timeout 60 python3 bench/gpu_bench.py --bundle $B --no-triton --shapes 8192x1024,2048x4096 --dtypes bf16 --ops layer_norm,rms_norm --time-limit 45 --csv $OUT/gb-$t-$r.csv > $OUT/gb-$t-$r.txt 2>&1
  grep "^| [0-9]" $OUT/gb-$t-$r.txt | sed "s/^/$t r$r /"
done; done | tee $OUT/gb.txt
