// BandwidthLimit: keeps what a migration sends at or below --max-bandwidth (bytes per second,
// 0 = no limit), averaged from the moment it was made.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <thread>

namespace tandem {

class BandwidthLimit {
public:
  using Clock = std::chrono::steady_clock;

  explicit BandwidthLimit(uint64_t bytesPerSecond) : rate_(bytesPerSecond) {}

  void account(uint64_t bytes) { sent_ += bytes; }
  // How long to wait before sending more; zero when sending now keeps within the limit.
  std::chrono::microseconds wait() const {
    if (rate_ == 0) return {};
    double allowedAt = static_cast<double>(sent_) / static_cast<double>(rate_);  // seconds since start
    double now = std::chrono::duration<double>(Clock::now() - start_).count();
    return std::chrono::microseconds(static_cast<int64_t>(std::max(0.0, allowedAt - now) * 1e6));
  }
  // Sleeps until sending is allowed again.
  void pace() const {
    if (auto w = wait(); w.count() > 0) std::this_thread::sleep_for(w);
  }

private:
  uint64_t rate_;
  uint64_t sent_ = 0;
  Clock::time_point start_ = Clock::now();
};

}  // namespace tandem
