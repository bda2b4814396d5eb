"""Driver for the disk case of ops/bench/migrate: a guest writing its 1 GiB disk, migrated with the
disk by tandem and by QEMU 7.2 block migration, the same guest file and the same disk contents.

Usage: migrate_disk_bench.py TANDEM GUEST_ELF RUNS
Environment: MIGRATE_BENCH_VMMS, comma-separated substrings of the VMM names to run (default: all).

The disk: 1 GiB of random bytes (nothing compresses, nothing is zero), made once; each run starts
from a copy of it on the source and an empty 1 GiB file on the target. The guest (256 MiB, 1 vCPU)
runs job=disk rate=200: it appends a 512-byte record and flushes, 200 times a second, throughout.
Per run:
  total      the migration's total time as the VMM reports it
  to run     from the migrate command to the target running the guest, by this script's clock
             (tandem answers once its target runs it; QEMU's target is asked until it says so)
  downtime   as the VMM reports it (QEMU: in whole ms, without its destination's start)
  bytes      on the wire, memory and disk, as the VMM reports them
  identical  the two disk files at the switch point: with the target's guest paused once it runs,
             every sector but those of the records it wrote there since (record k sits in sector
             k - 1; the records on each file are counted from the file) must be byte for byte the
             source's, which stopped writing at the switch. A run where they differ lost disk data:
             it is reported, and left out of the medians.
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import Console, QEMU_CPU, Qmp, fmt, run_benchmark, stop, unix_request  # noqa: E402

TANDEM, GUEST, RUNS = sys.argv[1], sys.argv[2], int(sys.argv[3])
TANDEM_PORT, QEMU_PORT = 23464, 23468
DISK_BYTES = 1 << 30
MEMORY = "256M"
APPEND = "job=disk rate=200"
MIB = 1 << 20
RECORD_MAGIC = (0x314345524d444e54).to_bytes(8, "little")  # "TNDMREC1", as ops/guest/jobs/disk.c writes it

VMMS = [
    ("tandem precopy", "tandem", {"mode": "precopy"}),
    ("tandem postcopy", "tandem", {"mode": "postcopy"}),
    ("tandem hybrid", "tandem", {"mode": "hybrid"}),
    ("qemu blk default", "qemu", {}),
    ("qemu blk unlimited", "qemu", {"unlimited": True}),
    ("qemu blk unlim direct", "qemu", {"unlimited": True, "direct": True}),
]
GOAL_AGAINST = ["qemu blk default", "qemu blk unlimited", "qemu blk unlim direct"]

procs = []


def start(args, tmp, name, env=None):
    err = open(os.path.join(tmp, name + ".err"), "w")
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env)
    procs.append(proc)
    return proc, Console(proc)


def make_base_disk(path):
    with open(path, "wb") as f:
        for _ in range(DISK_BYTES // (16 * MIB)):
            f.write(os.urandom(16 * MIB))


def prepare_disks(tmp, base):
    source, target = os.path.join(tmp, "source.img"), os.path.join(tmp, "target.img")
    shutil.copyfile(base, source)
    with open(target, "wb") as f:
        f.truncate(DISK_BYTES)
    os.sync()  # the copy's write-back is not part of the migration
    return source, target


def records_on(path):
    """How many records the job wrote to the disk file: record k sits in sector k - 1, each sector
    begins with the magic and k (the disk's other bytes are random)."""
    count = 0
    with open(path, "rb") as f:
        while True:
            sector = f.read(512)
            if len(sector) < 16 or sector[:8] != RECORD_MAGIC or int.from_bytes(sector[8:16], "little") != count + 1:
                return count
            count += 1


def identical_at_switch(source, target):
    """None when the files match outside the records the target wrote since the switch (those past
    the source's last), else the first sector that differs."""
    skip_from, skip_to = records_on(source) * 512, records_on(target) * 512
    with open(source, "rb") as a, open(target, "rb") as b:
        offset = 0
        while True:
            x, y = a.read(4 * MIB), b.read(4 * MIB)
            if not x and not y:
                return None
            if x != y:
                for s in range(0, max(len(x), len(y)), 512):
                    if not skip_from <= offset + s < skip_to and x[s:s + 512] != y[s:s + 512]:
                        return (offset + s) // 512
            offset += len(x)


def settle(console):
    console.wait_for("disk: verified 0 records", 120)
    console.wait_for("disk: wrote record 200", 60)  # a second of writing, then the migration


def run_tandem(tmp, base, settings):
    source_img, target_img = prepare_disks(tmp, base)
    endpoint = f"tcp://127.0.0.1:{TANDEM_PORT}"
    source_sock, target_sock = os.path.join(tmp, "source.sock"), os.path.join(tmp, "target.sock")
    target, target_console = start([TANDEM, "standby", "--listen", endpoint, "--disk", target_img, "--control", target_sock],
                                   tmp, "target")
    source, source_console = start([TANDEM, "run", "--kernel", GUEST, "--memory", MEMORY, "--disk", source_img,
                                    "--control", source_sock, "--append", APPEND], tmp, "source")
    try:
        settle(source_console)
        began = time.monotonic()
        reply = unix_request(source_sock, {"cmd": "migrate", "to": endpoint, "storage": "copy", **settings}, timeout=600)
        to_run = (time.monotonic() - began) * 1000  # (the reply comes once the target runs the guest)
        if not reply.get("ok"):
            return {"error": reply.get("error", "failed")}
        unix_request(target_sock, {"cmd": "pause"})
        source.wait(timeout=30)
        differs = identical_at_switch(source_img, target_img)
        return {"total": reply["total_ms"], "to_run": to_run, "downtime": reply["downtime_ms"], "bytes": reply["bytes"],
                "disk_bytes": reply["disk_chunks"]["wire_bytes"], "differs": differs}
    finally:
        stop(source)
        stop(target)


def qemu_command(disk, qmp, extra, direct=False):
    cache = ",cache=none" if direct else ""  # none: O_DIRECT, as tandem's standby writes whole chunks
    return ["qemu-system-x86_64", "-M", "microvm,acpi=off", "-enable-kvm", *QEMU_CPU, "-m", MEMORY, "-smp", "1", "-nodefaults",
            "-no-user-config", "-nographic", "-display", "none", "-serial", "stdio",
            "-global", "virtio-mmio.force-legacy=false",
            "-drive", f"id=d0,file={disk},format=raw,if=none{cache}", "-device", "virtio-blk-device,drive=d0",
            "-kernel", GUEST, "-append", APPEND, "-qmp", f"unix:{qmp},server=on,wait=off"] + extra


def run_qemu(tmp, base, settings):
    source_img, target_img = prepare_disks(tmp, base)
    qs, qd = os.path.join(tmp, "qs.sock"), os.path.join(tmp, "qd.sock")
    direct = settings.get("direct", False)
    target, target_console = start(qemu_command(target_img, qd, ["-incoming", f"tcp:127.0.0.1:{QEMU_PORT}"], direct),
                                   tmp, "target")
    source, source_console = start(qemu_command(source_img, qs, [], direct), tmp, "source")
    try:
        target_qmp = Qmp(qd)
        settle(source_console)
        qmp = Qmp(qs)
        if settings.get("unlimited"):
            qmp.execute("migrate-set-parameters", **{"max-bandwidth": 64 << 30})
        began = time.monotonic()
        qmp.execute("migrate", uri=f"tcp:127.0.0.1:{QEMU_PORT}", blk=True)
        disk = None  # QEMU reports the disk's bytes only while it migrates: the last figure seen
        while True:
            info = qmp.execute("query-migrate")
            if info.get("status") in ("completed", "failed", "cancelled"):
                break
            disk = info.get("disk", {}).get("transferred", disk)
            time.sleep(0.01)
        if info["status"] != "completed":
            return {"error": f"QEMU says {info.get('status')}: {info.get('error-desc', '')}"}
        # The source's "completed" can come before the target has loaded what it was sent: the
        # target is compared once it runs the guest (and that moment is its time to run).
        deadline = time.monotonic() + 120
        while target_qmp.execute("query-status").get("status") != "running":
            if time.monotonic() > deadline:
                return {"error": "the target did not run the guest within 120 s of the source's 'completed'"}
            time.sleep(0.005)
        to_run = (time.monotonic() - began) * 1000
        target_qmp.execute("stop")
        differs = identical_at_switch(source_img, target_img)
        disk = info.get("disk", {}).get("transferred", disk)
        return {"total": info["total-time"], "to_run": to_run, "downtime": info.get("downtime"),
                "bytes": info["ram"]["transferred"] + (disk or 0), "disk_bytes": disk, "differs": differs}
    finally:
        stop(source)
        stop(target)


def describe(r):
    if "error" in r:
        return f"FAILED: {r['error']}"
    same = "identical" if r["differs"] is None else f"DIFFER from sector {r['differs']}"
    disk = fmt(r["disk_bytes"] / MIB if r.get("disk_bytes") is not None else None, 7)
    return (f"total {fmt(r['total'], 8)} ms  to run {fmt(r['to_run'], 8)} ms  downtime {fmt(r['downtime'], 7)} ms  "
            f"{r['bytes'] / MIB:7.1f} MiB "
            f"(disk {disk} MiB)  disks at the switch: {same}")


def median(runs, key):
    """Over the runs that ended with the disks identical: one that lost disk data is no migration."""
    values = [r[key] for r in runs if "error" not in r and r["differs"] is None and r.get(key) is not None]
    return statistics.median(values) if values else None


def main():
    vmm_filter = [s.strip() for s in os.environ.get("MIGRATE_BENCH_VMMS", "").split(",") if s.strip()]
    vmms = [v for v in VMMS if not vmm_filter or any(f in v[0] for f in vmm_filter)]
    print(f"\nMigration with a 1 GiB disk being written (random contents; {MEMORY} guest, -append '{APPEND}'), over "
          f"127.0.0.1,\ntandem --storage copy vs QEMU 7.2 block migration (migrate blk=true onto an empty disk; "
          f"default = max-bandwidth 128 MiB/s,\nunlimited = 64 GiB/s, direct = unlimited with both drives cache=none, O_DIRECT as "
          f"tandem's standby writes whole chunks), {RUNS} run(s) each.", flush=True)
    work = tempfile.mkdtemp(prefix="tandem-migrate-disk-bench-")
    try:
        base = os.path.join(work, "base.img")
        make_base_disk(base)
        results = {name: [] for name, _, _ in vmms}
        for run in range(RUNS):
            for name, kind, settings in vmms:
                tmp = tempfile.mkdtemp(dir=work)
                began = time.monotonic()
                try:
                    r = (run_tandem if kind == "tandem" else run_qemu)(tmp, base, settings)
                except Exception as e:  # one run's failure is reported, the others go on
                    errs = {n: open(os.path.join(tmp, n + ".err"), errors="replace").read()[-300:]
                            for n in ("source", "target") if os.path.exists(os.path.join(tmp, n + ".err"))}
                    r = {"error": f"{e} {errs}"}
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
                results[name].append(r)
                print(f"  run {run + 1} {name:20s} {describe(r)}  [{time.monotonic() - began:.0f} s]", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nSummary, medians over the runs (of {RUNS}) that ended with both disk files identical at the switch:")
    print(f"   {'':20s}{'total ms':>10s}{'to run ms':>11s}{'downtime ms':>13s}{'MiB':>8s}  disks identical at the switch")
    med = {}
    for name, runs in results.items():
        med[name] = {k: median(runs, k) for k in ("total", "to_run", "downtime", "bytes")}
        done = [r for r in runs if "error" not in r]
        same = sum(1 for r in done if r["differs"] is None)
        mib = med[name]["bytes"] / MIB if med[name]["bytes"] is not None else None
        print(f"   {name:20s}{fmt(med[name]['total'], 10)}{fmt(med[name]['to_run'], 11)}{fmt(med[name]['downtime'], 13)}{fmt(mib, 8)}  "
              f"{same}/{len(runs)} run(s)" + (f", {len(runs) - len(done)} FAILED" if len(done) < len(runs) else "")
              + (f"; in {len(done) - same} the target's disk lacked data the source had" if same < len(done) else ""))
    against = [q for q in GOAL_AGAINST if q in med and med[q]["to_run"]]
    tandems = [t for t in med if t.startswith("tandem") and med[t]["to_run"]]
    if against and tandems:
        print("   time until the target runs the guest, tandem/QEMU ('*' = at most 0.5, the goal; QEMU's own total\n"
              "   ends when its source has sent everything, before its target has loaded it):")
        for t in tandems:
            cells = []
            for q in against:
                ratio = med[t]["to_run"] / med[q]["to_run"]
                cells.append(f"vs {q}: {ratio:.2f}{'*' if ratio <= 0.5 else ''}")
            print(f"   {t:20s}" + "   ".join(cells))


if __name__ == "__main__":
    run_benchmark(main, procs)
