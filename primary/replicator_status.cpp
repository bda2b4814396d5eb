// What a Replicator tells an operator: its state, `tandem status`'s replication block, and its
// figures for Prometheus (the epoch loop itself is in replicator.cpp).
#include <algorithm>

#include "metrics/names.hpp"
#include "primary/replicator.hpp"

namespace tandem {

namespace {

using Clock = std::chrono::steady_clock;
int64_t nowNs() { return Clock::now().time_since_epoch().count(); }

}  // namespace

ReplicationState Replicator::state() const {
  std::lock_guard lock(statusMutex_);
  return figures_.state;
}

nlohmann::json Replicator::status() const {
  std::lock_guard lock(statusMutex_);
  auto gate = machine_.outputGate().stats();
  auto quantile = [](std::vector<double> values, double q) {
    std::sort(values.begin(), values.end());
    return values.empty() ? 0.0 : values[static_cast<size_t>(q * static_cast<double>(values.size() - 1))];
  };
  double heartbeatAgeMs = lastHeardNs_.load() ? static_cast<double>(nowNs() - lastHeardNs_.load()) / 1e6 : -1;
  return {{"role", "primary"},
          {"standby", options_.to},
          {"state", name(figures_.state)},
          {"protected", figures_.state == ReplicationState::Protected},
          {"unprotected_reason", figures_.state == ReplicationState::Protected ? std::string() : figures_.reason},
          {"refusals", figures_.refusals},
          {"generation", options_.generation},
          {"sessions", figures_.sessions},
          {"epoch", epoch_.load()},
          {"last_acked_epoch", figures_.lastAcked},
          {"epoch_ms", options_.epoch.count()},
          {"epoch_pause_ms", figures_.pauseMs},
          {"epoch_pause_p50_ms", quantile(figures_.recentPausesMs, 0.5)},
          {"epoch_pause_p99_ms", quantile(figures_.recentPausesMs, 0.99)},
          {"dirty_pages_per_epoch", figures_.dirtyPages},
          {"dirty_pages_p50", quantile(figures_.recentDirty, 0.5)},
          {"disk_write_bytes_per_epoch", figures_.diskBytes},
          {"sent_bytes", figures_.sentBytes},
          {"sync_disk_chunks_sent", figures_.syncChunksSent},
          {"sync_disk_chunks_skipped", figures_.syncChunksSkipped},
          {"ack_latency_ms", figures_.ackLatencyMs},
          {"held_output_bytes", gate.heldBytes},
          {"held_output_oldest_ms", gate.oldestHeldMs},
          {"released_output_bytes", gate.releasedBytes},
          {"heartbeat_age_ms", heartbeatAgeMs},
          {"paused_for_output", pausedForOutput_.load()}};
}

void collectPrimaryStateMetrics(metrics::Families& out, ReplicationState current, uint64_t generation) {
  namespace n = metrics::names;
  out.gauge(n::kRole, "This tandem's role in replication", 1, {{"role", "primary"}});
  out.gauge(n::kProtected, "1 while a standby holds a committed epoch it can run (a failover would work now)",
            current == ReplicationState::Protected ? 1 : 0);
  for (ReplicationState state : kAllReplicationStates)
    out.gauge(n::kReplicationState, "1 for the state replication is in (see tandem status for why it is not protected)",
              state == current ? 1 : 0, {{"state", name(state)}});
  out.gauge(n::kGeneration, "Replication generation of the guest (+1 at every failover)", static_cast<double>(generation));
}

void Replicator::collectMetrics(metrics::Families& out) const {
  namespace n = metrics::names;
  auto gate = machine_.outputGate().stats();
  std::lock_guard lock(statusMutex_);
  collectPrimaryStateMetrics(out, figures_.state, options_.generation);
  out.counter(n::kRefusedSessions, "Sessions the standby refused because it cannot hold this machine",
              static_cast<double>(figures_.refusals));
  out.counter(n::kSessions, "Replication sessions begun with a standby", static_cast<double>(figures_.sessions));
  out.counter(n::kEpochs, "Epochs sealed", static_cast<double>(epoch_.load()));
  out.gauge(n::kLastAckedEpoch, "The last epoch the standby acknowledged", static_cast<double>(figures_.lastAcked));
  out.histogram(n::kEpochPause, "How long each epoch paused the guest", figures_.pauseSeconds);
  out.histogram(n::kEpochSize, "Bytes each epoch put on the wire (pages, state, output, disk writes)", figures_.epochBytes);
  out.histogram(n::kEpochDirtyPages, "Dirty pages per epoch", figures_.dirtyPerEpoch);
  out.histogram(n::kAckLatency, "From an epoch's Commit sent to its Ack", figures_.ackSeconds);
  EncodingCounts e = figures_.encodings;
  e += figures_.sessionEncodings;
  for (auto [encoding, count] : {std::pair{"zero", e.zero}, {"raw", e.raw}, {"lz4", e.lz4}, {"xbzrle", e.xbzrle}})
    out.counter(n::kPagesSent, "Pages sent to standbys, by encoding", static_cast<double>(count), {{"encoding", encoding}});
  out.counter(n::kSentBytes, "Bytes of epochs sent to standbys", static_cast<double>(figures_.sentBytes));
  out.gauge(n::kHeldOutput, "Guest output held until a standby acknowledges its epoch", static_cast<double>(gate.heldBytes));
  out.gauge(n::kHeldOutputAge, "How long the oldest held output has waited", gate.oldestHeldMs / 1000);
  out.counter(n::kReleasedOutput, "Guest output shown", static_cast<double>(gate.releasedBytes));
  out.gauge(n::kHeartbeatAge, "Time since the peer was last heard",
            lastHeardNs_.load() ? static_cast<double>(nowNs() - lastHeardNs_.load()) / 1e9 : -1);
  out.gauge(n::kPausedForOutput, "1 while the guest is paused because its held output is over the limit", pausedForOutput_ ? 1 : 0);
  out.gauge(n::kFailoverAfter, "Silence after which the standby takes over", std::chrono::duration<double>(options_.failoverAfter).count());
}

}  // namespace tandem
