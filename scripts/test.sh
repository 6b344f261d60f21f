#!/usr/bin/env bash
# The README's test command: set up, build, then run the lit/FileCheck and
# GoogleTest suites together under CTest (one CTest test per lit file and per
# GoogleTest case). CTest's last lines are the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
ctest --preset default
