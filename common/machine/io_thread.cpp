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

// No round trip to the thread: an idle io thread (the common case) is paused by setting the flag.
// A busy one is waited for until its handlers return; it then waits for resume() before the next.
void IoThread::pause() {
  std::unique_lock lock(mutex_);
  pauseRequested_ = true;
  changed_.wait(lock, [&] { return !busy_ || finished_; });
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
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return !pauseRequested_ || stopRequested_; });
      if (stopRequested_) return;
      busy_ = true;
    }
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == kControl) control_.consume();
      else handlers_[events[i].data.u64]();
    }
    std::lock_guard lock(mutex_);
    busy_ = false;
    if (pauseRequested_) changed_.notify_all();
  }
}

}  // namespace tandem
