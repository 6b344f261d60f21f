#!/usr/bin/env bash
# Prepared, not run (no GPU machine was lent for it): an A/B of a register
# cap on the default configs (blocks of 256 threads for these specs), with
# the #norm.config knob min_blocks_per_sm (PTX .minnctapersm) that came of
# it: 0 (none) against 5 (48 registers) and 6 (40), in turns, two rounds.
# Run from the repository root on the GPU machine, with a bundle built
# (scripts/bundle.sh) at commit ca40932 or later, which knows the knob. A
# failed bench prints ERR and its message, not an empty cell.
export PYTHONUNBUFFERED=1
B=build-bundle/normjit-bundle
N=$B/bin/normjit
export NORMJIT_CACHE_DIR=/tmp/nj-cache
g() { sed -n 's/.*"gbps":\([0-9.]*\).*/\1/p'; }
for spec in "layer_norm 2048 4096 bf16" "layer_norm 8192 1024 bf16" "layer_norm 4096 768 bf16" "layer_norm 32768 4096 bf16" "rms_norm 2048 4096 bf16" "rms_norm 8192 1024 bf16" "layer_norm 2048 4096 f32"; do
  set -- $spec
  line="$1 $2x$3 $4"
  for r in 1 2; do for t in 0 5 6; do
    v=$(timeout 20 $N bench --device cuda:0 --op $1 --rows $2 --cols $3 --dtype $4 --json --min-time 0.1 --config "#norm.config<gpu, min_blocks_per_sm = $t>" 2>/tmp/ab-err.txt | g)
    [ -n "$v" ] || v="ERR($(head -c 200 /tmp/ab-err.txt))"
    line="$line $t:$v"
  done; done
  echo "$line"
done | tee $OUT/ab.txt
