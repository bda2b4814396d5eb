// PostcopyTarget: the standby's side of postcopy, from just before the guest starts until every
// owed page is installed. Owns a "postcopy" thread that
//   - reads userfaultfd: a fault on an owed page becomes a PageRequest (urgent channel), a fault
//     on any other page gets zeros at once (the source never had it);
//   - installs pages as they arrive (requested ones on the urgent channel, the rest on bulk);
//   - sends heartbeats, and Running when told the guest started;
//   - reports PostcopyComplete with the fault statistics once nothing is owed, then unregisters
//     (and for `wait` more answers a source that asks again, its first report lost, with another).
// Postcopy recovery: three seconds without a word from the source pause it (postcopy-paused in
// status, metrics and log): vCPUs that fault on owed pages wait, the others run on. Once the
// source is heard again (the link came back, or it connected anew after tandem migrate --resume:
// then the bulk port listens anew), a PostcopyResume tells it every page still needed, and the
// requests the vCPUs wait on go again. Silence for `wait` (--postcopy-wait), or a source that
// sends something unusable, leaves the guest unable to go on: the thread says so on stderr and
// ends the process with exit code 1.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

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
  // bulkEndpoint: where link's bulk channel listens (made anew there when the source connects anew).
  PostcopyTarget(GuestMemory& memory, Link& link, std::string bulkEndpoint, PageSet owed, Memory before,
                 std::chrono::seconds wait);
  ~PostcopyTarget();

  // The guest started: Running goes to the source (from the postcopy thread, which owns the link).
  void reportRunning();
  // Fault service times, zero faults, pages still owed (any thread).
  void collectMetrics(metrics::Families& out) const;
  // For tandem status (any thread): phase (postcopy, postcopy-paused, completed), pages owed, pauses.
  nlohmann::json status() const;

private:
  void loop();
  void serveFaults();
  void sendRequests();
  bool receive(Channel& channel);  // false when nothing was waiting
  void install(uint64_t page, const uint8_t* bytes);
  void finish();
  void sendComplete();
  void watchSilence();
  // Anything from the source: a pause ends, and what is still needed goes to it now, or Later
  // (the message is a PostcopyResume, answered as such).
  enum class Answer { Now, Later };
  void heard(Answer answer);
  void sendNeeded();  // PostcopyResume with every owed page, and the waited-for requests again
  // Drops the source's old connections: listens again on the bulk port, or on both.
  enum class Channels { BulkOnly, Both };
  void listenAnew(Channels which);
  [[noreturn]] void fail(const std::string& why);

  GuestMemory& memory_;
  Link& link_;
  std::string bulkEndpoint_;
  PageSet owed_;
  uint64_t owedCount_;
  Userfault userfault_;
  EventFd wake_;
  std::atomic<bool> startedFlag_{false}, stop_{false};
  bool runningSent_ = false, complete_ = false, completeSent_ = false;
  std::chrono::seconds wait_;
  std::optional<std::chrono::steady_clock::time_point> pausedAt_;
  std::chrono::steady_clock::time_point completedAt_;
  capnp::MallocMessageBuilder completeMessage_;  // kept: sent again when the source asks
  std::unordered_map<uint64_t, std::chrono::steady_clock::time_point> waiting_;  // requested page -> first fault
  std::vector<double> serviceUs_;
  std::vector<uint64_t> unsent_;  // page requests the urgent queue had no room for yet
  uint64_t zeroFaults_ = 0;
  std::optional<Heartbeat> heartbeat_;  // on link_.urgent; made anew with it
  mutable std::mutex metricsMutex_;  // the copies below, for collectMetrics()
  metrics::Histogram faultSeconds_{metrics::secondsBuckets()};
  uint64_t zeroFaultsForMetrics_ = 0, owedForMetrics_ = 0;
  uint32_t pausesForStatus_ = 0;
  std::string phaseForStatus_ = "postcopy";
  std::optional<std::chrono::steady_clock::time_point> silentSinceForStatus_;
  std::unique_ptr<NamedThread> thread_;
};

}  // namespace tandem
