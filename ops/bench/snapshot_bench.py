"""Driver for ops/bench/snapshot: times tandem's and QEMU's save and restore of the same guest."""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import QEMU_CPU, Qmp, stop, unix_request, wait_for_line, wait_until  # noqa: E402

TANDEM, GUEST, RUNS = sys.argv[1], sys.argv[2], int(sys.argv[3])
MEMORY = "1G"
CASES = [
    ("idle 1 GiB", "job=counter rate=10", "tandem-guest: ready"),
    ("1 GiB, 512 MiB of text written", "job=dirty mib=512 rate=1 fill=text", "dirty: working set filled"),
]


def tandem_run(tmp, append, ready):
    sock = os.path.join(tmp, "t.sock")
    proc = subprocess.Popen([TANDEM, "run", "--kernel", GUEST, "--memory", MEMORY, "--control", sock,
                             "--append", append], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    try:
        wait_for_line(proc, ready)
        snap = unix_request(sock, {"cmd": "snapshot", "to": os.path.join(tmp, "tsnap")})
        assert snap["ok"], snap
    finally:
        stop(proc)
    size = os.path.getsize(os.path.join(tmp, "tsnap", "snapshot.tandem"))
    sock2 = os.path.join(tmp, "t2.sock")
    start = time.monotonic()
    proc = subprocess.Popen([TANDEM, "restore", "--from", os.path.join(tmp, "tsnap"), "--control", sock2],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        def running():
            try:
                return unix_request(sock2, {"cmd": "status"}).get("state") == "running"
            except OSError:
                return False
        wait_until(running)
        restore_ms = (time.monotonic() - start) * 1000
    finally:
        stop(proc)
    return snap["paused_ms"], snap["total_ms"], restore_ms, size


def qemu_command(qmp, extra):
    return ["qemu-system-x86_64", "-M", "microvm", "-enable-kvm", *QEMU_CPU, "-m", MEMORY, "-smp", "1", "-nodefaults",
            "-no-user-config", "-nographic", "-display", "none", "-serial", "stdio", "-kernel", GUEST,
            "-qmp", f"unix:{qmp},server=on,wait=off"] + extra


def qemu_run(tmp, append, ready):
    qsock, image = os.path.join(tmp, "q.sock"), os.path.join(tmp, "qemu.state")
    proc = subprocess.Popen(qemu_command(qsock, ["-append", append]), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        wait_for_line(proc, ready)
        qmp = Qmp(qsock)
        # QEMU at its best for a file: no bandwidth cap.
        qmp.execute("migrate-set-parameters", **{"max-bandwidth": 64 << 30})
        qmp.execute("migrate", uri=f"exec:cat > {image}")
        info = wait_until(lambda: (lambda i: i if i.get("status") in ("completed", "failed") else None)(
            qmp.execute("query-migrate")), step=0.005)
        assert info["status"] == "completed", info
        qmp.close()
    finally:
        stop(proc)
    size = os.path.getsize(image)
    qsock2 = os.path.join(tmp, "q2.sock")
    start = time.monotonic()
    proc = subprocess.Popen(qemu_command(qsock2, ["-append", append, "-incoming", f"exec:cat {image}"]),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        qmp = Qmp(qsock2)
        wait_until(lambda: qmp.execute("query-status")["status"] == "running")
        restore_ms = (time.monotonic() - start) * 1000
        qmp.close()
    finally:
        stop(proc)
    return info["downtime"], info["total-time"], restore_ms, size


def main():
    print(f"{RUNS} runs per case; pause = guest stopped while saving; total = the whole save; "
          "restore = process start to guest running")
    for name, append, ready in CASES:
        results = {"tandem": [], "qemu": []}
        for run in range(RUNS):
            for vmm, fn in (("tandem", tandem_run), ("qemu", qemu_run)):
                tmp = tempfile.mkdtemp(prefix="tandem-bench-")
                try:
                    r = fn(tmp, append, ready)
                finally:
                    shutil.rmtree(tmp)
                results[vmm].append(r)
                print(f"  {name:24s} run {run + 1} {vmm:6s}: pause {r[0]:8.1f} ms  total {r[1]:8.1f} ms  "
                      f"restore {r[2]:8.1f} ms  file {r[3] / 2**20:8.1f} MiB", flush=True)
        med = {v: [statistics.median(x[i] for x in results[v]) for i in range(4)] for v in results}
        t, q = med["tandem"], med["qemu"]
        print(f"{name}: median pause {t[0]:.1f} vs {q[0]:.1f} ms ({q[0] / t[0]:.2f}x), "
              f"save {t[1]:.1f} vs {q[1]:.1f} ms ({q[1] / t[1]:.2f}x), "
              f"restore {t[2]:.1f} vs {q[2]:.1f} ms ({q[2] / t[2]:.2f}x), "
              f"file {t[3] / 2**20:.1f} vs {q[3] / 2**20:.1f} MiB  [tandem vs qemu, qemu/tandem]")


if __name__ == "__main__":
    main()
