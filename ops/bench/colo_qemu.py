"""QEMU 7.2 COLO (COarse-grained LOck-stepping) on this machine: how long it pauses the guest per checkpoint.

measure_colo(guest_elf, tmpdir, seconds, checkpoint_ms) boots the test guest twice under QEMU (-M microvm),
a COLO primary and a COLO secondary (started with -incoming), turns on the x-colo migration capability on
both, sets x-checkpoint-delay on the primary and migrates it to the secondary over 127.0.0.1; at the end of
that migration both enter COLO and the primary checkpoints into the secondary every x-checkpoint-delay ms.
After the first checkpoint (it copies the whole of guest memory into the secondary's RAM cache: not
typical, reported apart) it lets COLO run `seconds` and kills both.

COLO needs neither block replication nor the colo-compare / filter-mirror / filter-redirector network
filters when the guest has no disk and no NIC: the checkpoint loop then runs on the x-checkpoint-delay
timer alone. The guest's own console goes to the primary's stdout (a serial chardev on stdio).

The pause comes from QEMU itself: both QEMUs run with `-trace` (events vm_state_notify, colo_*) and
`-msg timestamp=on`, which stamps each trace line with gettimeofday() in microseconds. A checkpoint's pause
is, on the primary, from `vm_state_notify running 0 reason 15 (colo)` (written by vm_stop_force_state
(RUN_STATE_COLO) once every vCPU has stopped) to the next `vm_state_notify running 1` (written by vm_start
just before the vCPUs are resumed). In between: the device state is saved, dirty RAM and the device state
go to the secondary, and the primary waits for the secondary's "vmstate-received" and "vmstate-loaded".
(The vCPUs stop a little before the first event and resume a little after the second: about 0.1-0.2 ms
here, from the 'checkpoint-reply' that precedes vm_stop.) Percentiles follow tandem's rule
(sorted[int(q * (n - 1))]), over every checkpoint in the window. The guest's view is reported too:
the gaps between its "tick N" lines as a reader of the primary's stdout sees them.

transport:
  "tcp"          QEMU's own sockets: -incoming tcp:127.0.0.1:PORT, migrate tcp:127.0.0.1:PORT. QEMU 7.2
                 does not set TCP_NODELAY on them, and the checkpoint's small messages then wait for
                 delayed ACKs (Nagle): about 2 x 40 ms of every pause on Linux loopback.
  "tcp-nodelay"  the same over a TCP connection on 127.0.0.1 that this module opens with TCP_NODELAY on
                 both ends and hands over: the secondary as -incoming fd:N, the primary through QMP getfd
                 and migrate fd:NAME. Everything else is identical.

A call takes `seconds` plus about 1.5 s (boot, the first migration, the first checkpoint).
Ports: 18000-18099 only. Usage: colo_qemu.py GUEST_ELF [--seconds S] [--checkpoint-ms MS]
[--transport tcp|tcp-nodelay] [--append STR]; prints the figures as one line of JSON.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import Console, QEMU_CPU, Qmp, read_trace  # noqa: E402

PORTS = range(18000, 18100)
COUNTER = "job=counter rate=100"
READY = "tandem-guest: ready"
FILLED = "dirty: working set filled"
TRACE_EVENTS = ["vm_state_notify", "colo_vm_state_change", "colo_send_message", "colo_receive_message",
                "colo_flush_ram_cache_begin", "colo_flush_ram_cache_end"]
TICK = re.compile(r"tick (\d+)")
RUNSTATE_COLO = "reason 15 (colo)"
BOOT_TIMEOUT_S = 300  # job=dirty fills its working set first: slow on software virtualization
COLO_TIMEOUT_S = 120  # the first migration plus the first (full) checkpoint


class ColoError(RuntimeError):
    """COLO did not come up or did not last; the message ends with both QEMUs' last stderr lines."""


def quantile(values, q):
    """tandem's rule (primary/replicator.cpp): sorted[int(q * (n - 1))]."""
    values = sorted(values)
    return values[int(q * (len(values) - 1))] if values else None


def free_port():
    for port in PORTS:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port in 18000-18099 on 127.0.0.1")


def connected_pair():
    """Two ends of one TCP connection on 127.0.0.1 (port in 18000-18099), both with TCP_NODELAY."""
    for port in PORTS:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("127.0.0.1", port))
        except OSError:
            listener.close()
            continue
        try:
            listener.listen(1)
            client = socket.create_connection(("127.0.0.1", port), timeout=10)
            server, _ = listener.accept()
        finally:
            listener.close()
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.settimeout(None)
        return port, client, server
    raise RuntimeError("no free port in 18000-18099 on 127.0.0.1")


