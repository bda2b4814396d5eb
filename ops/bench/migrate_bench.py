"""Driver for ops/bench/migrate: live migration, tandem vs QEMU 7.2 (-M microvm), same guest file.

Usage: migrate_bench.py TANDEM GUEST_ELF RUNS
Environment, for a quicker look: MIGRATE_BENCH_CASES / MIGRATE_BENCH_VMMS, comma-separated
substrings of the case and VMM names to run (default: all).

For every case and every VMM it migrates a freshly booted guest over 127.0.0.1 and records:
  total     the migration's total time as the VMM reports it
  downtime  the downtime as the VMM reports it (QEMU: in whole ms, from its vCPUs' stop on the source
            to the end of the migration there, not including the destination's load and start)
  stop->run the source's vCPUs all stopped to the target letting its vCPUs go, from each VMM's own
            marks on both sides, stamped in microseconds by this host's clock: QEMU's trace event
            vm_state_notify (-msg timestamp=on: "running 0" after its vCPUs paused, "running 1" before
            they resume); tandem's paused_at (its reply) and the target's "vCPUs run here since" line.
            (tandem's downtime also counts its pause and the Running message's way back.)
  gap       the largest gap between consecutive "tick N" lines as an outside reader sees them:
            the source's stdout, then the target's, each line stamped when it arrives here
  bytes     bytes on the wire as the VMM reports them
"""
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import (Console, QEMU_CPU, Qmp, fmt, print_physical_limits, read_trace, run_benchmark, stop,  # noqa: E402
                          unix_request)

TANDEM, GUEST, RUNS = sys.argv[1], sys.argv[2], int(sys.argv[3])
TANDEM_PORT = 23456  # the standby also listens on PORT + 1 (its urgent channel)
QEMU_PORT = 23460
TICKS_PER_S = 100
QEMU_TIMEOUT_S = 60  # QEMU's precopy may never converge: cancel it then
DOWNTIME_LIMIT_MS = 300  # tandem's --max-downtime-ms and QEMU's downtime-limit, both by default
TANDEM_MAX_ROUNDS = 30  # tandem's --max-rounds by default: stopping at it means it did not converge
CAP_128 = 128 << 20  # QEMU's default max-bandwidth, bytes/s
MIB = 1 << 20

# (name, memory, guest command line, line that says the workload runs, pages/s asked for or None)
FILLED = "dirty: working set filled"
# Dirty guests write whole pages of text (about 2.5x smaller under lz4, as logs or documents),
# and in one case random bytes no compressor shrinks.
CASES = [
    ("1 GiB idle", "1G", f"job=counter rate={TICKS_PER_S}", "tandem-guest: ready", None),
    ("4 GiB idle", "4G", f"job=counter rate={TICKS_PER_S}", "tandem-guest: ready", None),
] + [
    (f"512 MiB text dirtied at {label} pages/s", "1G", f"job=dirty mib=512 rate={rate} tick={TICKS_PER_S} fill=text",
     FILLED, rate)
    for label, rate in (("1k", 1000), ("10k", 10000), ("50k", 50000), ("max", 0))
] + [
    ("512 MiB random dirtied at 1k pages/s", "1G", f"job=dirty mib=512 rate=1000 tick={TICKS_PER_S} fill=random",
     FILLED, 1000),
]
MAX_CASE = "512 MiB text dirtied at max pages/s"
INCOMPRESSIBLE_CASE = "512 MiB random dirtied at 1k pages/s"

# (name, kind, settings)
VMMS = [
    ("tandem precopy", "tandem", {"mode": "precopy"}),
    ("tandem pre+prealloc", "tandem", {"mode": "precopy", "prealloc": True}),
    ("tandem postcopy", "tandem", {"mode": "postcopy"}),
    ("tandem hybrid", "tandem", {"mode": "hybrid"}),
    ("qemu default", "qemu", {}),
    ("qemu unlimited", "qemu", {"unlimited": True}),
    ("qemu multifd 2", "qemu", {"unlimited": True, "multifd": 2}),
    ("qemu unlim+prealloc", "qemu", {"unlimited": True, "prealloc": True}),
]
CAPPED = ("tandem pre@128MiB/s", "tandem", {"mode": "precopy", "max_bandwidth": CAP_128})
QEMU_NAMES = [name for name, kind, _ in VMMS if kind == "qemu"]
# The goal compares like with like: a target that allocates memory as pages arrive against QEMU's
# destinations that do the same, a preallocated one against QEMU's -mem-prealloc.
GOAL_PAIRS = [("tandem precopy", ["qemu default", "qemu unlimited", "qemu multifd 2"]),
              ("tandem pre+prealloc", ["qemu unlim+prealloc"])]

