// Replica: the standby's side of continuous replication. It holds the last committed epoch of the
// guest (a machine that never ran, its memory and MachineState) and serves one primary's session
// at a time:
//
//   sync     precopy rounds into a fresh machine (a committed one from before is kept meanwhile)
//   epochs   Pages{N} are decoded into staging; Commit{N} is checked (next in order, page count,
//            digest, disk writes) and then applied whole to memory, disks and state, and answered
//            Ack{N} (secondary/replica_disks.hpp keeps the disk files in step). An
//            epoch that fails a check is discarded whole and the session ends; one already
//            committed (a replay) is ignored. The committed state never changes otherwise.
//
// Each Commit carries its epoch's output; a release record says the primary shows epochs <= N itself.
// The primary is dead when nothing has been heard from it for its --failover-after-ms; then, if an
// epoch was committed, takeOver() restores it into its machine, emits the output the primary never
// announced, and hands the machine to the caller to run.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "machine/machine.hpp"
#include "metrics/metrics.hpp"
#include "secondary/prepared_memory.hpp"
#include "transport/link.hpp"
#include "transport/release_stream.hpp"

namespace tandem {

class ReplicaDisks;

class Replica {
public:
  using Clock = std::chrono::steady_clock;
  enum class Outcome { SessionEnded, PrimaryDead, HandedOver };

  // base: the standby's devices and console (memory and vCPUs come from the primary); a sync
  // receives into prepared memory when it is ready and fits.
  Replica(MachineConfig base, dev::Console& console, PreparedMemory& prepared);
  ~Replica();

  // Serves the session that `hello` opened on link (its session id already adopted) until it ends.
  // Throws Error(BadInput) for a primary this standby cannot hold (the operator must act).
  // Releases are read from `releases` (the primary's word on what it has shown).
  Outcome serve(Link& link, Incoming& hello, ReleaseListener& releases);

  bool hasCommitted() const { return committed_.has_value(); }
  // The primary was heard (a heartbeat between sessions): its silence counts from now.
  void heard() { lastHeardTicks_ = Clock::now().time_since_epoch().count(); }
  // Reads the primary's heartbeats on urgent for up to `wait` (none: what is there); true if any.
  bool heardWithin(Channel& urgent, std::chrono::milliseconds wait, uint64_t& primarySeq);
  // The primary ended the guest for good (End): what is committed is dropped, never run.
  void end(const std::string& why);
  // When the primary counts as dead, if nothing is heard from it before.
  Clock::time_point failoverAt() const { return lastHeard() + failoverAfter_; }
  uint64_t generation() const { return generation_; }
  // The committed epoch, restored and ready to start.
  std::unique_ptr<Machine> takeOver(ReleaseListener& releases);
  nlohmann::json status() const;
  void collectMetrics(metrics::Families& out) const;

private:
  struct Committed {
    std::unique_ptr<Machine> machine;
    MachineState state;
    uint64_t epoch = 0;
    uint64_t session = 0;  // the session that committed it (its releases count)
    // Output of committed epochs the primary has not announced it emits: ours to emit on takeover.
    std::deque<std::pair<uint64_t, std::vector<HeldOutput>>> unreleased;
  };
  // A session's phase: Syncing (the rounds go into a fresh machine; a committed epoch of an
  // earlier session, if any, stays the one this standby would run) until its first commit, then
  // Epochs (each Commit is the next epoch, or a replay). Each message has its handler; nullopt
  // means the session goes on.
  enum class Phase { Syncing, Epochs };
  struct Session {
    Link& link;
    uint64_t id;
    std::unique_ptr<Machine> syncing;  // the fresh machine, until the first commit takes it
    Phase phase = Phase::Syncing;
    uint64_t nextEpoch = 0;  // in Epochs: the epoch due
  };
  std::optional<Outcome> onSilence(Session& in);
  std::optional<Outcome> onPages(Session& in, schema::Pages::Reader pages);
  std::optional<Outcome> onDiskChunk(Session& in, schema::DiskChunk::Reader chunk);
  std::optional<Outcome> onRoundEnd(Session& in, uint32_t round);
  std::optional<Outcome> onCommit(Session& in, schema::Commit::Reader commit);
  std::optional<Outcome> onSwitchover(Session& in, uint64_t epoch);
  std::optional<Outcome> onEnd(Session& in, const std::string& why);
  // The session ends (and why, for the log); the committed epoch stays.
  Outcome endSession(Session& in, const std::string& why);
  // A session that ends while syncing gives the disks back to the committed epoch.
  void leaveSync(Session& in);

  // Decodes one epoch's pages into staging; throws Error(Failed) when they cannot be.
  void stage(GuestMemory& memory, schema::Pages::Reader pages);
  void discardStaged();
  void countReceived(schema::Pages::Reader pages);
  Clock::time_point lastHeard() const { return Clock::time_point(Clock::duration(lastHeardTicks_.load())); }
  // Checks and applies the epoch; the refusal's reason when it does not check.
  std::optional<std::string> commit(std::unique_ptr<Machine>& syncing, schema::Commit::Reader commit, uint64_t expected,
                                    uint64_t session);
  // Forgets the output of committed epochs the primary said it showed.
  void dropReleased(ReleaseListener& releases);

  MachineConfig base_;
  dev::Console& console_;
  PreparedMemory& prepared_;
  std::unique_ptr<ReplicaDisks> disks_;  // opened by the first session
  std::optional<Committed> committed_;
  uint64_t generation_ = 0;
  std::atomic<Clock::rep> lastHeardTicks_{Clock::now().time_since_epoch().count()};
  Clock::duration failoverAfter_ = std::chrono::milliseconds(200);
  std::chrono::milliseconds heartbeat_{20};
  // The epoch being received: page numbers and their decoded bytes, back to back.
  std::vector<uint64_t> stagedPages_;
  std::vector<uint8_t> stagedBytes_;
  // What status() reports (from the control thread).
  mutable std::mutex statusMutex_;
  uint64_t committedEpoch_ = 0, discardedEpochs_ = 0, ignoredReplays_ = 0, sessions_ = 0, diskBytesApplied_ = 0;
  uint64_t diskSyncs_ = 0;  // epochs with a guest flush made durable here
  double diskSyncMs_ = 0;   // and the time that took
  std::atomic<bool> standing_{false};  // committed_ holds an epoch (for other threads)
  struct {
    uint64_t zero = 0, raw = 0, lz4 = 0, xbzrle = 0;
  } received_;  // pages, by encoding
  uint64_t receivedBytes_ = 0;
  std::map<std::string, uint64_t> refused_;  // messages refused unread, by reason (version, session, malformed)
  std::string state_ = "waiting for a primary";
  std::string lastRefusal_;  // why the last primary was refused as incompatible ("" since a session began)
  std::string lastEnd_;      // why the last primary ended its guest
  uint64_t incompatible_ = 0;
};

}  // namespace tandem
