# The migration and replication protocol: one Envelope per ZeroMQ message.
#
# Live migration, precopy:
#
#   source                                   target (tandem standby)
#   Hello{mode, shape} ----------------------->
#                      <----------------------- Welcome | Refusal{reason}
#   Pages{round 0: every backed page}* ------->
#   DiskChunk*  (--storage copy: after DiskDigests from the target, the chunks that differ; each
#               later round the chunks written since; raw ones in runs of up to 16)
#   RoundEnd{0} ------------------------------>
#                      <----------------------- RoundAck{0}
#   Pages{round n: pages dirtied meanwhile}*  ... until the rest fits in the downtime budget
#   (source pauses the guest)
#   Pages{final}* ; RoundEnd ; State{MachineState} ; Done -->   (no RoundAck awaited)
#                      <----------------------- Running   (target restored and started it)
#   (source ends; on any failure before Running, the source resumes its guest and the target exits)
#
# Postcopy (and hybrid: precopy rounds first, then this for what is still dirty):
#
#   (a guest with disks, --storage copy: DiskChunk* passes while it runs, until one finds few
#    chunks written; RoundEnd{0} ; <-- RoundAck{0}: the target wrote them all. Disks are not
#    demand-paged: the chunks written since go inside the pause, before Postcopy)
#   (source pauses the guest)
#   Postcopy{pages still owed} ; State ; Done -->     target drops stale copies of those pages,
#                                                     registers its memory with userfaultfd, runs
#                      <======================= Running (on the urgent channel)
#                      <======================= PageRequest{frames}   (a fault on an owed page)
#   Pages{requested} ========================>   (urgent channel: never behind background pages)
#   Pages{background, nearest the last fault first} -->   (bulk channel)
#                      <======================= PostcopyComplete{fault statistics}
#   Heartbeat both ways every 100 ms on the urgent channel. Three seconds of silence pause the
#   postcopy on the side that hears nothing (postcopy-paused): the target keeps the guest, whose
#   vCPUs that fault on owed pages wait; the source keeps every page it owes and the guest paused.
#   When the side that paused hears its peer again (the link came back, or tandem migrate --resume
#   connected the source anew), they handshake:
#                      <======================= PostcopyResume{pages the target still needs}
#   (the source's owed list becomes that; the target asks again for the pages its vCPUs wait on;
#   a source that paused, or connected anew, asks first with an empty PostcopyResume). Silence for --postcopy-wait
#   ends it: the target stops the guest and exits 1; the source keeps the guest paused for the
#   operator (tandem resume --confirm or tandem quit), never resuming it by itself.
#
# Continuous replication (mode replicate; DESIGN.md, "Epoch loop"):
#
#   Hello{replicate, generation} ------------->
#                      <----------------------- Welcome | Refusal{reason}
#                      <----------------------- DiskDigests{disk, XXH3 per 64 KiB chunk}, per disk
#   precopy rounds as above (the guest runs; the standby writes them straight into its memory),
#   each round followed by DiskChunk{disk, offset}* for the disk chunks written since the last
#   round (in round 0 every chunk whose digest differs from the standby's), which the standby
#   writes to its disk files (keeping what they overwrite while an earlier session's commit is
#   still the one it would run)
#   Pages{epoch N}* ; Commit{N, pages, digest, state, output, disk writes} -->   staged; applied whole on
#                      <----------------------- Ack{N}     Commit, then acknowledged
#   release N  on the release port (PORT + 2, plain TCP, transport/release_stream.hpp): "I show
#              the output of epochs <= N now"; written to the kernel before the output is shown.
#   The standby keeps the output of committed epochs beyond the last release it got, stops reading
#   releases when it takes over, and then shows exactly that: output is shown once, but for two
#   windows of microseconds (a primary killed between its release record and its write: lost;
#   the link cut while a record is on the wire: shown twice).
#   ... every --epoch-ms, forever. Epoch 1 closes the initial sync: before its Commit the standby
#   has nothing it could run, and a new session never overwrites a committed one until it has
#   committed itself. An epoch that is replayed, out of order, or whose pages do not match its
#   Commit is discarded whole and the session dropped; the committed state stays.
#   Heartbeat both ways every --heartbeat-ms on the urgent channel; the standby takes over after
#   --failover-after-ms of silence, and from then on refuses its old primary: "superseded".
#   Orderly end (quit, poweroff, systemctl stop): End{why} ----->  the standby drops what it committed
#                      <----------------------- EndAck   (then the primary shows what it held)
#   Without EndAck the primary shows nothing more: only silence makes the standby take over.
#   Between sessions the primary goes on beating on the urgent channel (its own connection), so
#   a session that ends for a reason other than silence is never taken for a dead primary.
#   Planned (tandem failover): the primary pauses the guest for good, sends a last epoch, shows its
#   output once acked, and sends Switchover{N}; the standby runs the guest and answers Running.
#
# Channels: the standby listens on PORT (bulk: Hello, pages, state) and PORT+1 (urgent: heartbeats,
# page requests and the pages they ask for), two TCP connections so bulk data never delays the rest,
# and PORT+2 (releases, replication only: plain TCP).
#
# Version rule: every envelope carries kProtocolVersion and the session id the source chose; a peer
# refuses anything with another version or session, and never applies a message it cannot read.
@0xf2f979bee2f421ae;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("tandem::schema");

