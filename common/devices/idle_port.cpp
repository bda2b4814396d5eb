#include "devices/idle_port.hpp"

#include <algorithm>
#include <cstring>

namespace tandem::dev {

void IdlePort::read(uint16_t, std::span<uint8_t> data) { std::fill(data.begin(), data.end(), 0); }

void IdlePort::write(uint16_t, std::span<const uint8_t> data) {
  uint32_t microseconds = 0;
  std::memcpy(&microseconds, data.data(), std::min(data.size(), sizeof microseconds));
  microseconds = std::min(microseconds, kMaxIdleMicroseconds);
  if (microseconds == 0) return;
  std::unique_lock lock(mutex_);
  uint64_t seen = wakeups_;
  wakeup_.wait_for(lock, std::chrono::microseconds(microseconds), [&] { return wakeups_ != seen; });
}

void IdlePort::wake() {
  {
    std::lock_guard lock(mutex_);
    ++wakeups_;
  }
  wakeup_.notify_all();
}

}  // namespace tandem::dev
