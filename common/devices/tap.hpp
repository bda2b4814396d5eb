// Tap: an existing tap device (made by the operator or a test, e.g. ip tuntap add NAME mode tap),
// opened without packet information: whole Ethernet frames in, whole frames out.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "base/fd.hpp"

namespace tandem::dev {

class Tap {
public:
  static constexpr size_t kMaxFrame = 1514;

  // Throws Error(BadInput) naming the device if it does not exist or cannot be attached.
  explicit Tap(std::string name);

  int fd() const { return fd_.get(); }
  // Returns the frame's length, or 0 when none is waiting (the fd is non-blocking).
  size_t read(std::span<uint8_t> frame);
  // False if the kernel refused the frame (it is dropped, as a NIC would).
  bool write(std::span<const uint8_t> frame);

private:
  std::string name_;
  Fd fd_;
};

}  // namespace tandem::dev
