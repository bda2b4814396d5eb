// VcpuRunner: the thread that runs one vCPU, and the state machine other threads drive it with.
//
//   (start(Parked): parked before the first KVM_RUN) --resume()--> running
//   running --requestPause()--> (kick) --> parked --resume()--> running
//   running --requestPause(Save::State)--> (kick) --> parked, then saves the vCPU's state on its
//           own thread while the caller goes on; savedState() waits for it (a thread not yet
//           woken from the last resume is still parked, and saves there)
//   running --requestNap(t)-->  (kick) --> asleep for t (a pause or stop ends it) --> running
//   any     --requestStop()-->  (kick) --> finished
//
// A kick sets the run page's immediate_exit and sends SIGRTMIN to the thread, so KVM_RUN returns
// EINTR whether the thread is inside it or about to enter it. The thread parks only after a KVM_RUN
// that returned EINTR, never straight after an I/O exit: KVM completes a pending IN first (its
// result lands in RAX on the next entry), so a parked vCPU's registers are always complete.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "base/thread.hpp"
#include "kvm/vcpu.hpp"

namespace tandem {

class VcpuRunner {
public:
  // Handles one exit (runs on the vCPU thread); returns false when the vCPU must not run on.
  using ExitHandler = std::function<bool(kvm::Vcpu&)>;

  // msrIndices: the MSRs a save reads (kvm::Vcpu::save()); it outlives the runner.
  VcpuRunner(kvm::Vcpu& vcpu, ExitHandler handleExit, const std::vector<uint32_t>& msrIndices);
  ~VcpuRunner();  // stops and joins

  // Parked: the thread waits for resume() before it first enters the guest (thread creation is
  // then out of the way when the guest has to start quickly).
  enum class Start { Running, Parked };
  void start(Start how = Start::Running);
  // Asks the vCPU to park; returns at once. waitParked() waits until it has (or has finished).
  // Save::State: once out of the guest the thread also saves the vCPU's state (about 100 us of
  // ioctls on this nested host), while whoever paused it goes on; savedState() waits for that
  // save and returns it (until resume()). waitParked() does not wait for the save.
  enum class Save { No, State };
  void requestPause(Save save = Save::No);
  void waitParked();
  const kvm::VcpuState& savedState() const;
  // Lets the vCPU run on (after a save in progress, if any, has ended).
  void resume();
  // resume() follows within a millisecond or so: a parked thread wakes now and watches for it, so
  // that the resume does not also wait for the thread to be woken (tens of microseconds across
  // cores on this nested host; a migration target does this inside its downtime).
  void expectResume();
  // Throttling: the vCPU leaves the guest and sleeps for `nap`, then runs on; returns at once.
  void requestNap(std::chrono::microseconds nap);
  // Asks the thread to end; returns at once. join() waits for it.
  void requestStop();
  void join();

private:
  void loop();
  void kick();  // mutex_ held
  void waitWhileParked(std::unique_lock<std::mutex>& lock);
  void saveWhileParked(std::unique_lock<std::mutex>& lock);

  kvm::Vcpu& vcpu_;
  ExitHandler handleExit_;
  const std::vector<uint32_t>& msrIndices_;
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::atomic<bool> pauseRequested_{false};  // written under mutex_; read without it while watching
  bool stopRequested_ = false;
  bool resumeExpected_ = false;
  bool saveRequested_ = false;
  std::atomic<bool> saving_{false};  // written under mutex_; read without it by savedState()'s spin
  std::optional<kvm::VcpuState> saved_;  // this pause's save, once done
  std::exception_ptr saveError_;
  std::atomic<bool> parked_{false};  // written under mutex_; read without it by waitParked()'s spin
  bool finished_ = false;
  std::chrono::microseconds nap_{0};
  std::unique_ptr<NamedThread> thread_;
};

}  // namespace tandem
