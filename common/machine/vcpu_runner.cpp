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
constexpr auto kResumeWatch = std::chrono::milliseconds(2);

// Looks at flag, yielding, while it holds `value`, for at most `limit`: the short waits of a pause
// and resume, where being woken across cores would cost tens of microseconds on this nested host.
void watchWhile(const std::atomic<bool>& flag, bool value, std::chrono::microseconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (flag.load(std::memory_order_acquire) == value && std::chrono::steady_clock::now() < until)
    std::this_thread::yield();
}

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

VcpuRunner::VcpuRunner(kvm::Vcpu& vcpu, ExitHandler handleExit, const std::vector<uint32_t>& msrIndices)
    : vcpu_(vcpu), handleExit_(std::move(handleExit)), msrIndices_(msrIndices) {
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

void VcpuRunner::requestPause(Save save) {
  std::lock_guard lock(mutex_);
  if (pauseRequested_) return;  // (parked since it started, or paused already: nothing to ask)
  pauseRequested_ = true;
  saveRequested_ = save == Save::State;
  saved_.reset();
  saveError_ = nullptr;
  kick();
  changed_.notify_all();  // (a thread still parked from the last pause saves there)
}

void VcpuRunner::waitParked() {
  // The guest's pause waits for this: look for a while before sleeping (being woken across cores
  // costs tens of microseconds on this nested host); yielding lets a vCPU thread on this core park.
  watchWhile(parked_, false, kParkSpin);
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return parked_ || finished_ || !thread_; });
}

const kvm::VcpuState& VcpuRunner::savedState() const {
  // As waitParked(): the save is about done when this is asked; look for a while before sleeping.
  watchWhile(saving_, true, kParkSpin);
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return saved_ || saveError_ || (!saveRequested_ && !saving_) || finished_; });
  if (saveError_) std::rethrow_exception(saveError_);
  if (!saved_) throw Error(ErrorKind::Failed, concat("vcpu ", vcpu_.index(), " ended before its state was saved"));
  return *saved_;
}

void VcpuRunner::resume() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return !saving_; });
  pauseRequested_ = false;
  saveRequested_ = false;
  saved_.reset();
  changed_.notify_all();
}

void VcpuRunner::expectResume() {
  std::lock_guard lock(mutex_);
  resumeExpected_ = true;
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
    if (pauseRequested_) waitWhileParked(lock);  // started parked
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
    if (saveRequested_) saveWhileParked(lock);
    waitWhileParked(lock);
    if (stopRequested_) return;
  }
}

// The guest is out, so the pause need not wait: parked_ is set first, and the save runs while the
// thread that paused the vCPU goes on with its own work.
void VcpuRunner::saveWhileParked(std::unique_lock<std::mutex>& lock) {
  saveRequested_ = false;
  saving_ = true;
  parked_ = true;
  changed_.notify_all();
  lock.unlock();
  std::this_thread::yield();  // a pausing thread on this core goes on first (the save does not hold it up)
  std::optional<kvm::VcpuState> saved;
  std::exception_ptr error;
  try {
    saved = vcpu_.saveOnRunThread(msrIndices_);
  } catch (...) {
    error = std::current_exception();
  }
  lock.lock();
  saved_ = std::move(saved);
  saveError_ = error;
  saving_ = false;
  changed_.notify_all();
}

// Until resume() or a stop; after expectResume(), watching for the resume for a while rather than
// sleeping through it. A pause that asks for a save can come before this thread has even woken
// from the resume of the last one: it is still parked then, and saves here.
void VcpuRunner::waitWhileParked(std::unique_lock<std::mutex>& lock) {
  parked_ = true;
  changed_.notify_all();
  for (;;) {
    changed_.wait(lock, [&] { return !pauseRequested_ || stopRequested_ || resumeExpected_ || saveRequested_; });
    if (!pauseRequested_ || stopRequested_) break;
    if (saveRequested_) {
      saveWhileParked(lock);
      continue;
    }
    resumeExpected_ = false;
    lock.unlock();
    watchWhile(pauseRequested_, true, kResumeWatch);
    lock.lock();
  }
  parked_ = false;
}

}  // namespace tandem