def checkpoints(events):
    """Every COLO checkpoint on the primary, in order: a dict of its moments (s)."""
    done, current = [], None
    for t, name, args in events:
        if name == "vm_state_notify" and args.startswith("running 0") and RUNSTATE_COLO in args:
            current = {"stop": t}
        elif current is None:
            continue
        elif name == "colo_send_message" and "'vmstate-size'" in args:
            current["sent"] = t
        elif name == "colo_receive_message" and "'vmstate-received'" in args:
            current["received"] = t
        elif name == "colo_receive_message" and "'vmstate-loaded'" in args:
            current["loaded"] = t
        elif name == "vm_state_notify" and args.startswith("running 1"):
            current["run"] = t
            done.append(current)
            current = None
    return done


def initial_downtime_ms(events):
    """The first migration's own stop (finish-migrate) until COLO first lets the guest run."""
    stop = None
    for t, name, args in events:
        if name == "vm_state_notify" and "(finish-migrate)" in args and args.startswith("running 0"):
            stop = t
        elif stop is not None and name == "vm_state_notify" and args.startswith("running 1"):
            return (t - stop) * 1000
    return None


def tail(path, lines=4):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-lines:])
    except OSError:
        return ""


def stop_process(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def measure_colo(guest_elf: str, tmpdir: str, seconds: float = 10.0, checkpoint_ms: int = 25,
                 append: str = COUNTER, transport: str = "tcp") -> dict:
    if transport not in ("tcp", "tcp-nodelay"):
        raise ValueError("transport: tcp or tcp-nodelay")
    started = time.monotonic()
    work = tempfile.mkdtemp(prefix="colo-", dir=tmpdir)
    try:
        return _measure(work, started, guest_elf, seconds, checkpoint_ms, append, transport)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _measure(work, started, guest_elf, seconds, checkpoint_ms, append, transport):
    path = lambda name: os.path.join(work, name)  # noqa: E731
    with open(path("events"), "w") as f:
        f.write("\n".join(TRACE_EVENTS) + "\n")
    ready = FILLED if "job=dirty" in append else READY

    def qemu(role, console, extra):
        return ["qemu-system-x86_64", "-M", "microvm", "-enable-kvm", *QEMU_CPU, "-m", "256M", "-smp", "1", "-nodefaults",
                "-no-user-config", "-display", "none", "-chardev", console, "-serial", "chardev:con",
                "-kernel", guest_elf, "-append", append, "-qmp", f"unix:{path(role + '.qmp')},server=on,wait=off",
                "-msg", "timestamp=on", "-trace", f"events={path('events')},file={path(role + '.trace')}"] + extra

    procs, sockets, qmps = [], [], []
    try:
        if transport == "tcp":
            port = free_port()
            incoming = outgoing = f"tcp:127.0.0.1:{port}"
            pass_fds = ()
        else:
            port, client, server = connected_pair()
            sockets += [client, server]
            incoming, outgoing, pass_fds = f"fd:{server.fileno()}", "fd:colo", (server.fileno(),)
        with open(path("secondary.err"), "wb") as err:
            secondary = subprocess.Popen(qemu("secondary", f"file,id=con,path={path('secondary.console')}",
                                              ["-incoming", incoming]),
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=err, pass_fds=pass_fds)
        procs.append(secondary)
        if transport == "tcp-nodelay":
            server.close()  # the secondary holds its own copy
        with open(path("primary.err"), "wb") as err:
            primary = subprocess.Popen(qemu("primary", "stdio,id=con,signal=off", []),
                                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        procs.append(primary)
        console = Console(primary, clock=time.time)  # stamps comparable with QEMU's trace

        def failed(what):
            return ColoError(f"{what} [primary: {tail(path('primary.err'))}] "
                             f"[secondary: {tail(path('secondary.err'))}]")

        try:
            qs = Qmp(path("secondary.qmp"))
            qmps.append(qs)
            qp = Qmp(path("primary.qmp"))
            qmps.append(qp)
            colo = [{"capability": "x-colo", "state": True}]
            qs.execute("migrate-set-capabilities", capabilities=colo)
            console.wait_for(ready, BOOT_TIMEOUT_S)
            qp.execute("migrate-set-capabilities", capabilities=colo)
            qp.execute("migrate-set-parameters", **{"x-checkpoint-delay": checkpoint_ms})
            if transport == "tcp-nodelay":
                qp.execute("getfd", fd=client.fileno(), fdname="colo")
                client.close()
            qp.execute("migrate", uri=outgoing)
            # COLO begins when the first migration ends; the first checkpoint then copies all of RAM.
            deadline = time.monotonic() + COLO_TIMEOUT_S
            while True:
                status = qp.execute("query-migrate").get("status")
                if status in ("failed", "cancelled", "completed"):
                    raise failed(f"the migration into COLO ended '{status}'")
                if status == "colo" and len(checkpoints(read_trace(path("primary.trace")))) >= 1:
                    break
                if time.monotonic() > deadline:
                    raise failed(f"no COLO checkpoint within {COLO_TIMEOUT_S} s (status '{status}')")
                time.sleep(0.05)
            began = time.time()
            time.sleep(seconds)
            ended = time.time()
            status = qp.execute("query-migrate").get("status")
            colo_status = qp.execute("query-colo-status")
            if status != "colo" or colo_status.get("mode") != "primary":
                raise failed(f"COLO stopped during the run: query-migrate '{status}', query-colo-status {colo_status}")
        except ColoError:
            raise
        except Exception as e:
            raise failed(str(e)) from e
        lines, _ = console.snapshot()
    finally:
        for q in qmps:
            q.close()
        for s in sockets:
            s.close()
        for p in reversed(procs):  # the primary first: the secondary then only sees its peer go
            stop_process(p)

    events = read_trace(path("primary.trace"))
    all_checkpoints = checkpoints(events)
    window = [c for c in all_checkpoints if c["stop"] >= began and c["run"] <= ended]
    if not window:
        raise RuntimeError(f"no COLO checkpoint completed in {seconds} s (QEMU's trace: {len(events)} events)")
    pauses = [(c["run"] - c["stop"]) * 1000 for c in window]
    phase = lambda a, b: quantile([(c[b] - c[a]) * 1000 for c in window if a in c and b in c], 0.5)  # noqa: E731
    flushes = [(t, int(args.split()[-1])) for t, name, args in read_trace(path("secondary.trace"))
               if name == "colo_flush_ram_cache_begin"]
    dirty = [n for t, n in flushes if began <= t <= ended]
    ticks = []
    for t, text in lines:
        m = TICK.fullmatch(text)
        if m and began <= t <= ended:
            ticks.append((t, int(m.group(1))))
    gaps = [(b[0] - a[0]) * 1000 for a, b in zip(ticks, ticks[1:])]
    missing = sum(b[1] - a[1] - 1 for a, b in zip(ticks, ticks[1:]) if b[1] > a[1] + 1)
    repeated = sum(a[1] - b[1] + 1 for a, b in zip(ticks, ticks[1:]) if b[1] <= a[1])
    window_s = ended - began
    first = all_checkpoints[0]
    r = lambda v, d=3: None if v is None else round(v, d)  # noqa: E731
    return {
        "vmm": "qemu-colo",
        "qemu": subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                               text=True).stdout.splitlines()[0],
        "transport": transport,
        "port": port,
        "checkpoint_ms": checkpoint_ms,
        "append": append,
        "window_s": r(window_s),
        "checkpoints": len(window),
        "checkpoints_per_s": r(len(window) / window_s, 2),
        "pause_p50_ms": r(quantile(pauses, 0.5)),
        "pause_p99_ms": r(quantile(pauses, 0.99)),
        "pause_min_ms": r(min(pauses)),
        "pause_max_ms": r(max(pauses)),
        "pause_mean_ms": r(sum(pauses) / len(pauses)),
        "paused_fraction": r(sum(pauses) / 1000 / window_s),
        # where the pause goes (medians): save and send, wait for "vmstate-received", wait for
        # "vmstate-loaded" (the secondary loads the state), then restart
        "phase_send_p50_ms": r(phase("stop", "sent")),
        "phase_received_p50_ms": r(phase("sent", "received")),
        "phase_loaded_p50_ms": r(phase("received", "loaded")),
        "phase_restart_p50_ms": r(phase("loaded", "run")),
        # pages the secondary copies from its RAM cache into its guest per checkpoint
        # (colo_flush_ram_cache_begin): those the primary sent plus those the secondary's own run dirtied
        "dirty_pages_p50": quantile(dirty, 0.5),
        "first_checkpoint_ms": r((first["run"] - first["stop"]) * 1000),
        "first_checkpoint_dirty_pages": flushes[0][1] if flushes else None,
        "initial_migration_downtime_ms": r(initial_downtime_ms(events)),
        "guest_ticks": len(ticks),
        "guest_ticks_per_s": r(len(ticks) / window_s, 1),
        "guest_tick_gap_p50_ms": r(quantile(gaps, 0.5)),
        "guest_tick_gap_p99_ms": r(quantile(gaps, 0.99)),
        "guest_tick_gap_max_ms": r(max(gaps) if gaps else None),
        "guest_ticks_missing": missing,
        "guest_ticks_repeated": repeated,
        "pause_basis": "QEMU trace on the primary: vm_state_notify 'running 0 (colo)' to the next 'running 1', "
                       "gettimeofday stamps (-msg timestamp=on); the first (full-RAM) checkpoint excluded",
        "elapsed_s": r(time.monotonic() - started, 1),
    }


def main(argv):
    import argparse
    parser = argparse.ArgumentParser(description="QEMU 7.2 COLO checkpoint pause on this machine (one JSON line)")
    parser.add_argument("guest")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--checkpoint-ms", type=int, default=25)
    parser.add_argument("--transport", choices=("tcp", "tcp-nodelay"), default="tcp")
    parser.add_argument("--append", default=COUNTER, help=f"guest command line (default '{COUNTER}'; "
                                                          "or e.g. 'job=dirty mib=64 rate=4000 tick=100')")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tandem-colo-") as tmp:
        figures = measure_colo(args.guest, tmp, args.seconds, args.checkpoint_ms, args.append, args.transport)
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
