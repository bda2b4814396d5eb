"""Driver for ops/bench/io; runs inside the benchmark's namespace (tap0 on br0, 10.77.0.1/16)."""
import os
import re
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import QEMU_CPU  # noqa: E402

TANDEM, GUEST, RUNS = sys.argv[1], sys.argv[2], int(sys.argv[3])
GUEST_IP, PORT, REQUESTS, MAC = "10.77.0.2", 7777, 2000, "52:54:00:77:00:02"


def vmm_command(vmm, append, disk):
    if vmm == "tandem":
        return [TANDEM, "run", "--kernel", GUEST, "--memory", "256M", "--net", f"tap=tap0,mac={MAC}",
                "--disk", disk, "--append", append]
    return ["qemu-system-x86_64", "-M", "microvm,acpi=off", "-enable-kvm", *QEMU_CPU, "-m", "256M", "-smp", "1",
            "-nodefaults", "-no-user-config", "-nographic", "-display", "none", "-serial", "stdio",
            "-global", "virtio-mmio.force-legacy=false",
            "-drive", f"id=d0,file={disk},format=raw,if=none", "-device", "virtio-blk-device,drive=d0",
            "-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no",
            "-device", f"virtio-net-device,netdev=n0,mac={MAC}", "-kernel", GUEST, "-append", append]


class Vm:
    def __init__(self, vmm, append, disk):
        self.proc = subprocess.Popen(vmm_command(vmm, append, disk), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.buffer = b""

    def lines(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                yield line.decode(errors="replace").strip()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                return
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return
            self.buffer += chunk

    def wait_for(self, needle, timeout=60):
        for line in self.lines(timeout):
            if needle in line:
                return line
        raise RuntimeError(f"no '{needle}'")

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def ping_rtt_ms():
    out = subprocess.run(["ping", "-c", "200", "-i", "0.005", "-q", GUEST_IP], capture_output=True, text=True).stdout
    return float(re.search(r"= [\d.]+/([\d.]+)/", out).group(1))


def kv_rate():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    start = time.monotonic()
    for i in range(1, REQUESTS + 1):
        message = f"{i} SET key{i} value{i}".encode()
        while True:
            s.sendto(message, (GUEST_IP, PORT))
            try:
                if s.recv(256).startswith(f"{i} ".encode()):
                    break
            except socket.timeout:
                pass
    return REQUESTS / (time.monotonic() - start)


def disk_rate(vm):
    vm.wait_for("disk: verified 0 records")
    start, last = time.monotonic(), 0
    for line in vm.lines(3.0):
        if line.startswith("disk: wrote record "):
            last = int(line.rsplit(" ", 1)[1])
    return last / (time.monotonic() - start)


def one_run(vmm, tmp):
    disk = os.path.join(tmp, "disk.img")
    with open(disk, "wb") as f:
        f.truncate(16 << 20)
    vm = Vm(vmm, f"job=kv ip={GUEST_IP}/16 port={PORT}", disk)
    try:
        vm.wait_for("kv: serving")
        rtt = ping_rtt_ms()
        rate = kv_rate()
    finally:
        vm.stop()
    vm = Vm(vmm, "job=disk rate=0", disk)
    try:
        records = disk_rate(vm)
    finally:
        vm.stop()
    return rtt, rate, records


def main():
    print(f"{RUNS} runs; ping: mean RTT of 200 echoes; kv: {REQUESTS} SETs one at a time; "
          "disk: records written and flushed per second over 3 s")
    results = {"tandem": [], "qemu": []}
    for run in range(RUNS):
        for vmm in ("tandem", "qemu"):
            tmp = tempfile.mkdtemp(prefix="tandem-bench-")
            try:
                r = one_run(vmm, tmp)
            finally:
                shutil.rmtree(tmp)
            results[vmm].append(r)
            print(f"  run {run + 1} {vmm:6s}: ping {r[0]:6.3f} ms  kv {r[1]:7.0f} req/s  disk {r[2]:6.0f} records/s",
                  flush=True)
    t = [statistics.median(x[i] for x in results["tandem"]) for i in range(3)]
    q = [statistics.median(x[i] for x in results["qemu"]) for i in range(3)]
    print(f"median ping RTT: tandem {t[0]:.3f} ms, qemu {q[0]:.3f} ms (qemu/tandem {q[0] / t[0]:.2f}x)")
    print(f"median kv: tandem {t[1]:.0f} req/s, qemu {q[1]:.0f} req/s (tandem/qemu {t[1] / q[1]:.2f}x)")
    print(f"median disk: tandem {t[2]:.0f} records/s, qemu {q[2]:.0f} records/s (tandem/qemu {t[2] / q[2]:.2f}x)")


main()
