#!/usr/bin/env bash
# Installs what is missing, then configures and builds with the default
# preset (build/). Shared by the README's two commands.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset default >/dev/null
cmake --build --preset default
