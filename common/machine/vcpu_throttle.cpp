#include "machine/vcpu_throttle.hpp"

#include <algorithm>

namespace tandem {

VcpuThrottle::VcpuThrottle(std::vector<VcpuRunner*> runners, unsigned percent)
    : runners_(std::move(runners)), percent_(std::min(percent, 99u)) {
  thread_ = std::make_unique<NamedThread>("throttle", [this] { loop(); });
}

VcpuThrottle::~VcpuThrottle() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
    changed_.notify_all();
  }
  thread_.reset();
}

void VcpuThrottle::set(unsigned percent) {
  std::lock_guard lock(mutex_);
  percent_ = std::min(percent, 99u);
}

unsigned VcpuThrottle::percent() const {
  std::lock_guard lock(mutex_);
  return percent_;
}

void VcpuThrottle::loop() {
  std::unique_lock lock(mutex_);
  auto next = std::chrono::steady_clock::now();
  while (!stop_) {
    auto nap = std::chrono::duration_cast<std::chrono::microseconds>(kPeriod) * percent_ / 100;
    for (VcpuRunner* r : runners_) r->requestNap(nap);
    next += kPeriod;
    changed_.wait_until(lock, next, [&] { return stop_; });
  }
}

}  // namespace tandem
