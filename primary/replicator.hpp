// Replicator: keeps a running guest protected by a standby (DESIGN.md, "Epoch loop", "Output
// commit"). On its own thread, forever:
//
//   connect   Hello{replicate, generation} to the standby, until one answers Welcome
//   sync      precopy rounds while the guest runs, until what is left fits one epoch; each round
//             also sends the disk chunks written since the last one (primary/disk_sender.hpp)
//   epochs    every --epoch-ms (sooner, from a fifth of it on, when the guest has output waiting):
//             midway, the pages dirtied so far are copied into the messages' staging while the
//             guest runs; then pause, take the dirty log and the disk writes, copy the pages
//             dirtied since into staging, capture the MachineState, seal the output written
//             so far as epoch N, resume; then encode and send Pages{N} and Commit{N} (with N's
//             output and disk writes); on Ack{N}
//             write a release record (transport/release_stream.hpp), then show epoch N's output.
//             Heartbeats both ways on the urgent channel, from a thread of their own that
//             goes on between sessions: only silence makes the standby take over.
//
// The guest's output is held from construction on and is released only by acks: without a standby the
// primary runs unprotected and shows nothing (beyond OutputGate's limit the guest is paused). A
// standby that is silent for --failover-after-ms, refuses an epoch or stops acking is dropped and
// a new session begins with a full sync. A standby that cannot hold this machine (its devices,
// CPU) refuses the Hello as incompatible: the guest runs unprotected, and the status says why. A
// standby that answers "superseded" ran the guest after a failover: this primary stops its guest
// for good. When the guest ends here in an orderly way (quit, poweroff, a stop signal), end()
// tells the standby, which then never runs it (primary/replication_state.hpp: the states).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/thread.hpp"
#include "metrics/metrics.hpp"
#include "machine/machine.hpp"
#include "primary/lease.hpp"
#include "primary/page_encoder.hpp"
#include "primary/replication_state.hpp"
#include "transport/channel.hpp"

namespace tandem {

class ReleaseSender;
class DiskSender;

struct ReplicationOptions {
  std::string to;  // tcp://HOST:PORT of the standby
  std::chrono::milliseconds epoch{25}, heartbeat{20}, failoverAfter{200};
  uint64_t generation = 1;  // 1 for a guest booted here; a failed-over standby protects onward with +1
  Compression compression = Compression::Auto;
  uint64_t xbzrleCacheBytes = 64 * kMiB;
};

class Replicator {
public:
  // Holds the machine's output from here on (construct it before the machine starts).
  Replicator(Machine& machine, ReplicationOptions options);
  ~Replicator();  // ends the thread; the output stays held

