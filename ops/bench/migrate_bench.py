"""Driver for ops/bench/migrate."""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from snapshot_bench import Qmp, stop, unix_request, wait_for_line, wait_until  # noqa: E402  (shared helpers)

TANDEM, GUEST, RUNS = sys.argv[1], sys.argv[2], int(sys.argv[3])
CASES = [
    ("1 GiB idle", "1G", "job=counter rate=10", "tandem-guest: ready"),
    ("512 MiB dirtied at 10k pages/s", "1G", "job=dirty mib=512 rate=10000", "dirty: working set filled"),
]
PORT = 23456


def tandem_migrate(tmp, memory, append, ready, mode):
    sock = os.path.join(tmp, "src.sock")
    endpoint = f"tcp://127.0.0.1:{PORT}"
    target = subprocess.Popen([TANDEM, "standby", "--listen", endpoint], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    source = subprocess.Popen([TANDEM, "run", "--kernel", GUEST, "--memory", memory, "--control", sock,
                               "--append", append], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    try:
        wait_for_line(source, ready)
        time.sleep(1)
        reply = unix_request(sock, {"cmd": "migrate", "to": endpoint, "mode": mode}, timeout=300)
        assert reply["ok"], reply
        return reply["total_ms"], reply["downtime_ms"], reply["bytes"]
    finally:
        stop(source)
        stop(target)


def qemu_command(memory, append, qmp, extra):
    return ["qemu-system-x86_64", "-M", "microvm", "-enable-kvm", "-m", memory, "-smp", "1", "-nodefaults",
            "-no-user-config", "-nographic", "-display", "none", "-serial", "stdio", "-kernel", GUEST,
            "-append", append, "-qmp", f"unix:{qmp},server=on,wait=off"] + extra


def qemu_migrate(tmp, memory, append, ready, unlimited):
    qs, qd = os.path.join(tmp, "qs.sock"), os.path.join(tmp, "qd.sock")
    target = subprocess.Popen(qemu_command(memory, append, qd, ["-incoming", f"tcp:127.0.0.1:{PORT}"]),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    source = subprocess.Popen(qemu_command(memory, append, qs, []), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        wait_for_line(source, ready)
        time.sleep(1)
        qmp = Qmp(qs)
        if unlimited:
            qmp.execute("migrate-set-parameters", **{"max-bandwidth": 64 << 30})
        qmp.execute("migrate", uri=f"tcp:127.0.0.1:{PORT}")
        info = wait_until(lambda: (lambda i: i if i.get("status") in ("completed", "failed") else None)(
            qmp.execute("query-migrate")), timeout=600, step=0.01)
        assert info["status"] == "completed", info
        qmp.close()
        return info["total-time"], info.get("downtime", 0), info["ram"]["transferred"]
    finally:
        stop(source)
        stop(target)


def main():
    print(f"{RUNS} runs per case; total and downtime as each VMM reports them; bytes on the wire")
    for name, memory, append, ready in CASES:
        results = {"tandem": [], "tandem postcopy": [], "tandem hybrid": [], "qemu default": [], "qemu unlimited": []}
        for run in range(RUNS):
            for vmm in results:
                tmp = tempfile.mkdtemp(prefix="tandem-bench-")
                try:
                    if vmm.startswith("tandem"):
                        mode = vmm.split()[1] if " " in vmm else "precopy"
                        r = tandem_migrate(tmp, memory, append, ready, mode)
                    else:
                        r = qemu_migrate(tmp, memory, append, ready, vmm == "qemu unlimited")
                finally:
                    shutil.rmtree(tmp)
                results[vmm].append(r)
                print(f"  {name:32s} run {run + 1} {vmm:15s}: total {r[0]:9.1f} ms  downtime {r[1]:7.1f} ms  "
                      f"{r[2] / 2**20:8.1f} MiB", flush=True)
        med = {v: [statistics.median(x[i] for x in results[v]) for i in range(3)] for v in results}
        for tv in ("tandem", "tandem postcopy", "tandem hybrid"):
            t = med[tv]
            for q in ("qemu default", "qemu unlimited"):
                m = med[q]
                print(f"{name}: {tv} vs {q}: total {t[0]:.1f} vs {m[0]:.1f} ms ({t[0] / m[0]:.2f} of it), "
                      f"downtime {t[1]:.1f} vs {m[1]:.1f} ms ({t[1] / max(m[1], 0.001):.2f} of it), "
                      f"bytes {t[2] / 2**20:.1f} vs {m[2] / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
