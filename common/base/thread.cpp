#include "base/thread.hpp"

#include <pthread.h>

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

}  // namespace tandem