  // The machine runs: sessions begin.
  void start();
  // Planned switchover (tandem failover): the guest pauses here for good, a last epoch goes, its
  // output is shown, and the standby runs the guest. Blocks until the standby runs it (then the
  // machine here is stopped) or throws Error with the reason (the guest then runs on here).
  void switchover(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // The guest ended here for good (why: "the guest powered off", say): tells the standby, which
  // drops its epochs and will not run the guest, and then shows the output still held (nobody
  // else can show it now). Blocks until the standby confirmed, or for at most `timeout`; without
  // its word the output stays held, since the standby may still take over. True if confirmed.
  bool end(const std::string& why, std::chrono::milliseconds timeout = std::chrono::seconds(3));
  ReplicationState state() const;
  // role, protection, epoch numbers, pause and dirty figures, ack latency, held output, heartbeat age.
  nlohmann::json status() const;
  // The same, and the histograms behind them, for Prometheus (metrics/names.hpp).
  void collectMetrics(metrics::Families& out) const;

private:
  struct InFlight {
    uint64_t epoch;
    std::chrono::steady_clock::time_point sentAt;
  };
  void loop();
  void session();
  void handshake(Channel& bulk);
  // The heartbeat thread, for the Replicator's whole life (sessions come and go).
  void beat();
  // On the replicator thread, once end() asked: End to the standby, EndAck awaited.
  void tellEnd(Channel& bulk);
  // The pages and disk chunks a session sends once, and what it sends every epoch.
  struct SessionParts {
    Channel& bulk;
    DirtyTracker& tracker;
    DiskSender& disks;
    PageSet dirty;
    // Pages of this epoch copied while the guest ran (prestage()), increasing, with their slots.
    std::vector<PageEncoder::Staged> prestaged;
    std::vector<std::pair<uint64_t, uint8_t*>> prestagedSlots;
  };
  void receiveDiskDigests(Channel& bulk, DiskSender& disks);
  void initialSync(SessionParts& s);
  // Midway through an epoch, with the guest running: takes the dirty log and copies those pages
  // into staging, so that the pause copies only the pages written after that (and those again).
  void prestage(SessionParts& s);
  void runEpoch(SessionParts& s);
  // Takes what the standby sent (acks, refusals) until `until`, or from `earliest` on once output
  // is waiting; throws when it is gone or refuses.
  void serveStandby(Channel& bulk, ReleaseSender& release, std::chrono::steady_clock::time_point until,
                    std::chrono::steady_clock::time_point earliest);
  std::chrono::steady_clock::duration shortestEpoch() const;
  void holdGuestIfOutputFull();
  void releaseAcked(ReleaseSender& release);
  void handOver(SessionParts& s, ReleaseSender& release);
  void checkStandbyAlive() const;  // throws when stopping or the standby is silent
  void deliver(Channel& bulk, capnp::MallocMessageBuilder& message);
  void deliver(Channel& bulk, std::unique_ptr<OutgoingMessage> message);
  void setState(ReplicationState state, std::string reason = {});

  Machine& machine_;
  ReplicationOptions options_;
  std::unique_ptr<Channel> bulk_;  // to the standby, for every session (the replicator thread's)
  std::unique_ptr<PageEncoder> encoder_;  // per session: its XBZRLE cache mirrors one standby
  std::shared_ptr<StagingPool> stagingPool_ = StagingPool::make(PageEncoder::kPagesPerMessage * kPageSize);
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> session_{0};     // the session being served (set by the replicator thread)
  std::atomic<int64_t> lastHeardNs_{0};  // from the standby, by the heartbeat thread
  Lease lease_{options_.failoverAfter, options_.failoverAfter / 4};  // a quarter of the failover time to spare
  std::atomic<uint64_t> epoch_{0};       // last epoch sealed (over all sessions: output epochs)
  std::deque<InFlight> inFlight_;  // sent, not acknowledged
  std::vector<uint64_t> acked_;    // acknowledged, output not shown yet (waiting for a fresh lease)
  bool firstEpochOfSession_ = true;
  // tandem failover: asked by the control thread, answered by the replicator thread.
  std::mutex switchoverMutex_;
  std::condition_variable switchoverChanged_;
  bool switchoverAsked_ = false, switchoverDone_ = false;
  std::string switchoverError_;
  std::atomic<bool> switchoverPending_{false};
  bool holdForHandover_ = false;  // the last epoch leaves the guest paused
  // end(): asked by the main thread, done by the replicator thread.
  std::atomic<bool> endAsked_{false};
  std::string endWhy_;       // under switchoverMutex_
  bool endDone_ = false, endConfirmed_ = false;  // under switchoverMutex_
  std::atomic<bool> pausedForOutput_{false};

  mutable std::mutex statusMutex_;
  struct Figures {
    ReplicationState state = ReplicationState::Connecting;
    std::string reason;  // why not protected (the last session's end, a refusal), for an operator
    uint64_t sessions = 0, lastAcked = 0, dirtyPages = 0, diskBytes = 0, refusals = 0;
    uint64_t syncChunksSent = 0, syncChunksSkipped = 0;  // disk chunks of the last sync; skipped: the standby had them
    double pauseMs = 0, ackLatencyMs = 0;
    std::vector<double> recentPausesMs;  // the last 100
    std::vector<double> recentDirty;     // pages of the same epochs
    uint64_t sentBytes = 0;              // every session's, on the bulk channel
    EncodingCounts encodings;            // of initial syncs, and of epochs of sessions that ended
    EncodingCounts sessionEncodings;     // of this session's epochs
    metrics::Histogram pauseSeconds{metrics::secondsBuckets()}, epochBytes{metrics::sizeBuckets()},
        dirtyPerEpoch{metrics::sizeBuckets()}, ackSeconds{metrics::secondsBuckets()};
  } figures_;
  std::unique_ptr<NamedThread> thread_, beats_;
};

// A primary's role, protected or not, replication state and generation, for Prometheus (also for a
// guest an operator runs unprotected, which has no Replicator).
void collectPrimaryStateMetrics(metrics::Families& out, ReplicationState state, uint64_t generation);

}  // namespace tandem
