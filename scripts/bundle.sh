#!/usr/bin/env bash
#===- bundle.sh - the relocatable normjit bundle ---------------------------===#
# Usage: scripts/bundle.sh [OUT_DIR]   (default build-bundle/normjit-bundle)
#
# Sets up, configures and builds preset `bundle` (build-bundle/: static MLIR
# and LLVM, lld) and assembles OUT_DIR, one directory that runs on an x86-64
# Linux machine with glibc and an NVIDIA driver and nothing else installed:
#   bin/normjit               the CLI
#   bin/normjit-gpu-tests     the GPU GoogleTest binary (when the build has
#                             the NormJITGpuTests target)
#   lib/libnormjit-bundle.so  everything both need but glibc (and libcuda.so.1,
#                             which the runtime dlopens)
#   lib/...                   any other non-glibc library they need (none)
#   README.txt
# Then checks it and fails when a check fails: total size under 60 MiB;
# `ldd` of every binary (clean environment) resolves each library inside
# OUT_DIR or to glibc; and `normjit devices` and `normjit bench` run with
# `env -i` and no library of /usr/lib/llvm-22, libLLVM, libMLIR loaded
# (LD_DEBUG=libs), and again, where a private mount namespace is allowed
# (root), with LLVM, MLIR, libstdc++, libgcc_s, zlib, zstd hidden and no
# network. Idempotent: OUT_DIR is rebuilt from scratch on every run.
#===----------------------------------------------------------------------===#
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

out=${1:-build-bundle/normjit-bundle}
case $out in /*) ;; *) out=$root/$out ;; esac
max_bytes=$((60 * 1024 * 1024))
# glibc's libraries (and the kernel's vDSO): the only ones taken from the
# target machine.
glibc_re='^(linux-vdso\.so\.1|ld-linux-x86-64\.so\.2|lib(c|m|pthread|dl|rt|mvec|resolv|util|anl)\.so\.[0-9]+)$'

fail() { echo "bundle: error: $*" >&2; exit 1; }

#--- 1. Packages: the project's, plus lld (the preset links with it). -------
bash scripts/setup.sh
if ! command -v ld.lld >/dev/null 2>&1; then
  echo "bundle: installing lld"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    --no-install-recommends lld >/tmp/normjit-bundle-apt.log 2>&1 ||
    { tail -20 /tmp/normjit-bundle-apt.log >&2; fail "cannot install lld"; }
fi

#--- 2. Configure and build preset `bundle` (target normjit-bundle). --------
start=$SECONDS
cmake --preset bundle >/dev/null
cmake --build --preset bundle
build_s=$((SECONDS - start))
stage=$root/build-bundle/bundle
[ -f "$stage/manifest.txt" ] || fail "no $stage/manifest.txt after the build"
mapfile -t programs <"$stage/manifest.txt"

#--- 3. Assemble OUT_DIR. ----------------------------------------------------
# Only a directory this script made (or an empty one) is ever removed.
if [ -e "$out" ]; then
  if [ -f "$out/.normjit-bundle" ] || [ -z "$(ls -A "$out")" ]; then
    rm -rf "$out"
  else
    fail "$out exists and is not a normjit bundle; not touching it"
  fi
fi
mkdir -p "$out/bin" "$out/lib"
touch "$out/.normjit-bundle"
out=$(cd "$out" && pwd -P)  # as the loader spells $ORIGIN
for program in "${programs[@]}"; do
  cp "$stage/bin/$program" "$out/bin/"
done
cp "$stage/lib/libnormjit-bundle.so" "$out/lib/"
case " ${programs[*]} " in
  *" normjit-gpu-tests "*) gpu_tests=yes ;;
  *) gpu_tests=no
     echo "bundle: note: the build has no NormJITGpuTests target" \
          "(tests/unit/CMakeLists.txt) yet: no bin/normjit-gpu-tests" ;;
esac

# Every other library the binaries need, but glibc's: copied into lib/
# until nothing new turns up. (libnormjit-bundle.so links the C++ runtime,
# zlib and zstd statically, so today there is none.)
copied=()
while :; do
  new=0
  for elf in "$out"/bin/* "$out"/lib/*; do
    while read -r name _ path _; do
      [[ $name =~ $glibc_re ]] && continue
      case $path in
        "$out"/*) continue ;;
        "not") fail "$elf: $name not found (ldd)" ;;
        */llvm-22/*|*/libLLVM*|*/libMLIR*|*/libmlir*)
          fail "$elf needs $path: the static MLIR/LLVM link went wrong" ;;
      esac
      [ -e "$out/lib/$name" ] && continue
      cp -L "$path" "$out/lib/$name"
      copied+=("$name")
      new=1
    done < <(env -i LD_LIBRARY_PATH= ldd "$elf" | grep '=>' || true)
  done
  [ $new -eq 0 ] && break