TICK = re.compile(r"tick (\d+)")
STATS = re.compile(r"stats job=dirty pages=\d+ written=(\d+)")

procs = []  # every process started, killed at the end whatever happens


def start(args, tmp, name, stdin=subprocess.DEVNULL, env=None):
    err = open(os.path.join(tmp, name + ".err"), "wb")
    proc = subprocess.Popen(args, stdin=stdin, stdout=subprocess.PIPE, stderr=err, env=env)
    err.close()
    procs.append(proc)
    return proc, Console(proc)


def stderr_tail(tmp, name, lines=5):
    try:
        with open(os.path.join(tmp, name + ".err"), errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-lines:])
    except OSError:
        return ""


def measure_dirty_rate(proc, console):
    """Pages/s the guest writes, from its "stats" line asked for twice, a second apart."""
    samples = []
    for _ in range(2):
        mark = len(console.snapshot()[0])
        proc.stdin.write(b"stats\n")
        proc.stdin.flush()
        _, t, text = console.wait_for("stats job=dirty", 5, after=mark)
        samples.append((t, int(STATS.search(text).group(1))))
        if len(samples) == 1:
            time.sleep(1)
    (t0, w0), (t1, w1) = samples
    return (w1 - w0) / (t1 - t0)


def settle(proc, console, ready, rate):
    console.wait_for(ready, 300)
    if rate is None:
        time.sleep(1)
        return None
    return measure_dirty_rate(proc, console)


def console_gap(source, target, began, ended):
    """The largest gap between ticks around the migration, as a reader of the source's stdout and
    then the target's sees it; a line the source left unfinished is finished by the target's first.
    Returns (gap ms, where it was, problems)."""
    src_lines, src_rest = source.snapshot()
    dst_lines, _ = target.snapshot()
    if src_rest and dst_lines:
        dst_lines[0] = (dst_lines[0][0], src_rest + dst_lines[0][1])
    ticks = []
    for side, lines in (("source", src_lines), ("target", dst_lines)):
        for t, text in lines:
            m = TICK.fullmatch(text.strip("\r"))
            if m and began - 0.5 <= t <= ended + 1.5:
                ticks.append((t, int(m.group(1)), side))
    problems = []
    if not any(side == "target" for _, _, side in ticks):
        problems.append("no tick from the target")
    if not any(side == "source" for _, _, side in ticks):
        problems.append("no tick from the source")
    missing = repeated = 0
    for (_, a, _), (_, b, _) in zip(ticks, ticks[1:]):
        if b <= a:
            repeated += a - b + 1
        elif b > a + 1:
            missing += b - a - 1
    if missing:
        problems.append(f"{missing} tick(s) missing")
    if repeated:
        problems.append(f"{repeated} tick(s) repeated or out of order")
    if len(ticks) < 2:
        return None, None, problems
    a, b = max(zip(ticks, ticks[1:]), key=lambda pair: pair[1][0] - pair[0][0])
    side = a[2] if a[2] == b[2] else "switch"
    return (b[0] - a[0]) * 1000, f"{side} {a[0] - began:+.2f}s", problems


