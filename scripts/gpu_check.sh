#!/usr/bin/env bash
#===- gpu_check.sh - the GPU checks, run once on a GPU machine -------------===#
# Usage: scripts/gpu_check.sh BUNDLE_DIR [OUT_DIR]
#
# Runs on a machine with an NVIDIA GPU and driver and the bundle built by
# scripts/bundle.sh (BUNDLE_DIR, e.g. build-bundle/normjit-bundle), nothing
# else of normjit installed; python3 with torch (and triton) for the
# benchmark. In order, each step's output also saved under OUT_DIR (default
# $OUT when set, else ./gpu-check):
#   1. devices.txt   normjit devices (the GPU's name, chip, fingerprint)
#   2. gpu-tests.txt every GPU test (NORMJIT_REQUIRE_GPU=1: a missing driver
#                    fails instead of skipping)
#   3. tune.txt      normjit tune --device cuda:0 on one transformer shape
#   4. aot.txt       the AOT GPU example: the bundle's normjit aot writes
#                    kernels for examples/aot/gpu_kernels.toml, the C host
#                    examples/aot/gpu_host.c is built with them and the
#                    runtime's sources alone (cc/c++), runs and checks
#   5. bench.md/.json/.csv  bench/gpu_bench.py: normjit default and tuned vs
#                    PyTorch, Triton and the copy ceiling, with the targets
# Steps go on after a failure; the exit code is the number of failed steps.
# GPU_CHECK_TIME_LIMIT (seconds, default 300) bounds the benchmark.
#===----------------------------------------------------------------------===#
set -uo pipefail
cd "$(dirname "$0")/.."

bundle=${1:?usage: scripts/gpu_check.sh BUNDLE_DIR [OUT_DIR]}
out=${2:-${OUT:-gpu-check}}
mkdir -p "$out"
failed=0
step() {
  local name=$1
  shift
  echo "=== $name: $*"
  if "$@" >"$out/$name.txt" 2>&1; then
    echo "--- $name: ok"
  else
    echo "--- $name: FAILED (exit $?)"
    failed=$((failed + 1))
  fi
  tail -n 15 "$out/$name.txt"
}

export NORMJIT_CACHE_DIR=${NORMJIT_CACHE_DIR:-$out/cache}
step devices "$bundle/bin/normjit" devices
step gpu-tests env NORMJIT_REQUIRE_GPU=1 "$bundle/bin/normjit-gpu-tests" \
  --gtest_brief=1
step tune "$bundle/bin/normjit" tune --device cuda:0 --op layer_norm \
  --rows 32768 --cols 4096 --dtype bf16 --json
aot_example() {
  local dir=$out/aot
  rm -rf "$dir" && mkdir -p "$dir/obj" || return 1
  "$bundle/bin/normjit" aot --specs examples/aot/gpu_kernels.toml \
    --out "$dir/kernels" || return 1
  local f
  for f in runtime/src/*.cpp; do
    c++ -std=c++17 -O2 -Iruntime/include -c "$f" \
      -o "$dir/obj/$(basename "$f" .cpp).o" || return 1
  done
  cc -std=c99 -O2 -Wall -Iruntime/include -I"$dir/kernels" \
    examples/aot/gpu_host.c "$dir/kernels/aot_gpu_kernels.c" "$dir"/obj/*.o \
    -lstdc++ -lpthread -ldl -lm -o "$dir/gpu_host" || return 1
  "$dir/gpu_host"
}
step aot aot_example
step bench python3 bench/gpu_bench.py --bundle "$bundle" --tuned \
  --time-limit "${GPU_CHECK_TIME_LIMIT:-300}" --markdown "$out/bench.md" \
  --json "$out/bench.json" --csv "$out/bench.csv"
echo "gpu_check: $failed step(s) failed; outputs in $out"
exit "$failed"
