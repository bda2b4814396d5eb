// IoThread: the "io" thread. Waits on eventfds (virtio queue notifications; later tap and disk
// completions) and runs each one's handler. Machine::pause() quiesces it too, so nothing writes
// guest memory or device state while a capture is taken.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "base/fd.hpp"
#include "base/thread.hpp"

namespace tandem {

class IoThread {
public:
  using Handler = std::function<void()>;

  IoThread();
  ~IoThread();  // stops and joins

  // Before start(): runs handler on the io thread each time fd becomes readable. The handler
  // consumes what made fd readable.
  void add(int fd, Handler handler);
  void start();
  // Returns once no handler runs, and none starts until resume().
  void pause();
  void resume();

private:
  void loop();

  Fd epoll_;
  EventFd control_;
  std::vector<Handler> handlers_;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool pauseRequested_ = false, busy_ = false, stopRequested_ = false, finished_ = false;
  std::unique_ptr<NamedThread> thread_;
};

}  // namespace tandem
