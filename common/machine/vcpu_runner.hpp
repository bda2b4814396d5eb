// VcpuRunner: the thread that runs one vCPU, and the state machine other threads drive it with.
//
//   (start(Parked): parked before the first KVM_RUN) --resume()--> running
//   running --requestPause()--> (kick) --> parked --resume()--> running
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
#include <functional>
#include <memory>
#include <mutex>

#include "base/thread.hpp"
#include "kvm/vcpu.hpp"

namespace tandem {

class VcpuRunner {
public:
  // Handles one exit (runs on the vCPU thread); returns false when the vCPU must not run on.
  using ExitHandler = std::function<bool(kvm::Vcpu&)>;

  VcpuRunner(kvm::Vcpu& vcpu, ExitHandler handleExit);
  ~VcpuRunner();  // stops and joins

  // Parked: the thread waits for resume() before it first enters the guest (thread creation is
  // then out of the way when the guest has to start quickly).
  enum class Start { Running, Parked };
  void start(Start how = Start::Running);
  // Asks the vCPU to park; returns at once. waitParked() waits until it has (or has finished).
  void requestPause();
  void waitParked();
  void resume();
  // Throttling: the vCPU leaves the guest and sleeps for `nap`, then runs on; returns at once.
  void requestNap(std::chrono::microseconds nap);
  // Asks the thread to end; returns at once. join() waits for it.
  void requestStop();
  void join();

private:
  void loop();
  void kick();  // mutex_ held

  kvm::Vcpu& vcpu_;
  ExitHandler handleExit_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool pauseRequested_ = false;
  bool stopRequested_ = false;
  std::atomic<bool> parked_{false};  // written under mutex_; read without it by waitParked()'s spin
  bool finished_ = false;
  std::chrono::microseconds nap_{0};
  std::unique_ptr<NamedThread> thread_;
};

}  // namespace tandem
