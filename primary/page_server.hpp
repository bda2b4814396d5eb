// PageServer: the source's side of postcopy, after the guest left. Serves the target's page
// requests first (on the urgent channel), pushes every other owed page in the background (bulk
// channel, starting after the last page asked for: what a guest touches next is usually near
// what it touched last), sends heartbeats, and ends when the target reports every page installed.
// The pages stay here until then: the guest cannot run anywhere without them.
//
// Postcopy recovery: three seconds without a word from the target pause it (phase
// postcopy-paused; nothing is pushed, every owed page kept). Once the target is heard again, or
// the operator had the link made anew (tandem migrate --resume, to the same or another address),
// the target's PostcopyResume says which pages it still needs: that becomes the owed list, and
// serving goes on. Silence for `wait`, or the operator's --give-up, ends serve() with an Error;
// the guest's pages stay here either way.
#pragma once

#include <chrono>
#include <optional>

#include "memory/dirty_tracker.hpp"
#include "primary/bandwidth_limit.hpp"
#include "primary/migration_progress.hpp"
#include "primary/migration_requests.hpp"
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
  uint32_t pauses = 0;        // times the link fell silent and the postcopy paused
  double pausedMs = 0;        // how long those pauses lasted, together
  uint64_t earlierLinksBytes = 0;  // sent on the links the operator's --resume replaced
};

class PageServer {
public:
  struct Recovery {
    std::chrono::seconds wait{600};            // --postcopy-wait: silence that ends it
    MigrationRequests* requests = nullptr;     // the operator's --resume and --give-up, or none
  };

  // link: replaced by a new connection when the operator asks for one (the same session).
  PageServer(const GuestMemory& memory, Link& link, PageSet owed, BandwidthLimit& limit, const std::string& to,
             ProgressBoard& progress, Compression compression, Recovery recovery);

  // Throws Error when the target refuses, sends something unreadable, stays silent past the wait
  // or the operator gives up; `running()` then tells whether the guest had started there.
  PostcopyStats serve();
  bool running() const { return running_; }
  EncodingCounts counts() const {
    EncodingCounts c = background_.counts();
    return c += urgent_.counts();
  }

private:
  bool receive(Channel& channel);  // handles one waiting message; false when none waited
  void handle(class Incoming& message);
  void answerRequests(const std::vector<uint64_t>& frames);
  bool pushBackground();  // false when nothing could be sent now
  void takeOperatorRequest();
  void pause();
  void askWhatIsNeeded();  // paused: an empty PostcopyResume, at most once a second
  void resumeWith(capnp::Data::Reader needed);
  void reconnect(const std::string& to);
  void setOwed(uint64_t page);

  const GuestMemory& memory_;
  Link& link_;
  PageSet owed_;
  uint64_t owedCount_, owedAtStart_;
  uint64_t cursor_ = 0;
  BandwidthLimit& limit_;
  std::string to_;
  PageEncoder background_, urgent_;
  std::optional<Heartbeat> heartbeat_;  // on the urgent channel; made anew with the link
  std::unique_ptr<OutgoingMessage> pendingBatch_;  // built, not yet taken by the queue
  std::vector<uint64_t> pendingPages_;
  std::vector<uint64_t> unanswered_;  // requested pages the urgent queue had no room for yet
  bool running_ = false, complete_ = false;
  bool reconnected_ = false;  // connected anew since the target last said what it needs
  Recovery recovery_;
  std::optional<std::chrono::steady_clock::time_point> pausedAt_, askedAt_;
  std::chrono::steady_clock::time_point started_;
  PostcopyStats stats_;
  ProgressBoard& progress_;
};

}  // namespace tandem
