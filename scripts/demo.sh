#!/usr/bin/env bash
# The README's main command. Until the CPU backend lands it shows the
# compiler front end at work on examples/residual_block.mlir: parse and
# verify, fuse the residual adds into the norm kernels, split them again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null
opt=build/bin/normjit-opt
example=examples/residual_block.mlir
echo "== $example (two pre-norm blocks: add, then norm)"
grep -v '^//' "$example" | sed '/^$/d'
echo
echo "== normjit-opt --norm-fuse-residual-add (one kernel per block)"
"$opt" "$example" --norm-fuse-residual-add
echo
echo "== ... then --norm-split-residual-add (the form the tuner times against)"
"$opt" "$example" --norm-fuse-residual-add --norm-split-residual-add
echo
echo "== a malformed config is a located diagnostic, not a crash"
printf '%s\n' '#c = #norm.config<gpu, threads_per_row = 96>' |
  "$opt" - 2>&1 || true