def wait_for_log(tmp, name, text, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(os.path.join(tmp, name + ".err"), errors="replace") as f:
            if text in f.read():
                return
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not log '{text}' within {timeout} s")


def utc_seconds(text):
    """Seconds since the epoch of tandem's "2026-11-23T13:28:48.123456Z"."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def tandem_stop_to_run(tmp, reply):
    """ms from the source's vCPUs all parked (its reply's paused_at) to the target letting its vCPUs go."""
    with open(os.path.join(tmp, "target.err"), errors="replace") as f:
        m = re.search(r"vCPUs run here since (\S+)", f.read())
    if not m or "paused_at" not in reply:
        return None
    return (utc_seconds(m.group(1)) - utc_seconds(reply["paused_at"])) * 1000


def run_tandem(tmp, memory, append, ready, rate, settings):
    endpoint = f"tcp://127.0.0.1:{TANDEM_PORT}"
    sock = os.path.join(tmp, "source.sock")
    prealloc = ["--prealloc", memory] if settings.get("prealloc") else []
    target, target_console = start([TANDEM, "standby", "--listen", endpoint] + prealloc, tmp, "target",
                                   env={**os.environ, "TANDEM_LOG": "info"})
    source, source_console = start([TANDEM, "run", "--kernel", GUEST, "--memory", memory, "--control", sock,
                                    "--append", append], tmp, "source", stdin=subprocess.PIPE)
    try:
        wait_for_log(tmp, "target", "standby listening", 60)  # (after --prealloc, as QEMU's target is waited for)
        measured = settle(source, source_console, ready, rate)
        request = {"cmd": "migrate", "to": endpoint, **{k: v for k, v in settings.items() if k != "prealloc"}}
        began = time.monotonic()
        reply = unix_request(sock, request, timeout=600)
        ended = time.monotonic()
        time.sleep(1)
        if not reply.get("ok"):
            return {"error": reply.get("error", "failed"), "rate": measured}
        gap, where, problems = console_gap(source_console, target_console, began, ended)
        return {"total": reply["total_ms"], "downtime": reply["downtime_ms"], "stop_run": tandem_stop_to_run(tmp, reply),
                "bytes": reply["bytes"], "gap": gap,
                "where": where, "problems": problems, "rate": measured, "rounds": reply.get("rounds"),
                "converged": reply.get("rounds", 0) < TANDEM_MAX_ROUNDS and reply["downtime_ms"] <= DOWNTIME_LIMIT_MS,
                "postcopy": reply.get("postcopy", False)}
    except Exception as e:
        return {"error": f"{e} [source: {stderr_tail(tmp, 'source')}] [target: {stderr_tail(tmp, 'target')}]"}
    finally:
        stop(source)
        stop(target)


def qemu_command(memory, append, qmp, trace, extra):
    return ["qemu-system-x86_64", "-M", "microvm", "-enable-kvm", *QEMU_CPU, "-m", memory, "-smp", "1", "-nodefaults",
            "-no-user-config", "-nographic", "-display", "none", "-serial", "stdio", "-kernel", GUEST,
            "-append", append, "-qmp", f"unix:{qmp},server=on,wait=off",
            "-msg", "timestamp=on", "-trace", f"events={trace[0]},file={trace[1]}"] + extra


def traced_stop_to_run(source_trace, target_trace):
    """ms from the source's vCPUs stopping (its last 'running 0') to the target's first 'running 1'."""
    stops = [t for t, name, args in read_trace(source_trace) if name == "vm_state_notify" and args.startswith("running 0")]
    runs = [t for t, name, args in read_trace(target_trace) if name == "vm_state_notify" and args.startswith("running 1")]
    return (runs[0] - stops[-1]) * 1000 if stops and runs else None


def run_qemu(tmp, memory, append, ready, rate, settings):
    qs, qd = os.path.join(tmp, "qs.sock"), os.path.join(tmp, "qd.sock")
    events = os.path.join(tmp, "events")
    with open(events, "w") as f:
        f.write("vm_state_notify\n")
    traces = {role: (events, os.path.join(tmp, role + ".trace")) for role in ("source", "target")}
    multifd = settings.get("multifd")
    incoming = "defer" if multifd else f"tcp:127.0.0.1:{QEMU_PORT}"  # multifd is set on both sides first
    extra = ["-incoming", incoming] + (["-mem-prealloc"] if settings.get("prealloc") else [])
    target, target_console = start(qemu_command(memory, append, qd, traces["target"], extra), tmp, "target")
    source, source_console = start(qemu_command(memory, append, qs, traces["source"], []), tmp, "source",
                                   stdin=subprocess.PIPE)
    try:
        target_qmp = Qmp(qd)  # the target is up (and done preallocating) before anything is timed
        if multifd:
            target_qmp.execute("migrate-set-capabilities", capabilities=[{"capability": "multifd", "state": True}])
            target_qmp.execute("migrate-set-parameters", **{"multifd-channels": multifd})
            target_qmp.execute("migrate-incoming", uri=f"tcp:127.0.0.1:{QEMU_PORT}")
        target_qmp.close()
        measured = settle(source, source_console, ready, rate)
        qmp = Qmp(qs)
        if settings.get("unlimited"):
            qmp.execute("migrate-set-parameters", **{"max-bandwidth": 64 << 30})
        if multifd:
            qmp.execute("migrate-set-capabilities", capabilities=[{"capability": "multifd", "state": True}])
            qmp.execute("migrate-set-parameters", **{"multifd-channels": multifd})
        began = time.monotonic()
        qmp.execute("migrate", uri=f"tcp:127.0.0.1:{QEMU_PORT}")
        cancelled = False
        progress = {}  # the last figures while it ran: a cancelled migration reports none
        while True:
            info = qmp.execute("query-migrate")
            if info.get("status") in ("completed", "failed", "cancelled"):
                break
            if "ram" in info:
                progress = info
            if not cancelled and time.monotonic() - began > QEMU_TIMEOUT_S:
                qmp.execute("migrate_cancel")
                cancelled = True
            time.sleep(0.01)
        ended = time.monotonic()
        time.sleep(1)
        rounds = info.get("ram", {}).get("dirty-sync-count")
        if info["status"] != "completed":
            if cancelled:
                ram = progress.get("ram", {})
                return {"dnf": True, "rate": measured, "rounds": ram.get("dirty-sync-count"),
                        "bytes": ram.get("transferred"), "expected": progress.get("expected-downtime")}
            return {"error": f"QEMU says {info.get('status')}: {info.get('error-desc', '')}", "rate": measured}
        gap, where, problems = console_gap(source_console, target_console, began, ended)
        stop_run = traced_stop_to_run(traces["source"][1], traces["target"][1])
        return {"total": info["total-time"], "downtime": info.get("downtime"), "stop_run": stop_run,
                "bytes": info["ram"]["transferred"],
                "gap": gap, "where": where, "problems": problems, "rate": measured, "rounds": rounds,
                "converged": info.get("downtime", 1e9) <= DOWNTIME_LIMIT_MS}
    except Exception as e:
        return {"error": f"{e} [source: {stderr_tail(tmp, 'source')}] [target: {stderr_tail(tmp, 'target')}]"}
    finally:
        stop(source)
        stop(target)


def describe(r):
    if "error" in r:
        return f"FAILED: {r['error']}"
    rate = f"  guest ~{r['rate'] / 1000:.1f}k pages/s" if r.get("rate") is not None else ""
    if r.get("dnf"):
        expected = f", expected downtime {r['expected']} ms" if r.get("expected") is not None else ""
        return (f"did not converge within {QEMU_TIMEOUT_S} s (cancelled after {r.get('rounds')} rounds, "
                f"{(r.get('bytes') or 0) / MIB:.0f} MiB sent{expected}){rate}")
    extra = f"  rounds {r['rounds']:3d}" if r.get("rounds") is not None else ""
    if r.get("postcopy"):
        extra += " (went postcopy)"
    warn = f"  WARNING: {'; '.join(r['problems'])}" if r.get("problems") else ""
    where = f" ({r['where']})" if r.get("where") else ""
    return (f"total {fmt(r['total'], 8)} ms  downtime {fmt(r['downtime'], 7)} ms  stop->run {fmt(r.get('stop_run'), 7, 2)} ms"
            f"  gap {fmt(r['gap'], 7)} ms"
            f"{where:17s}  "
            f"{r['bytes'] / MIB:8.1f} MiB{extra}{rate}{warn}")


def median_of(runs):
    """Medians of the completed runs: dict with total, downtime, gap, bytes (None if none completed)."""
    done = [r for r in runs if "error" not in r and not r.get("dnf")]
    out = {"done": len(done), "runs": len(runs), "dnf": sum(1 for r in runs if r.get("dnf")),
           "failed": sum(1 for r in runs if "error" in r)}
    for key in ("total", "downtime", "stop_run", "gap", "bytes", "rounds"):
        values = [r[key] for r in done if r.get(key) is not None]
        out[key] = statistics.median(values) if values else None
    rates = [r["rate"] for r in runs if r.get("rate") is not None]
    out["rate"] = statistics.median(rates) if rates else None
    return out


def ratio(a, b, key, mark):
    """tandem/QEMU medians as text: '*' after it when it is at most 0.5 (the goal)."""
    t, q = a[key], b[key]
    if t is None:
        return "fail"
    if q is None:
        return "q-dnf" if b["dnf"] else "q-fail"
    if q <= 0:
        return "n/a"
    r = t / q
    return f"{r:5.2f}{'*' if mark and r <= 0.5 else ' '}"


def meets_goal(a, b):
    """tandem's total and downtime (source stop to target running, measured alike) at most half of
    QEMU's, or QEMU never converged."""
    if b["done"] == 0:
        return b["dnf"] > 0 and a["done"] > 0
    return all(a[k] is not None and b[k] is not None and b[k] > 0 and a[k] / b[k] <= 0.5 for k in ("total", "stop_run"))


