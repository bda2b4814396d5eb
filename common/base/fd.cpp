#include "base/fd.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "base/error.hpp"

namespace tandem {

void Fd::reset(int fd) {
  if (fd_ >= 0 && ::close(fd_) < 0) std::fprintf(stderr, "tandem: close(%d) failed: %s\n", fd_, std::strerror(errno));
  fd_ = fd;
}

EventFd::EventFd() : fd_(checkSys(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "eventfd")) {}

void EventFd::signal() {
  uint64_t one = 1;
  retrySys("eventfd write", [&] { return ::write(fd_.get(), &one, sizeof one); });
}

uint64_t EventFd::consume() {
  uint64_t value = 0;
  if (::read(fd_.get(), &value, sizeof value) < 0) {
    if (errno == EAGAIN) return 0;
    throwErrno("eventfd read", errno);
  }
  return value;
}

}  // namespace tandem
