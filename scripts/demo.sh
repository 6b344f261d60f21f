#!/usr/bin/env bash
# The README's main command: set up, build, then JIT-compile, run and check a
# LayerNorm on a transformer-sized input and report the config it chose and
# the GB/s it reached beside this machine's memcpy (build/bin/normjit-demo).
# Then show the compiler's front end on examples/residual_block.mlir.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null
echo "== normjit-demo: JIT, run, check, measure"
build/bin/normjit-demo
echo
echo "== the IR behind it: examples/residual_block.mlir, residual adds fused"
echo "   into the norm kernels (normjit-opt --norm-fuse-residual-add)"
build/bin/normjit-opt examples/residual_block.mlir --norm-fuse-residual-add |
  grep -E 'norm\.'