def best_of(med, names, key):
    values = [med[q][key] for q in names if q in med and med[q][key] is not None and med[q][key] > 0]
    return min(values) if values else None


def summary(case_results, loopback):
    print()
    print("=" * 100)
    print(f"Summary: medians over {RUNS} run(s). total and downtime as each VMM reports them; stop->run = the "
          "source's vCPUs\nstopped to the target's running (each VMM's marks, on both sides); gap = largest "
          f"gap between\n'tick' lines ({TICKS_PER_S}/s, so {1000 // TICKS_PER_S} ms when nothing stops) seen "
          "by a reader of the source's then the target's stdout;\nMiB on the wire. Ratios are tandem/QEMU; "
          "'*' = at most 0.5 (the goal); q-dnf = QEMU never converged (cancelled\nafter "
          f"{QEMU_TIMEOUT_S} s); fail / q-fail = no run completed.")
    goal = {}  # tandem variant -> [cases met, cases, names of the cases missed]
    best_goal = [0, 0, []]  # tandem precopy against the best QEMU figure of every variant
    throughput_line = None
    for (name, _, _, _, asked), results in case_results:
        med = {vmm: median_of(runs) for vmm, runs in results.items()}
        print()
        rates = [m["rate"] for m in med.values() if m["rate"] is not None]
        head = f"-- {name}"
        if rates:
            head += f"  (the guest wrote {statistics.median(rates) / 1000:.1f}k pages/s when asked for "
            head += f"{asked / 1000:.0f}k" if asked else "as fast as it can"
            head += "; one vCPU cannot go faster than that)" if asked is None or asked == 0 or \
                statistics.median(rates) < 0.8 * asked else ")"
        print(head)
        print(f"   {'':22s}{'total ms':>10s}{'downtime ms':>13s}{'stop->run':>11s}{'gap ms':>9s}{'MiB':>9s}"
              f"{'rounds':>8s}  note")
        for vmm, m in med.items():
            note = []
            if m["dnf"]:
                note.append(f"did not converge in {m['dnf']}/{m['runs']} run(s)")
            if m["failed"]:
                note.append(f"FAILED {m['failed']}/{m['runs']}")
            if vmm == CAPPED[0] and m["done"]:
                runs = [r for r in results[vmm] if "error" not in r]
                conv = sum(1 for r in runs if r.get("converged"))
                note.append(f"converged within {DOWNTIME_LIMIT_MS} ms in {conv}/{len(runs)} run(s)")
            if vmm == "qemu default" and name == MAX_CASE and m["done"]:
                conv = sum(1 for r in results[vmm] if r.get("converged"))
                note.append(f"converged within {DOWNTIME_LIMIT_MS} ms in {conv}/{m['runs']} run(s)")
            print(f"   {vmm:22s}{fmt(m['total'], 10)}{fmt(m['downtime'], 13)}{fmt(m['stop_run'], 11, 2)}{fmt(m['gap'], 9)}"
                  f"{fmt(m['bytes'] / MIB if m['bytes'] is not None else None, 9)}{fmt(m['rounds'], 8, 0)}  "
                  f"{', '.join(note)}")
        qemus = [q for q in QEMU_NAMES if q in med]
        tandems = [t for t in med if t.startswith("tandem")]
        if not qemus or not tandems:
            continue
        print(f"   tandem/QEMU {'':10s}" + "".join(f"{'vs ' + q:>36s}" for q in qemus))
        print(f"   {'':22s}" + "".join(f"{'total':>7s}{'down':>7s}{'s->r':>7s}{'gap':>7s}{'bytes':>7s} " for _ in qemus))
        for t in tandems:
            row = f"   {t:22s}"
            for q in qemus:
                row += "".join(ratio(med[t], med[q], key, key != "bytes").rjust(7)
                               for key in ("total", "downtime", "stop_run", "gap", "bytes"))
                row += " "
            print(row)
        best = {k: best_of(med, qemus, k) for k in ("total", "stop_run")}
        if "tandem precopy" in med and all(best.values()):
            t = med["tandem precopy"]
            best_goal[1] += 1
            if all(t[k] is not None and t[k] / best[k] <= 0.5 for k in best):
                best_goal[0] += 1
            else:
                best_goal[2].append(name)
            print(f"   tandem precopy against the best QEMU figure: total {fmt(t['total'], 1)} / {fmt(best['total'], 1)} ms, "
                  f"stop->run {fmt(t['stop_run'], 1, 2)} / {fmt(best['stop_run'], 1, 2)} ms")
        if name == INCOMPRESSIBLE_CASE and "tandem precopy" in med and med["tandem precopy"]["total"]:
            t = med["tandem precopy"]
            mib_s = t["bytes"] / MIB / (t["total"] / 1000)
            throughput_line = (f"Migration throughput on incompressible memory (tandem precopy, {name}): {mib_s:.0f} MiB/s "
                               f"on the wire = {100 * mib_s / loopback:.0f}% of the loopback limit measured in this run "
                               f"({loopback:.0f} MiB/s); goal at least 70%: {'met' if mib_s >= 0.7 * loopback else 'NOT met'}")
        for t, against in GOAL_PAIRS:
            against = [q for q in against if q in med]
            if t in med and against:
                g = goal.setdefault(t, [0, 0, []])
                g[1] += 1
                if all(meets_goal(med[t], med[q]) for q in against):
                    g[0] += 1
                else:
                    g[2].append(name)
    if goal:
        print()
        print("Goal, like for like (total and stop->run at most half of QEMU's, or QEMU never converged; 'down' "
              "above\ncompares what each reports: QEMU's leaves out its destination's start, tandem's counts its "
              "pause and the\nRunning message's way back):")
        for t, against in GOAL_PAIRS:
            if t in goal:
                met, cases, missed = goal[t]
                print(f"   {t:22s} against {' and '.join(against)}: met in {met}/{cases} case(s)"
                      + (f"; not in: {'; '.join(missed)}" if missed else ""))
    if best_goal[1]:
        met, cases, missed = best_goal
        print(f"Goal, tandem precopy at most half of the best QEMU figure (any of {', '.join(QEMU_NAMES)}) for total "
              f"and stop->run: {'met' if met == cases else 'NOT met'} (met in {met}/{cases} case(s))"
              + (f"; not in: {'; '.join(missed)}" if missed else ""))
    if throughput_line:
        print(throughput_line)


