// VcpuThrottle: slows a guest down to a share of its vCPUs' time (auto-converge). Every 10 ms its
// thread ("throttle") asks each vCPU to nap for percent% of the period, so the guest runs the rest;
// a pause or stop cuts a nap short. Gone with the object: the guest runs at full speed again.
#pragma once

#include <condition_variable>
#include <mutex>
#include <vector>

#include "base/thread.hpp"
#include "machine/vcpu_runner.hpp"

namespace tandem {

class VcpuThrottle {
public:
  static constexpr auto kPeriod = std::chrono::milliseconds(10);

  VcpuThrottle(std::vector<VcpuRunner*> runners, unsigned percent);
  ~VcpuThrottle();

  void set(unsigned percent);  // 0..99
  unsigned percent() const;

private:
  void loop();

  std::vector<VcpuRunner*> runners_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  unsigned percent_;
  bool stop_ = false;
  std::unique_ptr<NamedThread> thread_;
};

}  // namespace tandem
