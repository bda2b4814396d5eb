#!/usr/bin/env bash
# Installs the build's dependencies (ops/setup) and builds tandem and its test guest into build/.
# Quiet unless something fails; prints the build directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="${TANDEM_BUILD_DIR:-$root/build}"
"$root/ops/setup" >/dev/null
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" >/dev/null
echo "$build"
