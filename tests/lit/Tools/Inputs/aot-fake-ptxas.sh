#!/bin/sh
# A stand-in for ptxas in the `normjit aot --device cuda` tests: answers
# --version, and for "-arch=CHIP -O3 IN.ptx -o OUT.cubin" checks that IN is
# PTX for CHIP and writes a small fake cubin. With FAKE_PTXAS_FAIL=CHIP it
# fails for that chip as ptxas does for a chip it does not know.
if [ "$1" = "--version" ]; then
  echo "ptxas: NVIDIA (R) Ptx optimizing assembler (fake)"
  echo "Cuda compilation tools, release 99.0, V99.0.1"
  exit 0
fi
chip=${1#-arch=}
if [ "$2" != "-O3" ] || [ "$4" != "-o" ] || [ $# -ne 5 ]; then
  echo "fake ptxas: unexpected arguments: $*" >&2
  exit 2
fi
if [ "$chip" = "$FAKE_PTXAS_FAIL" ]; then
  echo "ptxas fatal   : Value '$chip' is not defined for option 'gpu-name'" >&2
  exit 1
fi
if ! grep -q "^\.target $chip\$" "$3"; then
  echo "fake ptxas: $3 is not PTX for $chip" >&2
  exit 3
fi
printf 'fake cubin for %s\n' "$chip" > "$5"
