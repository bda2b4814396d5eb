#include "base/thread.hpp"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cstring>

#include "base/log.hpp"

namespace tandem {

NamedThread::NamedThread(std::string name, std::function<void()> body) : name_(std::move(name)) {
  thread_ = std::thread([this, body = std::move(body)] {
    pthread_setname_np(pthread_self(), name_.substr(0, 15).c_str());
    try {
      body();
    } catch (...) {
      failure_ = std::current_exception();
    }
  });
}

NamedThread::~NamedThread() { join(); }

void NamedThread::join() {
  if (thread_.joinable()) thread_.join();
}

void NamedThread::rethrowIfFailed() {
  if (failure_) std::rethrow_exception(failure_);
}

RealtimeScope::RealtimeScope() {
  sched_param param{};
  param.sched_priority = 1;
  int rc = pthread_setschedparam(pthread_self(), SCHED_FIFO, &param);
  raised_ = rc == 0;
  static std::atomic<bool> told{false};
  if (!raised_ && !told.exchange(true))
    log::warn("real-time scheduling is not allowed here (", std::strerror(rc), "): released output may wait behind other threads");
}

RealtimeScope::~RealtimeScope() {
  if (!raised_) return;
  sched_param param{};
  pthread_setschedparam(pthread_self(), SCHED_OTHER, &param);
}

}  // namespace tandem
