#include "devices/tap.hpp"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstring>

#include "base/error.hpp"

namespace tandem::dev {

Tap::Tap(std::string name) : name_(std::move(name)) {
  if (name_.empty() || name_.size() >= IFNAMSIZ) failBadInput("tap name '", name_, "' must be 1 to ", IFNAMSIZ - 1, " characters");
  if (::if_nametoindex(name_.c_str()) == 0)
    failBadInput("tap device ", name_, " does not exist; create it first (ip tuntap add ", name_, " mode tap)");
  int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) failBadInput("cannot open /dev/net/tun for tap ", name_, ": ", std::strerror(errno));
  fd_.reset(fd);
  ifreq request{};
  std::strncpy(request.ifr_name, name_.c_str(), IFNAMSIZ - 1);
  request.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (::ioctl(fd, TUNSETIFF, &request) < 0)
    failBadInput("cannot attach to tap device ", name_, ": ", std::strerror(errno), " (is it a tap, and free?)");
}

size_t Tap::read(std::span<uint8_t> frame) {
  for (;;) {
    ssize_t n = ::read(fd_.get(), frame.data(), frame.size());
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return 0;
    throwErrno(concat("read from tap ", name_), errno);
  }
}

bool Tap::write(std::span<const uint8_t> frame) {
  for (;;) {
    ssize_t n = ::write(fd_.get(), frame.data(), frame.size());
    if (n >= 0) return static_cast<size_t>(n) == frame.size();
    if (errno == EINTR) continue;
    return false;
  }
}

}  // namespace tandem::dev