def main():
    case_filter = [s.strip() for s in os.environ.get("MIGRATE_BENCH_CASES", "").split(",") if s.strip()]
    vmm_filter = [s.strip() for s in os.environ.get("MIGRATE_BENCH_VMMS", "").split(",") if s.strip()]
    cases = [c for c in CASES if not case_filter or any(f in c[0] for f in case_filter)]
    print(f"Live migration over 127.0.0.1, tandem vs QEMU 7.2 -M microvm, 1 vCPU, guest {os.path.basename(GUEST)}, "
          f"{RUNS} run(s) per VMM per case.\ntandem: the standby on port {TANDEM_PORT} (+1), defaults (max downtime "
          f"{DOWNTIME_LIMIT_MS} ms, {TANDEM_MAX_ROUNDS} rounds, no bandwidth cap) unless said. QEMU: port {QEMU_PORT}, "
          f"default = max-bandwidth 128 MiB/s, unlimited = 64 GiB/s,\nmultifd 2 = unlimited over 2 multifd channels, unlim+prealloc = unlimited and -mem-prealloc "
          f"on the destination. Dirty guests: 1 vCPU writes at most ~30-40k pages/s, so '50k' and 'max' both\nmean "
          f"as fast as it can; the rate the guest really wrote just before the migration is measured from its "
          f"'stats' line.\nPer run: the largest console gap is followed by where it was (on the source, on the "
          f"target, or across the switch)\nand when it began, from the start of the migration; QEMU reports times "
          f"in whole ms.", flush=True)
    loopback, _ = print_physical_limits()
    case_results = []
    for case in cases:
        name, memory, append, ready, rate = case
        vmms = VMMS + ([CAPPED] if name == MAX_CASE else [])
        vmms = [v for v in vmms if not vmm_filter or any(f in v[0] for f in vmm_filter)]
        results = {vmm: [] for vmm, _, _ in vmms}
        print(f"\n{name}: memory {memory}, -append '{append}'", flush=True)
        for run in range(RUNS):
            for vmm, kind, settings in vmms:
                tmp = tempfile.mkdtemp(prefix="tandem-migrate-bench-")
                started = time.monotonic()
                try:
                    fn = run_tandem if kind == "tandem" else run_qemu
                    r = fn(tmp, memory, append, ready, rate, settings)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
                results[vmm].append(r)
                print(f"  run {run + 1} {vmm:22s} {describe(r)}  [{time.monotonic() - started:.0f} s]", flush=True)
        case_results.append((case, results))
    summary(case_results, loopback)


if __name__ == "__main__":
    run_benchmark(main, procs)
