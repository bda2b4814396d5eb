// IdlePort: a guest that polls instead of taking interrupts writes how many microseconds it has
// nothing to do to port 0x502 (guest_abi.h); the vCPU thread then sleeps here until that time has
// passed or wake() is called (console input, a device that used a buffer, a pause request,
// shutdown). It saves the host a core per idle vCPU; it never changes what the guest computes,
// only when.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "devices/pio_bus.hpp"

namespace tandem::dev {

class IdlePort final : public PioDevice {
public:
  static constexpr uint32_t kMaxIdleMicroseconds = 1'000'000;
  // Spin this long before blocking, as KVM's halt polling does: a frame or a keystroke that comes
  // within it reaches the guest without a trip through the scheduler.
  static constexpr uint32_t kPollMicroseconds = 100;

  void read(uint16_t, std::span<uint8_t> data) override;
  void write(uint16_t, std::span<const uint8_t> data) override;  // sleeps on the vCPU thread
  // Ends every current sleep at once. Any thread.
  void wake();

private:
  std::mutex mutex_;
  std::condition_variable wakeup_;
  std::atomic<uint64_t> wakeups_{0};
};

}  // namespace tandem::dev
