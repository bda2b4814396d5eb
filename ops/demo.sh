#!/usr/bin/env bash
# The main job: a guest protected by a hot standby on another host survives the death of its
# primary. On one machine, as network namespaces (ops/netns/two-hosts): host-a runs the guest
# (job=kv, a key-value store) protected by a standby on host-b over their own link; a client
# writes to the guest all along. After a few seconds the primary is killed with SIGKILL; the
# standby takes over, the client goes on, and every write the guest acknowledged is read back.
# Everything it made (namespaces, processes, files) is gone at the end, also on failure.
# Usage: ops/demo.sh      (about 20 seconds; ops/demo/single_guest.sh shows one guest's console)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
say() { printf '\033[1mdemo: %s\033[0m\n' "$*" >&2; }
[ "$(id -u)" -eq 0 ] || { echo "demo: run it as root (it makes network namespaces and taps)" >&2; exit 2; }
say "building tandem and its test guest (first time: a minute or two)..."
build=$("$root/ops/build.sh")  # (ops/setup first: the packages, python3 and iproute2 among them)
tandem="$build/bin/tandem"

name="demo$$"
tmp=$(mktemp -d /tmp/tandem-demo-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  "$root/ops/netns/two-hosts" delete "$name"
  rm -rf "$tmp"
}
trap cleanup EXIT
prefix=$("$root/ops/netns/two-hosts" create "$name")
# (ip netns exec execs its command: $! is the pid of the process itself, ended by pid at the end)
mac=52:54:00:77:00:02

say "host-b: a standby for the guest, its 256 MiB of memory prepared, listening on the hosts' link (10.78.0.2:7000)"
ip netns exec "$prefix-host-b" "$tandem" standby --listen tcp://10.78.0.2:7000 --prealloc 256M --net tap=tap0,mac=$mac --control "$tmp/b.sock" \
  --console "file:$tmp/b.console" 2>"$tmp/b.log" &
pids+=($!)
say "host-a: the guest (kv on 10.77.0.2), protected by host-b: 25 ms epochs, failover after 200 ms of silence"
ip netns exec "$prefix-host-a" "$tandem" run --memory 256M --net tap=tap0,mac=$mac --append "job=kv ip=10.77.0.2/16" \
  --control "$tmp/a.sock" --console "file:$tmp/a.console" --protect tcp://10.78.0.2:7000 2>"$tmp/a.log" &
primary=$!
pids+=($primary)

field() {  # field SOCKET KEY: one value of the replication status, or nothing
  "$tandem" status --control "$1" --json 2>/dev/null |
    python3 -c "import json,sys; r=json.load(sys.stdin).get('replication') or {}; print(r.get('$2',''))" 2>/dev/null || true
}
for _ in $(seq 300); do [ "$(field "$tmp/a.sock" state)" = protected ] && break; sleep 0.1; done
[ "$(field "$tmp/a.sock" state)" = protected ] || { say "the guest never became protected; host-a logged:"; cat "$tmp/a.log" >&2; exit 1; }

say "clients: a writer sends SETs to the guest, one after another, and remembers every acknowledged one"
ip netns exec "$prefix-clients" python3 "$root/ops/demo/kv_writer.py" 10.77.0.2 7777 >"$tmp/writer.json" &
writer=$!
pids+=($writer)
for _ in $(seq 8); do
  sleep 0.5
  "$tandem" status --control "$tmp/a.sock" --json | python3 -c "
import json, sys
r = json.load(sys.stdin)['replication']
print(f\"  primary: {r['state']}, epoch {r['epoch']} (acked {r['last_acked_epoch']}), pause {r['epoch_pause_ms']:.2f} ms \"
      f\"(p99 {r['epoch_pause_p99_ms']:.2f}), {r['dirty_pages_per_epoch']} dirty pages, ack {r['ack_latency_ms']:.1f} ms, \"
      f\"held output {r['held_output_bytes']} B, released {r['released_output_bytes']} B\")"
done

say "kill -9 of the primary on host-a"
kill -9 "$primary"
wait "$primary" 2>/dev/null || true
for _ in $(seq 100); do [ -S "$tmp/b.sock" ] && [ "$(field "$tmp/b.sock" role)" != standby ] && break; sleep 0.05; done
say "host-b's log:"
sed 's/^/  /' "$tmp/b.log" >&2
sleep 3
kill -TERM "$writer"
wait "$writer" || true
python3 - "$tmp/writer.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"demo: {r['acknowledged']} writes acknowledged, {r['missing']} missing after the failover"
      f"{' (first: ' + ', '.join(r['first_missing']) + ')' if r['missing'] else ''}; "
      f"the longest the client waited for an answer: {r['longest_silence_ms']} ms")
sys.exit(1 if r["missing"] or r["acknowledged"] == 0 else 0)
EOF
say "the guest runs on host-b now; cleaning up"
