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
  uint64_t seen = wakeups_.load();
  auto start = std::chrono::steady_clock::now();
  auto pollUntil = start + std::chrono::microseconds(std::min(microseconds, kPollMicroseconds));
  while (std::chrono::steady_clock::now() < pollUntil)
    if (wakeups_.load() != seen) return;
  std::unique_lock lock(mutex_);
  wakeup_.wait_until(lock, start + std::chrono::microseconds(microseconds), [&] { return wakeups_.load() != seen; });
}

void IdlePort::wake() {
  {
    std::lock_guard lock(mutex_);  // so a sleeper between its check and its wait is not missed
    ++wakeups_;
  }
  wakeup_.notify_all();
}

}  // namespace tandem::dev
