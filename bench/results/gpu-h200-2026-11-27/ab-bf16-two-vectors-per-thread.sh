#!/usr/bin/env bash
# new default (this build) vs the old bf16 default, in turns, 2 rounds
n=$1
old_cfg() { # cols
  local c=$1 v=$(( $1 / 8 )) t=1
  while (( t * 4 < v )); do t=$((t * 2)); done
  local ch=$(( (v + t - 1) / t )) r=$(( 256 / t )); (( r < 1 )) && r=1
  echo "#norm.config<gpu, vector_width = 8, threads_per_row = $t, rows_per_block = $r, elements_per_thread = $((ch * 8)), row_storage = registers, persistent = false>"
}
g() { sed -n 's/.*"config":"\([^"]*\)".*"gbps":\([0-9.]*\).*/\2 \1/p'; }
for shape in 4096x768 8192x1024 2048x4096 32768x4096 16384x8192 16x4096 1x4096; do
  rows=${shape%x*} cols=${shape#*x}
  for op in layer_norm rms_norm rms_res; do
    o=$op; f=""; [ $op = rms_res ] && { o=rms_norm; f=--residual; }
    a=""; b=""
    for k in 1 2; do
      a="$a $($n bench --device cuda:0 --op $o --rows $rows --cols $cols --dtype bf16 $f --json --min-time 0.1 | g | cut -d' ' -f1)"
      b="$b $($n bench --device cuda:0 --op $o --rows $rows --cols $cols --dtype bf16 $f --json --min-time 0.1 --config "$(old_cfg $cols)" | g | cut -d' ' -f1)"
    done
    echo "$shape $op new:$a old:$b"
  done
done
