// PreparedMemory: guest memory a standby allocates and has the host back before any source
// connects (tandem standby --prealloc SIZE), as QEMU's -mem-prealloc does for its destination.
// Receiving a guest then writes into pages that exist instead of having the host find and zero
// each one on its first touch: on this machine that touch costs more than the wire (0.5-0.9 GB/s
// for memory the host has left untouched a while), and it runs on the cores the guest and the
// sender need.
#pragma once

#include <cstdint>
#include <optional>

#include "memory/guest_memory.hpp"

namespace tandem {

class PreparedMemory {
public:
  // size 0: nothing is prepared, and every guest gets new memory.
  explicit PreparedMemory(uint64_t size) : size_(size) {}

  // Allocates and populates the memory if it is not ready (the first time, and again after a
  // guest took it and was dropped). Blocks for as long as that takes; logs how long.
  void prepare();
  // Memory for a guest of `size` bytes: the prepared memory when it is ready and has that size
  // (tookPrepared() tells), else new memory of 4 KiB pages that the host backs as they are written.
  GuestMemory take(uint64_t size);
  // Whether the memory take() returned last was prepared (every page backed, holding zeros).
  bool tookPrepared() const { return tookPrepared_; }

private:
  uint64_t size_;
  std::optional<GuestMemory> memory_;
  bool tookPrepared_ = false;
};

}  // namespace tandem
