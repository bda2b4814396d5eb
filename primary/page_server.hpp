// PageServer: the source's side of postcopy, after the guest left. Serves the target's page
// requests first (on the urgent channel), pushes every other owed page in the background (bulk
// channel, starting after the last page asked for: what a guest touches next is usually near
// what it touched last), sends heartbeats, and ends when the target reports every page installed.
// The pages stay here until then: the guest cannot run anywhere without them.
#pragma once

#include <chrono>

#include "memory/dirty_tracker.hpp"
#include "primary/bandwidth_limit.hpp"
#include "primary/migration_progress.hpp"
#include "primary/page_encoder.hpp"
#include "transport/heartbeat.hpp"
#include "transport/link.hpp"

namespace tandem {

struct PostcopyStats {
  double runningAfterMs = 0;  // from serve() until the target said Running
  double ms = 0;              // from serve() until every page was installed there
  uint64_t requested = 0;     // pages the target asked for
  uint64_t faults = 0, zeroFaults = 0;
  double medianUs = 0, p99Us = 0, maxUs = 0;
};

class PageServer {
public:
  PageServer(const GuestMemory& memory, Link& link, PageSet owed, BandwidthLimit& limit, const std::string& to,
             ProgressBoard& progress, Compression compression);

  // Throws Error when the target refuses, sends something unreadable or goes silent; `running()`
  // then tells whether the guest had started there.
  PostcopyStats serve();
  bool running() const { return running_; }
  EncodingCounts counts() const {
    EncodingCounts c = background_.counts();
    return c += urgent_.counts();
  }

private:
  bool receive(Channel& channel);  // handles one waiting message; false when none waited
  void handle(class Incoming& message);
  void answerRequest(const capnp::List<uint64_t>::Reader& frames);
  bool pushBackground();  // false when nothing could be sent now

  const GuestMemory& memory_;
  Link& link_;
  PageSet owed_;
  uint64_t owedCount_, owedAtStart_;
  uint64_t cursor_ = 0;
  BandwidthLimit& limit_;
  std::string to_;
  PageEncoder background_, urgent_;
  Heartbeat heartbeat_;  // starts with the server, which serves at once
  std::unique_ptr<OutgoingMessage> pendingBatch_;  // built, not yet taken by the queue
  std::vector<uint64_t> pendingPages_;
  bool running_ = false, complete_ = false;
  std::chrono::steady_clock::time_point started_;
  PostcopyStats stats_;
  ProgressBoard& progress_;
};

}  // namespace tandem
