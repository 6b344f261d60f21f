#!/usr/bin/env bash
#===- gpu_config_grid.sh - time a grid of GPU configs for one spec ---------===#
# Usage: bench/gpu_config_grid.sh NORMJIT OP ROWS COLS DTYPE [bench flags...]
#
# Runs `NORMJIT bench --device cuda:0 --json` once per config of a grid
# (threads_per_row x rows_per_block x persistent, elements_per_thread =
# COLS / threads_per_row so that the row is held exactly, 128-bit vectors
# where they fit) and prints one line per config: GB/s, then the config,
# fastest first at the end. What the tuner's space and the default heuristic
# are checked against on a real GPU; extra flags (--residual, --cold) go to
# every bench call.
#===----------------------------------------------------------------------===#
set -uo pipefail
normjit=${1:?usage: gpu_config_grid.sh NORMJIT OP ROWS COLS DTYPE [flags]}
op=$2 rows=$3 cols=$4 dtype=$5
shift 5
case $dtype in f32) lanes=4 ;; *) lanes=8 ;; esac
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for tpr in 32 64 128 256 512 1024; do
  ((cols % tpr == 0)) || continue
  ept=$((cols / tpr))
  vw=$lanes
  while ((ept % vw != 0)); do vw=$((vw / 2)); done
  for rpb in 1 2 4 8; do
    ((tpr * rpb <= 1024)) || continue
    for persistent in false true; do
      config="#norm.config<gpu, vector_width = $vw, threads_per_row = $tpr, rows_per_block = $rpb, elements_per_thread = $ept, row_storage = registers, persistent = $persistent>"
      line=$("$normjit" bench --device cuda:0 --op "$op" --rows "$rows" \
        --cols "$cols" --dtype "$dtype" --json --config "$config" "$@" 2>&1)
      gbps=$(printf '%s' "$line" | sed -n 's/.*"gbps":\([0-9.]*\).*/\1/p')
      if [ -n "$gbps" ]; then
        printf '%8s  %s\n' "$gbps" "$config" | tee -a "$results"
      else
        printf '     ERR  %s: %s\n' "$config" "$(printf '%s' "$line" | tail -1)"
      fi
    done
  done
done
default=$("$normjit" bench --device cuda:0 --op "$op" --rows "$rows" \
  --cols "$cols" --dtype "$dtype" --json "$@" 2>&1)
echo "default: $(printf '%s' "$default" |
  sed -n 's/.*"config":"\([^"]*\)".*"gbps":\([0-9.]*\).*/\2  \1/p')"
echo "fastest:"
sort -rn "$results" | head -5
