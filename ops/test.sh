#!/usr/bin/env bash
# Builds tandem and runs every test: unit, then integration with the real test guest under KVM.
# Installs what the build needs first (ops/setup). Usage: ops/test.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="${TANDEM_BUILD_DIR:-$root/build}"

"$root/ops/build.sh" >/dev/null

if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
  ctest --test-dir "$build" --output-on-failure -j2
else
  echo "ops/test.sh: /dev/kvm IS MISSING OR NOT USABLE HERE: THE KVM TESTS DID NOT RUN; running only the tests that need no KVM" >&2
  ctest --test-dir "$build" --output-on-failure -LE kvm
fi
