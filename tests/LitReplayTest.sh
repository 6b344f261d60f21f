#!/usr/bin/env bash
#===- LitReplayTest.sh - scripts/lit_replay.py, checked on the fake driver -===#
# Usage: LitReplayTest.sh PYTHON BIN_DIR FAKE_DRIVER OUT_DIR FILECHECK
# (run from the source root). What the GPU machine runs for the CUDA lit
# test, here on the fake-driver lit test: record its RUN lines with the
# built normjit, replay every FileCheck, and see a wrong record fail.
#===----------------------------------------------------------------------===#
set -euo pipefail
py=$1 bin=$2 fake=$3 out=$4 filecheck=$5
test=tests/lit/Tools/normjit-device-fake.mlir
rm -rf "$out"
"$py" scripts/lit_replay.py record "$test" --bin "$bin" --out "$out" \
  --set fake_cuda_driver="$fake"
"$py" scripts/lit_replay.py check "$test" --out "$out" --filecheck "$filecheck"
echo "not what the test checks" >"$out/fc-1.in"
if "$py" scripts/lit_replay.py check "$test" --out "$out" \
    --filecheck "$filecheck" >"$out/wrong.txt"; then
  echo "error: a wrong record passed the check" >&2
  exit 1
fi
grep -q "FAIL RUN" "$out/wrong.txt"
echo "lit_replay: ok (and a wrong record fails)"
