"""Driver for ops/bench/replicate; runs inside the benchmark's namespace (tap0, tap1 on br0, 10.77.0.1/16)."""
import os
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import stop, unix_request, wait_until  # noqa: E402
from colo_qemu import measure_colo  # noqa: E402

TANDEM, GUEST, RUNS = sys.argv[1], sys.argv[2], int(sys.argv[3])
GUEST_IP, PORT, MAC = "10.77.0.2", 7777, "52:54:00:77:00:02"
ENDPOINT = "tcp://127.0.0.1:24000"
EPOCHS = [10, 25, 50]
WINDOW = int(os.environ.get("REPLICATE_BENCH_WINDOW", "256"))  # kv requests in flight: output commit adds an epoch of latency to each answer
MEASURE_S = 3.0
FILL = "text"        # the dirty guest's page contents: whole pages of words, about 2.5x smaller under lz4
GOAL_KV_SHARE = 0.70  # kv protected at 25 ms epochs against unprotected
GOAL_PAUSE_P99_MS, GOAL_PAUSE_PAGES = 1.0, 1000


class Guest:
    """A tandem run (protected when epoch_ms is set) and its standby."""

    def __init__(self, tmp, append, epoch_ms=None, memory="256M", disk=False):
        self.control = os.path.join(tmp, "p.sock")
        self.standby_control = os.path.join(tmp, "s.sock")
        self.standby = None
        self.buffer = b""
        protect = []

        def disk_option(name):
            if not disk:
                return []
            path = os.path.join(tmp, name)
            with open(path, "wb") as f:
                f.truncate(64 << 20)
            return ["--disk", path]

        if epoch_ms:
            self.standby = subprocess.Popen([TANDEM, "standby", "--listen", ENDPOINT, "--net", f"tap=tap1,mac={MAC}",
                                             "--control", self.standby_control] + disk_option("s.img"),
                                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            protect = ["--protect", ENDPOINT, "--epoch-ms", str(epoch_ms)]
        self.proc = subprocess.Popen([TANDEM, "run", "--kernel", GUEST, "--memory", memory, "--net", f"tap=tap0,mac={MAC}",
                                      "--control", self.control, "--append", append] + disk_option("p.img") + protect,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if epoch_ms:
            wait_until(lambda: self.replication().get("state") == "protected", 30)

    def replication(self):
        try:
            return unix_request(self.control, {"cmd": "status"}).get("replication") or {}
        except OSError:
            return {}

    def line_with(self, needle, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                if needle.encode() in line:
                    return line.decode(errors="replace")
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                self.buffer += chunk
        raise RuntimeError(f"no '{needle}' from the guest")

    def stats_written(self):
        self.proc.stdin.write(b"stats\n")
        self.proc.stdin.flush()
        return int(re.search(r"written=(\d+)", self.line_with("stats job=dirty")).group(1))

    def standby_replication(self):
        try:
            return unix_request(self.standby_control, {"cmd": "status"}).get("replication") or {}
        except OSError:
            return {}

    def close(self):
        stop(self.proc)
        if self.standby:
            stop(self.standby)


def kv_throughput(seconds):
    """SETs per second with WINDOW requests in flight."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    sent = answered = 0
    outstanding = {}
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        while len(outstanding) < WINDOW:
            sent += 1
            s.sendto(f"{sent} SET key{sent % 1000} value{sent}".encode(), (GUEST_IP, PORT))
            outstanding[sent] = time.monotonic()
        try:
            reply = s.recv(256).split(b" ", 1)[0]
            if outstanding.pop(int(reply), None) is not None:
                answered += 1
        except socket.timeout:
            outstanding.clear()  # lost: send new ones (a lower id is answered OK, not applied)
    return answered / (time.monotonic() - start)


def ping_ms():
    out = subprocess.run(["ping", "-c", "60", "-i", "0.02", "-q", GUEST_IP], capture_output=True, text=True).stdout
    return float(re.search(r"= [\d.]+/([\d.]+)/", out).group(1))


def kv_case(tmp, epoch_ms):
    g = Guest(tmp, f"job=kv ip={GUEST_IP}/16 port={PORT}", epoch_ms)
    try:
        if not epoch_ms:
            g.line_with("kv: serving")
        time.sleep(0.3)
        rtt = ping_ms()  # first: behind a backlog of SETs the echoes would wait in the guest's ring
        return kv_throughput(MEASURE_S), rtt
    finally:
        g.close()


def synced_kv_case(tmp, epoch_ms):
    """kv with sync=1 (each SET written and flushed before it is answered): SET/s, and for a
    protected guest the standby's fdatasyncs per second and their mean time."""
    g = Guest(tmp, f"job=kv ip={GUEST_IP}/16 port={PORT} sync=1", epoch_ms, disk=True)
    try:
        if not epoch_ms:
            g.line_with("kv: serving")
        time.sleep(0.3)
        before = g.standby_replication()
        rate = kv_throughput(MEASURE_S)
        after = g.standby_replication()
        syncs = after.get("disk_syncs", 0) - before.get("disk_syncs", 0)
        sync_ms = after.get("disk_sync_ms_total", 0) - before.get("disk_sync_ms_total", 0)
        return rate, syncs / MEASURE_S, sync_ms / syncs if syncs else 0.0
    finally:
        g.close()


def disk_case(tmp, epoch_ms):
    """job=disk as fast as it can (each record written and flushed, then shown): records/s."""
    g = Guest(tmp, "job=disk rate=0", epoch_ms, disk=True)
    try:
        first = int(g.line_with("disk: wrote record").rsplit(" ", 1)[1])
        t0 = time.monotonic()
        last = first
        while time.monotonic() - t0 < MEASURE_S:  # read all along: the console is not to fall behind
            last = int(g.line_with("disk: wrote record").rsplit(" ", 1)[1])
        return (last - first) / (time.monotonic() - t0)
    finally:
        g.close()


def durability():
    """What a standby that makes every flushed epoch durable (fdatasync before the ack) costs."""
    print(f"flushes made durable on the standby, 25 ms epochs, {RUNS} runs of {MEASURE_S:.0f} s:")
    kv = {None: [], 25: []}
    disk = {None: [], 25: []}
    syncs, sync_ms = [], []
    for run in range(RUNS):
        for e in (None, 25):
            with tempfile.TemporaryDirectory(prefix="tandem-bench-") as tmp:
                rate, per_s, ms = synced_kv_case(tmp, e)
            with tempfile.TemporaryDirectory(prefix="tandem-bench-") as tmp:
                records = disk_case(tmp, e)
            kv[e].append(rate), disk[e].append(records)
            if e:
                syncs.append(per_s), sync_ms.append(ms)
            label = "unprotected" if e is None else f"epoch {e} ms"
            extra = f"  standby fdatasyncs {per_s:5.1f}/s, {ms:6.2f} ms each" if e else ""
            print(f"  run {run + 1} {label:12s}: kv sync=1 {rate:7.0f} SET/s  disk job {records:6.1f} records/s{extra}", flush=True)
    print(f"kv sync=1: unprotected {med(kv[None]):.0f} SET/s, protected {med(kv[25]):.0f} SET/s "
          f"({med(kv[25]) / med(kv[None]):.0%}); disk job: unprotected {med(disk[None]):.1f} records/s, "
          f"protected {med(disk[25]):.1f} ({med(disk[25]) / med(disk[None]):.0%}); the standby's fdatasync: "
          f"{med(syncs):.1f}/s, median {med(sync_ms):.2f} ms each")


def dirty_case(tmp, epoch_ms, rate=0, memory="256M"):
    g = Guest(tmp, f"job=dirty mib=64 rate={rate} fill={FILL}", epoch_ms, memory=memory)
    try:
        g.line_with("dirty: working set filled")
        time.sleep(0.5)
        before, t0, sent0 = g.stats_written(), time.monotonic(), g.replication().get("sent_bytes", 0)
        time.sleep(MEASURE_S)
        after, t1, status = g.stats_written(), time.monotonic(), g.replication()
        status["wire_mib_s"] = (status.get("sent_bytes", 0) - sent0) / (t1 - t0) / (1 << 20)
        return (after - before) / (t1 - t0), status
    finally:
        g.close()


def failover_case(tmp):
    """Kill the primary of a kv guest; ms until the standby's guest answers a SET."""
    g = Guest(tmp, f"job=kv ip={GUEST_IP}/16 port={PORT}", 25)
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.005)
        ident = 0
        kill_at = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            ident += 1
            s.sendto(f"{ident} SET k v{ident}".encode(), (GUEST_IP, PORT))
            try:
                while True:
                    reply = int(s.recv(256).split(b" ", 1)[0])
                    if kill_at and reply == ident:
                        return (time.monotonic() - kill_at) * 1000
            except (socket.timeout, ValueError):
                pass
            if kill_at is None and ident == 50:
                kill_at = time.monotonic()
                g.proc.send_signal(signal.SIGKILL)
        return float("nan")
    finally:
        g.close()


def med(values):
    return statistics.median(values)


def main():
    parts = os.environ.get("REPLICATE_BENCH_PARTS", "throughput,pause,size,failover,durability").split(",")
    if "throughput" in parts:
        throughput()
    if "pause" in parts:
        pauses()
    if "size" in parts:
        sizes()
    if "failover" in parts:
        failover()
    if "durability" in parts:
        durability()


def throughput():
    print(f"{RUNS} runs, {MEASURE_S:.0f} s each; kv: SETs with {WINDOW} in flight; dirty: 64 MiB written as fast as the guest can "
          f"(fill={FILL})")
    kv = {e: [] for e in [None] + EPOCHS}
    ping = {e: [] for e in [None] + EPOCHS}
    dirty = {e: [] for e in [None] + EPOCHS}
    for run in range(RUNS):
        for e in [None] + EPOCHS:
            with tempfile.TemporaryDirectory(prefix="tandem-bench-") as tmp:
                rate, rtt = kv_case(tmp, e)
            with tempfile.TemporaryDirectory(prefix="tandem-bench-") as tmp:
                pages, status = dirty_case(tmp, e)
            kv[e].append(rate), ping[e].append(rtt), dirty[e].append(pages)
            label = "unprotected" if e is None else f"epoch {e} ms"
            wire = f"  ({status['wire_mib_s']:.1f} MiB/s to the standby)" if e else ""
            print(f"  run {run + 1} {label:12s}: kv {rate:7.0f} SET/s  ping {rtt:6.2f} ms  dirty {pages:7.0f} pages/s{wire}",
                  flush=True)
    base_kv, base_ping, base_dirty = med(kv[None]), med(ping[None]), med(dirty[None])
    print(f"unprotected: kv {base_kv:.0f} SET/s, ping {base_ping:.2f} ms, dirty {base_dirty:.0f} pages/s")
    for e in EPOCHS:
        print(f"protected at {e:2d} ms: kv {med(kv[e]):.0f} SET/s ({med(kv[e]) / base_kv:.0%} of unprotected), "
              f"ping {med(ping[e]):.2f} ms (+{med(ping[e]) - base_ping:.2f} ms), "
              f"dirty {med(dirty[e]):.0f} pages/s ({med(dirty[e]) / base_dirty:.0%})")
    share = med(kv[25]) / base_kv
    print(f"Goal, kv protected at 25 ms epochs at least {GOAL_KV_SHARE:.0%} of unprotected: "
          f"{'met' if share >= GOAL_KV_SHARE else 'NOT met'} ({share:.0%})")
    for e in EPOCHS:
        added = med(ping[e]) - base_ping
        print(f"Goal, latency added to an answer at most one epoch plus 1 ms at the median, {e} ms epochs: "
              f"{'met' if added <= e + 1 else 'NOT met'} (+{added:.2f} ms)")


def pauses():
    """tandem's epoch pause against QEMU COLO's checkpoint pause, same guest, same dirty rates, 25 ms."""
    print("epoch pause against dirty pages per epoch, 25 ms epochs (tandem: last 100 epochs; QEMU 7.2 COLO,\n"
          "x-checkpoint-delay 25, from its own trace: with its stock sockets and with TCP_NODELAY added):")
    print(f"(fill={FILL}; rate 0 = as fast as the guest can)")
    goal_rows = []
    for rate in (1, 4000, 20000, 40000, 0):
        rows, colo = [], {"tcp": [], "tcp-nodelay": []}
        for run in range(RUNS):
            with tempfile.TemporaryDirectory(prefix="tandem-bench-") as tmp:
                _, r = dirty_case(tmp, 25, rate)
            rows.append((r["dirty_pages_p50"], r["epoch_pause_p50_ms"], r["epoch_pause_p99_ms"], r["wire_mib_s"]))
            for transport in colo:
                with tempfile.TemporaryDirectory(prefix="tandem-bench-") as tmp:
                    c = measure_colo(GUEST, tmp, seconds=MEASURE_S, checkpoint_ms=25,
                                     append=f"job=dirty mib=64 rate={rate} fill={FILL}", transport=transport)
                colo[transport].append((c["dirty_pages_p50"], c["pause_p50_ms"], c["pause_p99_ms"]))
        t50, t99 = med(x[1] for x in rows), med(x[2] for x in rows)
        goal_rows.append((med(x[0] for x in rows), t99))
        print(f"  guest writing {rate:5d} pages/s:\n"
              f"    tandem           {med(x[0] for x in rows):5.0f} dirty pages per epoch, pause median {t50:7.3f} ms, p99 {t99:7.3f} ms"
              f", {med(x[3] for x in rows):.1f} MiB/s on the wire")
        for transport, label in (("tcp", "COLO stock tcp  "), ("tcp-nodelay", "COLO tcp nodelay")):
            c50, c99 = med(x[1] for x in colo[transport]), med(x[2] for x in colo[transport])
            print(f"    QEMU {label}{med(x[0] for x in colo[transport]):5.0f} pages per checkpoint, pause median {c50:7.3f} ms, "
                  f"p99 {c99:7.3f} ms  (QEMU/tandem: median {c50 / t50:.1f}x, p99 {c99 / t99:.1f}x)", flush=True)
    within = [(pages, p99) for pages, p99 in goal_rows if pages <= GOAL_PAUSE_PAGES]
    met = all(p99 < GOAL_PAUSE_P99_MS for _, p99 in within)
    print(f"Goal, epoch pause under {GOAL_PAUSE_P99_MS:.0f} ms at the p99 up to {GOAL_PAUSE_PAGES} dirty pages per epoch: "
          f"{'met' if met and within else 'NOT met'} ("
          + ", ".join(f"{pages:.0f} pages: {p99:.2f} ms" for pages, p99 in within) + ")")


def sizes():
    """The epoch pause of a small and a large guest writing the same pages at the same rate."""
    print(f"epoch pause against guest size, 25 ms epochs, 64 MiB written at 4000 pages/s (fill={FILL}):")
    pause = {}
    for memory in ("256M", "8G"):
        rows = []
        for run in range(RUNS):
            with tempfile.TemporaryDirectory(prefix="tandem-bench-") as tmp:
                _, r = dirty_case(tmp, 25, 4000, memory)
            rows.append((r["dirty_pages_p50"], r["epoch_pause_p50_ms"], r["epoch_pause_p99_ms"]))
        pause[memory] = med(x[1] for x in rows)
        print(f"  {memory:>5s} guest: {med(x[0] for x in rows):5.0f} dirty pages per epoch, pause median {pause[memory]:.3f} ms, "
              f"p99 {med(x[2] for x in rows):.3f} ms", flush=True)
    grown = pause["8G"] / pause["256M"] - 1
    print(f"Goal, an 8 GiB guest pauses within 10% of a 256 MiB one at the same rate (median): "
          f"{'met' if grown <= 0.10 else 'NOT met'} ({grown:+.0%})")


def failover():
    times = []
    for run in range(RUNS):
        with tempfile.TemporaryDirectory(prefix="tandem-bench-") as tmp:
            times.append(failover_case(tmp))
        print(f"  failover run {run + 1}: kill to the first answer from the standby {times[-1]:.0f} ms", flush=True)
    print(f"failover (200 ms timeout): kill to serving, median {med(times):.0f} ms")


main()
