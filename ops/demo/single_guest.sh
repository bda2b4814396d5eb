#!/usr/bin/env bash
# One guest, no replication: boot the test guest with tandem, show its console,
# talk to it, power it off. (ops/demo.sh is the main demo: a protected pair failing over.)
# Usage: ops/demo/single_guest.sh            scripted, about 10 seconds, nothing to type
#        ops/demo/single_guest.sh --interactive   the console is yours; type verify, stats, echo TEXT, poweroff
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
echo "demo: building tandem and its test guest (first time: a minute or two)..."
build=$("$root/ops/build.sh")
tandem="$build/bin/tandem"

if [ "${1:-}" = "--interactive" ]; then
  echo "demo: 2 vCPUs, 256 MiB, job=dirty; type 'verify', 'stats', 'echo hi' or 'poweroff'"
  exec "$tandem" run --cpus 2 --append "job=dirty mib=64 rate=5000"
fi

say() { printf '\033[1mdemo: %s\033[0m\n' "$*" >&2; }
say "booting the test guest: 2 vCPUs, 256 MiB, job=dirty (64 MiB working set, 5000 page writes/s)"
start=$(date +%s%N)
{
  sleep 4; say "typing: stats";  echo stats
  sleep 1; say "typing: verify"; echo verify
  sleep 2; say "typing: echo hello from the host"; echo "echo hello from the host"
  sleep 1; say "typing: poweroff"; echo poweroff
} | "$tandem" run --cpus 2 --append "job=dirty mib=64 rate=5000" && status=0 || status=$?
end=$(date +%s%N)
say "tandem run exited with status $status after $(( (end - start) / 1000000 )) ms"
say "try it yourself: ops/demo/single_guest.sh --interactive"
exit "$status"
