#include "memory/userfault.hpp"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/error.hpp"
#include "base/log.hpp"

namespace tandem {

Userfault::Userfault(GuestMemory& memory) : memory_(memory) {
  // Not UFFD_USER_MODE_ONLY: the faults that matter most come from the kernel (KVM filling the
  // guest's page tables, copy_to_user into guest memory).
  fd_ = Fd(static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK)));
  if (!fd_)
    throw Error(ErrorKind::Failed, concat("userfaultfd is not available (", std::strerror(errno),
                                          "); postcopy needs it: run as root or set vm.unprivileged_userfaultfd=1"));
  uffdio_api api{};
  api.api = UFFD_API;
  checkSys(::ioctl(fd_.get(), UFFDIO_API, &api), "UFFDIO_API");
  uffdio_register reg{};
  reg.range.start = reinterpret_cast<uint64_t>(memory.hostBase());
  reg.range.len = memory.size();
  reg.mode = UFFDIO_REGISTER_MODE_MISSING;
  checkSys(::ioctl(fd_.get(), UFFDIO_REGISTER, &reg), "UFFDIO_REGISTER");
  if (!(reg.ioctls & (uint64_t{1} << _UFFDIO_COPY)) || !(reg.ioctls & (uint64_t{1} << _UFFDIO_ZEROPAGE)))
    throw Error(ErrorKind::Failed, "userfaultfd cannot copy into guest memory on this kernel");
  registered_ = true;
}

Userfault::~Userfault() {
  try {
    unregister();
  } catch (const Error& e) {
    log::warn(e.what());
  }
}

void Userfault::unregister() {
  if (!registered_) return;
  registered_ = false;
  uffdio_range range{reinterpret_cast<uint64_t>(memory_.hostBase()), memory_.size()};
  checkSys(::ioctl(fd_.get(), UFFDIO_UNREGISTER, &range), "UFFDIO_UNREGISTER");
}

std::vector<uint64_t> Userfault::takeFaults() {
  std::vector<uint64_t> pages;
  uffd_msg messages[64];
  for (;;) {
    ssize_t got = ::read(fd_.get(), messages, sizeof(messages));
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      throwErrno("read userfaultfd", errno);
    }
    for (size_t i = 0; i < static_cast<size_t>(got) / sizeof(uffd_msg); ++i) {
      if (messages[i].event != UFFD_EVENT_PAGEFAULT) continue;
      auto offset = messages[i].arg.pagefault.address - reinterpret_cast<uint64_t>(memory_.hostBase());
      if (offset < memory_.size()) pages.push_back(offset / kPageSize);
    }
    if (static_cast<size_t>(got) < sizeof(messages)) break;
  }
  return pages;
}

bool Userfault::install(uint64_t page, const uint8_t* bytes) {
  uffdio_copy copy{};
  copy.dst = reinterpret_cast<uint64_t>(memory_.hostBase()) + page * kPageSize;
  copy.src = reinterpret_cast<uint64_t>(bytes);
  copy.len = kPageSize;
  if (::ioctl(fd_.get(), UFFDIO_COPY, &copy) == 0) return true;
  if (errno != EEXIST) throwErrno("UFFDIO_COPY", errno);
  wake(page);  // someone may have faulted on it while it was being installed another way
  return false;
}

bool Userfault::installZero(uint64_t page) {
  uffdio_zeropage zero{};
  zero.range.start = reinterpret_cast<uint64_t>(memory_.hostBase()) + page * kPageSize;
  zero.range.len = kPageSize;
  if (::ioctl(fd_.get(), UFFDIO_ZEROPAGE, &zero) == 0) return true;
  if (errno != EEXIST) throwErrno("UFFDIO_ZEROPAGE", errno);
  wake(page);
  return false;
}

void Userfault::wake(uint64_t page) {
  uffdio_range range{reinterpret_cast<uint64_t>(memory_.hostBase()) + page * kPageSize, kPageSize};
  checkSys(::ioctl(fd_.get(), UFFDIO_WAKE, &range), "UFFDIO_WAKE");
}

}  // namespace tandem