done
for name in "${copied[@]+"${copied[@]}"}"; do
  # A copied library finds its own copied dependencies through $ORIGIN.
  if ! env -i ldd "$out/lib/$name" | grep '=>' | awk '{print $1}' |
      grep -Evq "$glibc_re"; then
    continue
  fi
  command -v patchelf >/dev/null ||
    fail "lib/$name needs other copied libraries: install patchelf"
  patchelf --set-rpath '$ORIGIN' "$out/lib/$name"
done

glibc_needed=$(objdump -T "$out"/bin/* "$out"/lib/* 2>/dev/null |
  grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -t. -k1,1n -k2,2n -u |
  tail -1)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)

cat >"$out/README.txt" <<EOF
normjit bundle (commit $commit, built $(date -u +%Y-%m-%d) on $(uname -m))
=======================================================================

A relocatable normjit: the CLI and, when built, the GPU test binary, with
everything they need but glibc and the NVIDIA driver. Copy this directory
anywhere (keep bin/ and lib/ side by side); no LLVM, MLIR, libstdc++ or
network is needed.

Needs: x86-64 Linux, glibc >= $glibc_needed (Debian 12, Ubuntu 22.04 or
newer), and, for the GPU, an NVIDIA driver: libcuda.so.1 is loaded at run
time from the system's library path (NORMJIT_CUDA_DRIVER=/path/libcuda.so.1
picks another); without one the CPU backend still works.

Run:
  bin/normjit --help
  bin/normjit devices                        # CPU and GPUs normjit sees
  bin/normjit bench --op rms_norm --rows 4096 --cols 4096 --dtype bf16
  bin/normjit run --op layer_norm --x X.npy --gamma G.npy --out Y.npy
  bin/normjit tune --op rms_norm --cols 4096 --dtype bf16
  bin/normjit-gpu-tests                      # GoogleTest; --gtest_filter=...

The tuning cache is ~/.cache/normjit (or \$XDG_CACHE_HOME/normjit, or
\$NORMJIT_CACHE_DIR); bin/normjit cache path prints it.

Contents:
  bin/normjit, bin/normjit-gpu-tests   small programs that call into
  lib/libnormjit-bundle.so             normjit with MLIR, LLVM (X86, NVPTX)
                                       and the C++ runtime linked in; the
                                       programs find it through their RUNPATH
                                       \$ORIGIN/../lib
EOF
if [ "$gpu_tests" = no ]; then
  sed -i 's|^  bin/normjit-gpu-tests  .*|  (bin/normjit-gpu-tests: not in this build)|' \
    "$out/README.txt"
fi

#--- 4. Check. ----------------------------------------------------------------
echo "bundle: $out (built in ${build_s}s)"
total=0
while read -r size file; do
  printf '  %10d  %s\n' "$size" "${file#"$out"/}"
  total=$((total + size))
done < <(find "$out" -type f ! -name .normjit-bundle -printf '%s %p\n' |
  sort -k2)
printf '  %10d  total (%d.%02d MiB; limit 60 MiB)\n' "$total" \
  $((total / 1048576)) $(((total % 1048576) * 100 / 1048576))
[ "$total" -lt "$max_bytes" ] || fail "the bundle is $total bytes, over 60 MiB"

for elf in "$out"/bin/* "$out"/lib/*.so*; do
  while read -r line; do
    name=${line%% *}
    path=$(sed -n 's/.*=> \([^ ]*\).*/\1/p' <<<"$line")
    [ -n "$path" ] || path=${line%% (*}
    case $path in
      "$out"/*) continue ;;
    esac
    [[ $name =~ $glibc_re || $(basename "$path") =~ $glibc_re ]] ||
      fail "ldd ${elf#"$out"/}: '$line' is neither in the bundle nor glibc"
  done < <(env -i ldd "$elf" | sed 's/^[[:space:]]*//')
done
echo "bundle: ldd: every library is in the bundle or glibc's"

# The commands a fresh machine would run, in a clean environment. From the
# loader's log (LD_DEBUG=libs): no file of LLVM or MLIR is even tried, and
# each library whose initializers ran is glibc's, the bundle's or the NVIDIA
# driver's.
check_run() {
  local dir what
  dir=$(mktemp -d)
  what=${*#"$out"/}
  if ! env -i LD_DEBUG=libs LD_DEBUG_OUTPUT="$dir/ld" "$@" \
      >/dev/null 2>"$dir/stderr"; then
    cat "$dir/stderr" >&2
    fail "'$what' failed"
  fi
  if grep -hE 'llvm-22|libLLVM|libMLIR|libmlir' "$dir"/ld.* >&2; then
    fail "'$what': the loader looked for LLVM/MLIR (above)"
  fi
  while read -r lib; do
    case $lib in "$out"/*) continue ;; esac
    base=$(basename "$lib")
    [[ $base =~ $glibc_re || $base =~ ^lib(cuda|nvidia-) ]] ||
      fail "'$what' loaded $lib, which is neither glibc's nor the bundle's"
  done < <(sed -n 's/.*calling init: //p' "$dir"/ld.* | sort -u)
  rm -rf "$dir"
}
check_run "$out/bin/normjit" devices
check_run "$out/bin/normjit" bench --op rms_norm --rows 64 --cols 1024
if [ "$gpu_tests" = yes ]; then
  check_run "$out/bin/normjit-gpu-tests" --gtest_list_tests
fi
echo "bundle: env -i runs: devices, bench$([ "$gpu_tests" = yes ] &&
  echo ", normjit-gpu-tests --gtest_list_tests") load only glibc and the bundle"

# The same with MLIR, LLVM and the C++ runtime really gone: in a private
# mount namespace (other processes see nothing of it) /usr/lib/llvm-22 is an
# empty tmpfs and each such library in the system directories is /dev/null;
# a private network namespace has no network.
read -r -d '' isolated <<'EOF' || true
set -euo pipefail
out=$1
mount -t tmpfs none /usr/lib/llvm-22
for f in /usr/lib/x86_64-linux-gnu/lib{LLVM,MLIR,mlir,stdc++,gcc_s,z,zstd,z3,tinfo,xml2,edit,ffi}[.-]*so*; do
  if [ -f "$f" ] && [ ! -L "$f" ]; then
    mount --bind /dev/null "$f"
  fi
done
env -i "$out/bin/normjit" devices >/dev/null
env -i "$out/bin/normjit" bench --op rms_norm --rows 64 --cols 1024 >/dev/null
if [ -x "$out/bin/normjit-gpu-tests" ]; then
  env -i "$out/bin/normjit-gpu-tests" --gtest_list_tests >/dev/null
fi
EOF
if unshare -mn true 2>/dev/null; then
  unshare -mn bash -c "$isolated" bash "$out" ||
    fail "the bundle does not run with LLVM/MLIR/libstdc++ hidden"
  echo "bundle: runs with /usr/lib/llvm-22, libLLVM, libMLIR, libstdc++," \
       "libgcc_s, zlib, zstd hidden and no network"
else
  echo "bundle: note: no private mount namespace here (needs root): skipped" \
       "the run with the system's LLVM/MLIR hidden"
fi
# The library's C ABI, as a host that dlopens it (bench/gpu_bench.py with
# ctypes) uses it: a small CPU LayerNorm checked against numpy-free Python.
if command -v python3 >/dev/null 2>&1; then
  python3 bench/gpu_bench.py --bundle "$out" --check-lib >/dev/null ||
    fail "the bundle's library does not serve the C ABI (gpu_bench.py --check-lib)"
  echo "bundle: the C ABI of lib/libnormjit-bundle.so works (gpu_bench.py --check-lib)"
fi
echo "bundle: ok"
