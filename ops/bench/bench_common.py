"""What the benchmark drivers share: processes, tandem's control socket, QEMU's QMP."""
import array
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time

# The CPU QEMU gives the test guest: the host's, as tandem does (KVM_GET_SUPPORTED_CPUID), without
# the one MSR QEMU 7.2 cannot set on this host (it aborts on 0x10a with plain -cpu host). QEMU's
# default CPU lacks the TSC-deadline timer the guest's idle path needs: the guest would poll there.
QEMU_CPU = ["-cpu", "host,-arch-capabilities"]

TRACE_LINE = re.compile(r"(\d+)@(\d+)\.(\d{6}):(\S+) ?(.*)")


def read_trace(path):
    """[(time s, event, arguments)] from a QEMU log-backend trace file written with -msg timestamp=on
    (each line stamped with gettimeofday() in microseconds)."""
    events = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                m = TRACE_LINE.match(line.strip())
                if m:
                    events.append((int(m.group(2)) + int(m.group(3)) / 1e6, m.group(4), m.group(5)))
    except OSError:
        pass
    return events


def wait_for_line(proc, needle, timeout=120):
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            if needle.encode() in buf:
                return
    raise RuntimeError(f"no '{needle}' from {proc.args[0]}")


def stop(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    if proc.stdin:
        try:
            proc.stdin.close()
        except OSError:
            pass


def unix_request(path, request, timeout=60):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError("tandem's control socket closed without an answer")
            data += chunk
        return json.loads(data)


class Qmp:
    def __init__(self, path, timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            self.sock = socket.socket(socket.AF_UNIX)
            try:
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no QMP on {path} within {timeout} s")
                time.sleep(0.002)
        self.sock.settimeout(60)
        self.file = self.sock.makefile("rwb")
        self._read()  # greeting
        self.execute("qmp_capabilities")

    def _read(self):
        while True:
            line = self.file.readline()
            if not line:
                raise RuntimeError("QMP closed")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def execute(self, command, fd=None, **arguments):
        """Runs command; fd (for getfd) goes along with it as SCM_RIGHTS."""
        data = json.dumps({"execute": command, "arguments": arguments}).encode() + b"\n"
        if fd is None:
            self.file.write(data)
            self.file.flush()
        else:
            self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
        reply = self._read()
        if "error" in reply:
            raise RuntimeError(f"QMP {command}: {reply['error']}")
        return reply["return"]

    def close(self):
        self.sock.close()


def fmt(v, width, digits=1):
    """v right-aligned in width with digits decimals, or '-' for None."""
    return f"{v:{width}.{digits}f}" if v is not None else f"{'-':>{width}}"


def run_benchmark(main, procs):
    """Runs main(); SIGTERM and ^C end it cleanly, and every process in procs (what it started)
    that still runs is ended afterwards, whatever happened."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        main()
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


def wait_until(check, timeout=120, step=0.002):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(step)
    raise RuntimeError("timed out")


class Console:
    """Reads a process's stdout on its own thread: every complete line with the time it arrived,
    and the unfinished rest."""

    def __init__(self, proc, clock=time.monotonic):
        self.proc = proc
        self.clock = clock  # what stamps the lines (time.time to compare with other processes' logs)
        self.lines = []
        self.partial = b""
        self.eof = False
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        fd = self.proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            now = self.clock()
            with self.cond:
                if not chunk:
                    self.eof = True
                    self.cond.notify_all()
                    return
                *complete, self.partial = (self.partial + chunk).split(b"\n")
                self.lines += [(now, line.decode(errors="replace").rstrip("\r")) for line in complete]
                self.cond.notify_all()

    def wait_for(self, pattern, timeout, after=0):
        """The first line from index `after` on that contains `pattern`: (index, time, text)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            i = after
            while True:
                while i < len(self.lines):
                    if pattern in self.lines[i][1]:
                        return i, self.lines[i][0], self.lines[i][1]
                    i += 1
                left = deadline - time.monotonic()
                if self.eof or left <= 0:
                    raise RuntimeError(f"no '{pattern}' from {os.path.basename(self.proc.args[0])} "
                                       f"({'it exited' if self.eof else f'{timeout} s'})")
                self.cond.wait(left)

    def snapshot(self):
        with self.cond:
            return list(self.lines), self.partial.decode(errors="replace")


def loopback_limit_mib_s(seconds=2.0, chunk=4 << 20):
    """What a plain TCP sender moves over 127.0.0.1 on this machine now: one connection, one thread
    sending 4 MiB buffers, another receiving into one (both in the kernel's copy loops; Python only
    calls them). MiB/s."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    sender = socket.create_connection(listener.getsockname())
    receiver, _ = listener.accept()
    listener.close()
    received = [0]

    def drain():
        buffer = bytearray(chunk)
        view = memoryview(buffer)
        while True:
            n = receiver.recv_into(view)
            if n == 0:
                return
            received[0] += n

    thread = threading.Thread(target=drain)
    thread.start()
    data = bytes(chunk)
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        sender.sendall(data)
    sender.shutdown(socket.SHUT_WR)
    thread.join()
    spent = time.monotonic() - began
    sender.close()
    receiver.close()
    return received[0] / spent / (1 << 20)


def memcpy_limit_mib_s(size=256 << 20, rounds=5):
    """One core's memcpy of a buffer larger than the caches (a bytearray slice assignment is one
    memcpy): the best of a few rounds, MiB/s."""
    source, target = bytearray(os.urandom(1 << 20) * (size >> 20)), bytearray(size)
    best = 0.0
    for _ in range(rounds):
        began = time.perf_counter()
        target[:] = source
        best = max(best, size / (time.perf_counter() - began) / (1 << 20))
    return best


def print_physical_limits():
    """The limits a migration meets on this machine, measured in the same run as it."""
    loopback, memcpy = loopback_limit_mib_s(), memcpy_limit_mib_s()
    print(f"This machine now: loopback TCP, one plain sender {loopback:.0f} MiB/s; memcpy, one core {memcpy:.0f} MiB/s",
          flush=True)
    return loopback, memcpy
