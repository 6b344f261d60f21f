#!/usr/bin/env bash
#===- setup.sh - install what normjit's build and tests need ---------------===#
# Idempotent: packages already installed are skipped; apt-get runs only when
# something is missing. Stops with the name of a package that cannot be had.
#===----------------------------------------------------------------------===#
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache python3 git
  llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools
  libzstd-dev zlib1g-dev libedit-dev libxml2-dev libcurl4-openssl-dev
  libtomlplusplus-dev libgtest-dev libgmock-dev libbenchmark-dev libdnnl-dev
)

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "installed" ] || missing+=("$pkg")
done

# Test tooling from PyPI (never a runtime dependency): numpy cross-checks
# the .npy reader and writer. Without it that one test is skipped.
ensure_numpy() {
  if ! python3 -c 'import numpy' >/dev/null 2>&1; then
    if python3 -m pip install --quiet --disable-pip-version-check numpy \
        >/tmp/normjit-setup-pip.log 2>&1; then
      echo "setup: installed numpy (test tooling)"
    else
      echo "setup: warning: could not install numpy; the .npy cross-check" \
           "test will be skipped (see /tmp/normjit-setup-pip.log)" >&2
    fi
  fi
}

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  ensure_numpy
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "setup: error: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get update -qq; then
  echo "setup: warning: apt-get update failed; trying the cached lists" >&2
fi
for pkg in "${missing[@]}"; do
  if ! apt-cache show "$pkg" >/dev/null 2>&1; then
    echo "setup: error: package '$pkg' is not available from the configured" \
         "apt sources (Debian 12 bookworm is expected)" >&2
    exit 1
  fi
done
if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    >/tmp/normjit-setup-apt.log 2>&1; then
  tail -20 /tmp/normjit-setup-apt.log >&2
  for pkg in "${missing[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = "installed" ] ||
      echo "setup: error: could not install package '$pkg'" >&2
  done
  exit 1
fi
ensure_numpy
echo "setup: done"
