// MigrationProgress: where a running migration stands, for `tandem status` and the migrate
// command's progress line. The migration thread writes it, the control thread reads it.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

namespace tandem {

struct MigrationProgress {
  std::string phase = "setup";  // setup, precopy, stop-and-copy, postcopy, completed, failed
  std::string mode;
  uint32_t round = 0;
  uint64_t pagesToSend = 0, pagesSent = 0;  // in this round (postcopy: of the owed pages)
  uint64_t bytes = 0;
  double transferMiBps = 0;      // of the last round, or of postcopy so far
  double dirtyPagesPerSecond = 0;
  double expectedDowntimeMs = 0;
  unsigned throttlePercent = 0;  // auto-converge
  double leftMs = 0;             // estimated time to the end
  double elapsedMs = 0;
  std::string error;

  double percentSent() const {
    return pagesToSend ? 100.0 * static_cast<double>(pagesSent) / static_cast<double>(pagesToSend) : 0;
  }
  nlohmann::json toJson() const {
    return {{"phase", phase},         {"mode", mode},
            {"round", round},         {"pages_to_send", pagesToSend},
            {"pages_sent", pagesSent}, {"percent_sent", percentSent()},
            {"bytes", bytes},         {"transfer_mib_s", transferMiBps},
            {"dirty_pages_s", dirtyPagesPerSecond}, {"expected_downtime_ms", expectedDowntimeMs},
            {"left_ms", leftMs},      {"elapsed_ms", elapsedMs},
            {"throttle_percent", throttlePercent},
            {"error", error}};
  }
};

// One MigrationProgress behind a mutex.
class ProgressBoard {
public:
  template <typename F>
  void update(F&& change) {
    std::lock_guard lock(mutex_);
    change(progress_);
    progress_.elapsedMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count();
  }
  MigrationProgress read() const {
    std::lock_guard lock(mutex_);
    return progress_;
  }

private:
  mutable std::mutex mutex_;
  MigrationProgress progress_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace tandem
