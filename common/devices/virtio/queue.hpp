// Queue: the device side of one virtio 1.x split virtqueue in guest memory.
//
//   descriptor table  16 bytes each: addr, len, flags (NEXT 1, WRITE 2), next
//   available ring    flags, idx, ring[size]        (written by the driver)
//   used ring         flags, idx, ring[size]{id,len} (written by the device, through GuestMemory)
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "base/units.hpp"

namespace tandem {
class GuestMemory;
}

namespace tandem::dev::virtio {

struct QueueState {
  uint16_t size = 0;
  bool ready = false;
  uint64_t descTable = 0, availRing = 0, usedRing = 0;  // guest-physical
  uint16_t lastAvail = 0;  // the next available entry the device will take
  uint16_t usedIdx = 0;    // the device's copy of used->idx
  bool operator==(const QueueState&) const = default;
};

struct Buffer {
  Gpa gpa;
  uint32_t length = 0;
  bool deviceWritable = false;
};

struct Chain {
  uint16_t head = 0;
  std::vector<Buffer> buffers;
};

class Queue {
public:
  static constexpr uint16_t kMaxSize = 256;

  QueueState state;

  // The next chain the driver made available, or nullopt. A malformed chain (a loop, an index out
  // of range, memory that is not RAM) throws Error(Failed): the driver is broken.
  std::optional<Chain> pop(const GuestMemory& memory);
  // Returns a chain to the driver with `written` bytes written into its device-writable buffers.
  void pushUsed(GuestMemory& memory, uint16_t head, uint32_t written);
  // False while the driver asks for no interrupts (VRING_AVAIL_F_NO_INTERRUPT in the available
  // ring's flags): a driver that polls its used ring, as NAPI does, and says so to be left alone.
  bool interruptWanted(const GuestMemory& memory) const;
};

}  // namespace tandem::dev::virtio
