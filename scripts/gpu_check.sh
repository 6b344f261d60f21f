#!/usr/bin/env bash
#===- gpu_check.sh - the GPU checks, run once on a GPU machine -------------===#
# Usage: scripts/gpu_check.sh BUNDLE_DIR [OUT_DIR]
#
# Runs on a machine with an NVIDIA GPU and driver and the bundle built by
# scripts/bundle.sh (BUNDLE_DIR, e.g. build-bundle/normjit-bundle), nothing
# else of normjit installed; python3 with torch (and triton) for the
# benchmark. In order, each step's output also saved under OUT_DIR (default
# $OUT when set, else ./gpu-check):
#   1. devices.txt   normjit devices (the GPU's name, chip, fingerprint) and
#                    nvidia-smi
#   2. gpu-tests.txt every GPU test (NORMJIT_REQUIRE_GPU=1: a missing driver
#                    fails instead of skipping), in GPU_CHECK_SHARDS (8)
#                    processes at once (gtest sharding); gpu-tests-N.txt each
#   3. aot.txt       the AOT GPU example: the bundle's normjit aot writes
#                    kernels for examples/aot/gpu_kernels.toml, the C host
#                    examples/aot/gpu_host.c is built with them and the
#                    runtime's sources alone (cc/c++), runs and checks
#   4. tune.txt      normjit tune --device cuda:0 on one transformer shape
#   5. lit-cuda.txt  the RUN lines of tests/lit/Tools/normjit-device-cuda.mlir
#                    (scripts/lit_replay.py record; lit-cuda/ holds what each
#                    FileCheck would read: `scripts/lit_replay.py check` it
#                    where FileCheck is)
#   6. bench.md/.json/.csv  bench/gpu_bench.py: normjit default and tuned vs
#                    PyTorch, Triton and the copy ceiling, with the targets
# Steps go on after a failure; the exit code is the number of failed steps.
# GPU_CHECK_TIME_LIMIT (seconds, default 420) bounds the whole run: each step
# has a timeout, and the benchmark gets what is left less 20 s.
# GPU_CHECK_ARCHIVE=FILE.tgz: OUT_DIR packed into FILE after every step (for
# a machine that sends back only a few files).
#===----------------------------------------------------------------------===#
set -uo pipefail
cd "$(dirname "$0")/.."

bundle=${1:?usage: scripts/gpu_check.sh BUNDLE_DIR [OUT_DIR]}
out=${2:-${OUT:-gpu-check}}
mkdir -p "$out"
out=$(cd "$out" && pwd)
limit=${GPU_CHECK_TIME_LIMIT:-420}
shards=${GPU_CHECK_SHARDS:-8}
failed=0
left() { echo $((limit - SECONDS)); }
not_run() {
  echo "--- $1: not run (time limit of $limit s reached)"
  failed=$((failed + 1))
}
step() {
  local name=$1 budget=$2
  shift 2
  [ "$budget" -gt "$(left)" ] && budget=$(left)
  if [ "$budget" -lt 5 ]; then
    not_run "$name"
    return
  fi
  echo "=== $name ($((SECONDS))s, at most ${budget}s): $*"
  local rc=0
  # (bash -c: a step may be one of the functions below, exported.)
  timeout -k 5 "$budget" bash -c '"$@"' "$name" "$@" >"$out/$name.txt" 2>&1 ||
    rc=$?
  if [ $rc -eq 0 ]; then
    echo "--- $name: ok"
  else
    [ $rc -eq 124 ] && echo "(timed out after ${budget}s)" >>"$out/$name.txt"
    echo "--- $name: FAILED (exit $rc)"
    failed=$((failed + 1))
  fi
  tail -n 15 "$out/$name.txt"
  # Everything so far in one file, for machines that return few files.
  [ -n "${GPU_CHECK_ARCHIVE:-}" ] &&
    tar czf "$GPU_CHECK_ARCHIVE" -C "$out" --exclude=./cache . 2>/dev/null
  return 0
}

export NORMJIT_CACHE_DIR=${NORMJIT_CACHE_DIR:-$out/cache}
# A driver outside the loader's path (a container's /usr/local/nvidia).
if [ -z "${NORMJIT_CUDA_DRIVER:-}" ] &&
    ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 '; then
  for d in ${LD_LIBRARY_PATH:+${LD_LIBRARY_PATH//:/ }} /usr/local/nvidia/lib64 \
      /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64 \
      /usr/local/cuda/compat; do
    if [ -e "$d/libcuda.so.1" ]; then
      export NORMJIT_CUDA_DRIVER=$d/libcuda.so.1
      echo "gpu_check: NORMJIT_CUDA_DRIVER=$NORMJIT_CUDA_DRIVER"
      break
    fi
  done
fi
export bundle out shards
devices() {
  "$bundle/bin/normjit" devices || return 1
  command -v nvidia-smi >/dev/null && nvidia-smi
  return 0
}
export -f devices
step devices 30 devices
gpu_tests() {
  local i pids=() rc=0
  for ((i = 0; i < shards; i++)); do
    GTEST_TOTAL_SHARDS=$shards GTEST_SHARD_INDEX=$i NORMJIT_REQUIRE_GPU=1 \
      "$bundle/bin/normjit-gpu-tests" --gtest_brief=1 \
      >"$out/gpu-tests-$i.txt" 2>&1 &
    pids+=($!)
  done
  for ((i = 0; i < shards; i++)); do
    if ! wait "${pids[$i]}"; then
      rc=1
      echo "shard $i failed:"
      grep -E '^\[  FAILED|Failure|error' "$out/gpu-tests-$i.txt" | head -40
    fi
  done
  grep -h -E '^\[  (PASSED|SKIPPED|FAILED) +\]' "$out"/gpu-tests-*.txt |
    sort | uniq -c
  return $rc
}
export -f gpu_tests
step gpu-tests 150 gpu_tests
aot_example() {
  local dir=$out/aot
  rm -rf "$dir" && mkdir -p "$dir/obj" || return 1
  "$bundle/bin/normjit" aot --specs examples/aot/gpu_kernels.toml \
    --out "$dir/kernels" || return 1
  local f pids=()
  for f in runtime/src/*.cpp; do
    c++ -std=c++17 -O2 -Iruntime/include -c "$f" \
      -o "$dir/obj/$(basename "$f" .cpp).o" &
    pids+=($!)
  done
  for f in "${pids[@]}"; do wait "$f" || return 1; done
  cc -std=c99 -O2 -Wall -Iruntime/include -I"$dir/kernels" \
    examples/aot/gpu_host.c "$dir/kernels/aot_gpu_kernels.c" "$dir"/obj/*.o \
    -lstdc++ -lpthread -ldl -lm -o "$dir/gpu_host" || return 1
  "$dir/gpu_host"
}
export -f aot_example
step aot 90 aot_example
step tune 60 "$bundle/bin/normjit" tune --device cuda:0 --op layer_norm \
  --rows 32768 --cols 4096 --dtype bf16 --json
step lit-cuda 90 python3 scripts/lit_replay.py record \
  tests/lit/Tools/normjit-device-cuda.mlir --bin "$bundle/bin" \
  --out "$out/lit-cuda"
bench_s=$(($(left) - 20))
if [ "$bench_s" -lt 30 ]; then
  not_run bench
else
  step bench $((bench_s + 15)) python3 bench/gpu_bench.py --bundle "$bundle" \
    --tuned --time-limit "$bench_s" --markdown "$out/bench.md" \
    --json "$out/bench.json" --csv "$out/bench.csv"
fi
echo "gpu_check: $failed step(s) failed in ${SECONDS}s; outputs in $out"
exit "$failed"