const kProtocolVersion :UInt32 = 4;

enum Mode {
  invalid @0;
  precopy @1;
  postcopy @2;
  hybrid @3;
  replicate @4;
}

enum Encoding {
  invalid @0;
  zero @1;     # no bytes: the page is all zeros
  raw @2;      # 4096 bytes
  lz4 @3;      # LZ4 block that decompresses to 4096 bytes
  xbzrle @4;   # difference from the copy the target holds (codec/xbzrle.hpp); precopy rounds only
}

struct Hello {                 # source -> target, first
  mode @0 :Mode;
  memorySize @1 :UInt64;
  cpus @2 :UInt32;
  disks @3 :UInt32;
  nets @4 :UInt32;
  generation @5 :UInt64;       # replicate: 1 for a guest booted fresh, +1 at every failover; a
                               # standby that ran the guest at a later generation refuses it
  heartbeatMs @6 :UInt32;      # replicate: how often both ends beat
  failoverAfterMs @7 :UInt32;  # replicate: the standby takes over after this much silence
  diskSizes @8 :List(UInt64);  # replicate: each disk's size in bytes (the standby's must match)
  shape @9 :MachineShape;      # replicate: what a takeover will need of the standby, checked at
                               # Hello (a session that could not fail over is refused: incompatible)
  sharedStorage @10 :Bool;     # migrate: the standby opens the very same disks; no disk bytes move.
                               # It proves it: on the same host (bootId) each disk file is the same
                               # device and inode; elsewhere the sampled DiskDigests the source sends
                               # inside its pause, after its final flush, match its own
  bootId @11 :Text;            # migrate: the source host's /proc/sys/kernel/random/boot_id
  diskIdentities @12 :List(DiskIdentity);  # migrate, shared storage: each disk file's identity
}

struct DiskIdentity {
  device @0 :UInt64;           # st_dev
  inode @1 :UInt64;            # st_ino
}

struct MachineShape {          # what a restore of this machine needs of the machine it goes into
  devices @0 :List(DeviceShape);  # every virtio device, in device order (disks, then NICs)
  cpuid @1 :Data;              # the CPUID entries vCPU 0 is given (kvm_cpuid_entry2, host order)
  msrs @2 :List(UInt32);       # the MSRs a capture saves and a restore sets
}

struct DeviceShape {
  type @0 :UInt32;             # virtio device id (2: block, 1: network)
  features @1 :UInt64;         # the device's features
  queues @2 :UInt16;
  config @3 :Data;             # the saved part of its config space: a disk's capacity, a NIC's MAC
}

enum RefusalReason {
  invalid @0;
  unreadable @1;               # another version, another session, or not a message
  outOfOrder @2;               # a message where another was due
  incompatible @3;             # this standby cannot hold that machine (devices, memory, CPU): the
                               # operator must change one side; retrying as it is will not help
  superseded @4;               # this standby ran the guest after a failover: the primary stops
  badEpoch @5;                 # an epoch that does not check (digest, count, state, disk writes)
  gaveUp @6;                   # the sender ends the migration
  busy @7;                     # the standby cannot take it now (its disks, its memory)
}

struct Refusal {               # either way: why not; the sender of what was refused stops
  reason @0 :RefusalReason;
  text @1 :Text;               # one sentence for the log and the operator
}

struct Page {
  frame @0 :UInt64;            # guest-physical address / 4096
  encoding @1 :Encoding;
  offset @2 :UInt32;           # its bytes: blob[offset, offset + length) of the Pages it is in
  length @3 :UInt32;
}

struct Pages {                 # source -> target, any number per round or epoch
  round @0 :UInt32;
  pages @1 :List(Page);
  blob @2 :Data;               # every page's bytes, back to back: the sender's staging buffer,
                               # sent as a segment of its own without being copied into the message
  epoch @3 :UInt64;            # replicate: the epoch these pages belong to (0 in the initial sync)
}

struct Commit {                # primary -> standby: epoch `epoch` is whole
  epoch @0 :UInt64;
  pageCount @1 :UInt64;        # pages sent in this epoch's Pages
  digest @2 :UInt64;           # XXH3-64 over (frame, 4096 bytes) of those pages, in the order sent
  state @3 :Data;              # MachineState (machine_state.capnp) at the end of the epoch
  output @4 :List(Output);     # what the guest showed the outside during the epoch, in order
  diskWrites @5 :List(DiskWrite);  # what it wrote to its disks during the epoch, in order; the
                               # standby applies them to its disk files with the pages, on Commit
  diskFlush @6 :Bool;          # the guest flushed a disk during the epoch (or the sync before it):
                               # the standby makes its disks durable before it acknowledges
}

