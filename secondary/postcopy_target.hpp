// PostcopyTarget: the standby's side of postcopy, from just before the guest starts until every
// owed page is installed. Owns a "postcopy" thread that
//   - reads userfaultfd: a fault on an owed page becomes a PageRequest (urgent channel), a fault
//     on any other page gets zeros at once (the source never had it);
//   - installs pages as they arrive (requested ones on the urgent channel, the rest on bulk);
//   - sends heartbeats, and Running when told the guest started;
//   - reports PostcopyComplete with the fault statistics once nothing is owed, then unregisters.
// If the source goes silent (kPeerSilenceLimit) or sends something unusable, the guest cannot go
// on: the thread says so on stderr and ends the process with exit code 1.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "base/fd.hpp"
#include "base/thread.hpp"
#include "memory/dirty_tracker.hpp"
#include "memory/userfault.hpp"
#include "metrics/metrics.hpp"
#include "transport/heartbeat.hpp"
#include "transport/link.hpp"

namespace tandem {

class PostcopyTarget {
public:
  // Drops the stale copies of owed pages memory holds (when precopy rounds wrote any) and
  // registers it with userfaultfd; the thread starts at once (before the machine restores and
  // starts, which may touch memory).
  enum class Memory { Untouched, HasStaleCopies };
  PostcopyTarget(GuestMemory& memory, Link& link, PageSet owed, Memory before);
  ~PostcopyTarget();

  // The guest started: Running goes to the source (from the postcopy thread, which owns the link).
  void reportRunning();
  // Fault service times, zero faults, pages still owed (any thread).
  void collectMetrics(metrics::Families& out) const;

private:
  void loop();
  void serveFaults();
  void sendRequests();
  bool receive(Channel& channel);  // false when nothing was waiting
  void install(uint64_t page, const uint8_t* bytes);
  void finish();
  [[noreturn]] void fail(const std::string& why);

  GuestMemory& memory_;
  Link& link_;
  PageSet owed_;
  uint64_t owedCount_;
  Userfault userfault_;
  EventFd wake_;
  std::atomic<bool> startedFlag_{false}, stop_{false};
  bool runningSent_ = false, complete_ = false;
  std::unordered_map<uint64_t, std::chrono::steady_clock::time_point> waiting_;  // requested page -> first fault
  std::vector<double> serviceUs_;
  std::vector<uint64_t> unsent_;  // page requests the urgent queue had no room for yet
  uint64_t zeroFaults_ = 0;
  Heartbeat heartbeat_;
  mutable std::mutex metricsMutex_;  // the copies below, for collectMetrics()
  metrics::Histogram faultSeconds_{metrics::secondsBuckets()};
  uint64_t zeroFaultsForMetrics_ = 0, owedForMetrics_ = 0;
  std::unique_ptr<NamedThread> thread_;
};

}  // namespace tandem
