#include "machine/vcpu_runner.hpp"

#include <pthread.h>
#include <signal.h>

#include <mutex>
#include <thread>
#include <utility>

#include "base/error.hpp"

namespace tandem {

namespace {

int kickSignal() { return SIGRTMIN; }

constexpr auto kParkSpin = std::chrono::microseconds(200);

// The kick signal only has to interrupt KVM_RUN; its handler does nothing (and takes no lock).
void installKickHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction action{};
    action.sa_handler = [](int) {};
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return EINTR
    checkSys(::sigaction(kickSignal(), &action, nullptr), "sigaction for the vCPU kick signal");
  });
}

}  // namespace

VcpuRunner::VcpuRunner(kvm::Vcpu& vcpu, ExitHandler handleExit) : vcpu_(vcpu), handleExit_(std::move(handleExit)) {
  installKickHandler();
}

VcpuRunner::~VcpuRunner() {
  requestStop();
  join();
}

void VcpuRunner::start(Start how) {
  require(!thread_, "vcpu ", vcpu_.index(), " started twice");
  if (how == Start::Parked) {
    std::lock_guard lock(mutex_);
    pauseRequested_ = true;
  }
  thread_ = std::make_unique<NamedThread>(concat("vcpu", vcpu_.index()), [this] {
    try {
      loop();
    } catch (...) {
      std::lock_guard lock(mutex_);
      finished_ = true;
      changed_.notify_all();
      throw;
    }
    std::lock_guard lock(mutex_);
    finished_ = true;
    changed_.notify_all();
  });
}

void VcpuRunner::kick() {
  vcpu_.runPage().immediate_exit = 1;
  if (thread_ && !finished_) ::pthread_kill(thread_->nativeHandle(), kickSignal());
}

void VcpuRunner::requestPause() {
  std::lock_guard lock(mutex_);
  pauseRequested_ = true;
  kick();
}

void VcpuRunner::waitParked() {
  // The guest's pause waits for this: look for a while before sleeping (being woken across cores
  // costs tens of microseconds on this nested host); yielding lets a vCPU thread on this core park.
  auto until = std::chrono::steady_clock::now() + kParkSpin;
  while (!parked_.load(std::memory_order_acquire) && std::chrono::steady_clock::now() < until) std::this_thread::yield();
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return parked_ || finished_ || !thread_; });
}

void VcpuRunner::resume() {
  std::lock_guard lock(mutex_);
  pauseRequested_ = false;
  changed_.notify_all();
}

void VcpuRunner::requestNap(std::chrono::microseconds nap) {
  std::lock_guard lock(mutex_);
  nap_ = nap;
  kick();
}

void VcpuRunner::requestStop() {
  std::lock_guard lock(mutex_);
  stopRequested_ = true;
  kick();
  changed_.notify_all();
}

void VcpuRunner::join() {
  if (!thread_) return;
  thread_->join();
  thread_->rethrowIfFailed();
}

void VcpuRunner::loop() {
  kvm_run& run = vcpu_.runPage();
  {
    std::unique_lock lock(mutex_);
    if (pauseRequested_) {  // started parked
      parked_ = true;
      changed_.notify_all();
      changed_.wait(lock, [&] { return !pauseRequested_ || stopRequested_; });
      parked_ = false;
    }
    if (stopRequested_) return;
  }
  for (;;) {
    if (vcpu_.run() == kvm::Vcpu::RunResult::Exited) {
      if (!handleExit_(vcpu_)) return;
      continue;
    }
    std::unique_lock lock(mutex_);
    run.immediate_exit = 0;  // cleared under the lock, so a kick that follows is never lost
    if (stopRequested_) return;
    if (nap_.count() > 0 && !pauseRequested_) {
      auto nap = std::exchange(nap_, std::chrono::microseconds(0));
      changed_.wait_for(lock, nap, [&] { return pauseRequested_ || stopRequested_; });
      if (stopRequested_) return;
    }
    if (!pauseRequested_) continue;
    parked_ = true;
    changed_.notify_all();
    changed_.wait(lock, [&] { return !pauseRequested_ || stopRequested_; });
    parked_ = false;
    if (stopRequested_) return;
  }
}

}  // namespace tandem