struct DiskWrite {             # one write the guest made to a disk during the epoch
  disk @0 :UInt32;             # index among the machine's disks
  offset @1 :UInt64;           # bytes from the start of the disk
  bytes @2 :Data;
}

struct DiskChunk {             # primary -> standby, initial sync: a piece of a disk as it is now
  disk @0 :UInt32;
  offset @1 :UInt64;           # a multiple of 64 KiB
  length @2 :UInt32;           # 64 KiB, less at the end of the disk; raw: up to 16 whole chunks
                               # in a row (1 MiB; the last as long as the disk has left)
  encoding @3 :Encoding;       # zero, raw or lz4 (of the whole chunk)
  bytes @4 :Data;
}

struct Output {
  channel @0 :UInt32;          # 0: the serial console, 1 + n: NIC n (OutputSink::channel); a
                               # NIC's bytes are one Ethernet frame
  bytes @1 :Data;
}

struct Postcopy {              # source -> target, before State
  owed @0 :Data;               # bitmap (64-bit words, host byte order) by page number (GuestMemory
                               # numbering: host offset / 4096, the same on both sides): pages the
                               # source still sends; every other page the target has, or is zero
}

struct Heartbeat {
  seq @0 :UInt64;
  sentAtNs @1 :UInt64;         # sender's monotonic clock
  echo @2 :UInt64;             # the latest seq the sender heard from its peer (replicate: a primary
                               # whose beat k was echoed knows the standby will not take over
                               # before k's send time + --failover-after-ms: its lease to show output)
}

struct PostcopyComplete {      # target -> source: every owed page arrived
  faults @0 :UInt64;           # faults on owed pages that had to wait for the source
  zeroFaults @1 :UInt64;       # faults on pages the source never had (filled with zeros here)
  medianUs @2 :Float64;        # fault to page installed, microseconds
  p99Us @3 :Float64;
  maxUs @4 :Float64;
}

struct Envelope {
  version @0 :UInt32;          # kProtocolVersion of the sender
  session @1 :UInt64;          # chosen by the source in Hello, repeated by both sides
  union {
    hello @2 :Hello;
    welcome @3 :Void;          # target -> source: ready for pages
    refusal @4 :Refusal;
    pages @5 :Pages;
    roundEnd @6 :UInt32;       # source -> target: round n sent
    roundAck @7 :UInt32;       # target -> source: round n received (and the target is alive)
    state @8 :Data;            # source -> target: MachineState (machine_state.capnp), final
    done @9 :Void;             # source -> target: nothing more comes; restore and run
    running @10 :Void;         # target -> source: the guest runs here now
    postcopy @11 :Postcopy;
    pageRequest @12 :List(UInt64);   # target -> source: guest frames (as in Page), most urgent first
    heartbeat @13 :Heartbeat;
    postcopyComplete @14 :PostcopyComplete;
    bye @15 :Text;             # source -> target: the migration ends here, and why (the target
                               # drops what it received and waits for the next source)
    commit @16 :Commit;
    ack @17 :UInt64;           # standby -> primary: epoch n is committed here
    switchover @18 :UInt64;    # primary -> standby (tandem failover): epoch n was the last, its
                               # output is shown, the guest is paused here for good: run it now
    diskChunk @19 :DiskChunk;  # replicate, initial sync: disk contents, with the rounds' pages
    end @20 :Text;             # primary -> standby (replicate): the guest ended here for good (quit,
                               # poweroff, a stop of the service), and why; do not run it
    endAck @21 :Void;          # standby -> primary: the committed epochs are dropped; the primary
                               # may now show the output it still holds
    diskDigests @22 :DiskDigests;  # standby -> primary or target -> source, after Welcome, one per
                               # disk (every chunk); source -> target with shared storage, inside the
                               # pause (sampled chunks: every sampleStride()-th)
    postcopyResume @23 :PostcopyResume;  # after a postcopy pause, on the urgent channel
  }
}

struct PostcopyResume {
  needed @0 :Data;             # target -> source: bitmap (as Postcopy.owed) of the pages it still
                               # needs, which replaces the source's owed list; source -> target:
                               # empty, "say what you need"
  reconnected @1 :Bool;        # source -> target: it connected anew (tandem migrate --resume); the
                               # target listens anew on its bulk port, dropping the old connection
                               # (a cut may have left it open on this side only)
}

struct DiskDigests {           # what a standby's disk holds now, so that the sync sends only the
  disk @0 :UInt32;             # chunks that differ (DRBD's checksum resync): XXH3-64 of each 64 KiB
  digests @1 :List(UInt64);    # chunk in order (the last one as long as the disk has left)
}
