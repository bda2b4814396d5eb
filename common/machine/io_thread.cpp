#include "machine/io_thread.hpp"

#include <sys/epoll.h>

#include "base/error.hpp"

namespace tandem {

namespace {
constexpr uint64_t kControl = UINT64_MAX;
}

IoThread::IoThread() : epoll_(checkSys(::epoll_create1(EPOLL_CLOEXEC), "epoll_create1")) {
  epoll_event e{};
  e.events = EPOLLIN;
  e.data.u64 = kControl;
  checkSys(::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, control_.fd(), &e), "epoll_ctl");
}

IoThread::~IoThread() {
  {
    std::lock_guard lock(mutex_);
    stopRequested_ = true;
    changed_.notify_all();
  }
  control_.signal();
  if (thread_) thread_->join();
}

void IoThread::add(int fd, Handler handler) {
  require(!thread_, "IoThread::add after start");
  epoll_event e{};
  e.events = EPOLLIN;
  e.data.u64 = handlers_.size();
  checkSys(::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &e), "epoll_ctl");
  handlers_.push_back(std::move(handler));
}

void IoThread::start() {
  thread_ = std::make_unique<NamedThread>("io", [this] {
    loop();
    std::lock_guard lock(mutex_);
    finished_ = true;
    changed_.notify_all();
  });
}

void IoThread::pause() {
  if (!thread_) return;
  std::unique_lock lock(mutex_);
  pauseRequested_ = true;
  control_.signal();
  changed_.wait(lock, [&] { return parked_ || finished_; });
}

void IoThread::resume() {
  std::lock_guard lock(mutex_);
  pauseRequested_ = false;
  changed_.notify_all();
}

void IoThread::loop() {
  epoll_event events[32];
  for (;;) {
    int n = ::epoll_wait(epoll_.get(), events, 32, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      throwErrno("epoll_wait", errno);
    }
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 != kControl) continue;
      control_.consume();
      std::unique_lock lock(mutex_);
      if (stopRequested_) return;
      if (pauseRequested_) {
        parked_ = true;
        changed_.notify_all();
        changed_.wait(lock, [&] { return !pauseRequested_ || stopRequested_; });
        parked_ = false;
        if (stopRequested_) return;
      }
    }
    // Handlers run only while not paused: a pause request is seen at the next wait at the latest.
    for (int i = 0; i < n; ++i)
      if (events[i].data.u64 != kControl) handlers_[events[i].data.u64]();
  }
}

}  // namespace tandem
