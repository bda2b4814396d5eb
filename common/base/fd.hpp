// Fd: owns one file descriptor and closes it once. EventFd: a counter another thread can poke.
#pragma once

#include <cstdint>
#include <utility>

namespace tandem {

class Fd {
public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1);

private:
  int fd_ = -1;
};

class EventFd {
public:
  EventFd();
  void signal();                // adds 1; wakes a poll() on fd()
  uint64_t consume();           // reads and clears the counter (0 if nothing was signalled)
  int fd() const { return fd_.get(); }

private:
  Fd fd_;
};

}  // namespace tandem
