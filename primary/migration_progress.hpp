// MigrationProgress: where a running migration stands, for `tandem status` and the migrate
// command's progress line. The migration thread writes it, the control thread reads it.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace tandem {

struct MigrationProgress {
  // setup, precopy, stop-and-copy, postcopy, postcopy-paused (the target silent: see PageServer),
  // completed, failed, undecided (the guest paused here after Done: see MigrationSource::failSwitch),
  // postcopy-failed (the guest ran there and the postcopy ended unfinished: paused here for good)
  std::string phase = "setup";
  std::string mode;
  uint32_t round = 0;
  uint64_t pagesToSend = 0, pagesSent = 0;  // in this round (postcopy: of the owed pages)
  uint64_t bytes = 0;                                  // memory and disks together
  uint64_t diskChunksToSend = 0, diskChunksSent = 0;  // in this round's disk pass (64 KiB chunks)
  uint64_t diskBytes = 0;                              // of bytes, what disk chunks took
  double transferMiBps = 0;      // of the last round, or of postcopy so far
  double dirtyPagesPerSecond = 0;
  double expectedDowntimeMs = 0;
  unsigned throttlePercent = 0;  // auto-converge
  double leftMs = 0;             // estimated time to the end
  double elapsedMs = 0;
  std::optional<std::chrono::steady_clock::time_point> silentSince;  // postcopy-paused: last heard from the target
  double postcopyWaitMs = 0;                                          // postcopy-paused: silence that ends it
  std::string error;

  double percentSent() const {
    return pagesToSend ? 100.0 * static_cast<double>(pagesSent) / static_cast<double>(pagesToSend) : 0;
  }
  nlohmann::json toJson() const {
    nlohmann::json j{{"phase", phase},         {"mode", mode},
            {"round", round},         {"pages_to_send", pagesToSend},
            {"pages_sent", pagesSent}, {"percent_sent", percentSent()},
            {"bytes", bytes},         {"transfer_mib_s", transferMiBps},
            {"disk_chunks_to_send", diskChunksToSend}, {"disk_chunks_sent", diskChunksSent},
            {"disk_bytes", diskBytes},
            {"dirty_pages_s", dirtyPagesPerSecond}, {"expected_downtime_ms", expectedDowntimeMs},
            {"left_ms", leftMs},      {"elapsed_ms", elapsedMs},
            {"throttle_percent", throttlePercent},
            {"error", error}};
    if (silentSince) {
      j["silent_ms"] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - *silentSince).count();
      j["postcopy_wait_ms"] = postcopyWaitMs;
    }
    return j;
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
