#include "devices/virtio/queue.hpp"

#include <atomic>
#include <cstring>

#include "base/error.hpp"
#include "memory/guest_memory.hpp"

namespace tandem::dev::virtio {

namespace {

constexpr uint16_t kDescNext = 1, kDescWrite = 2, kDescIndirect = 4;

struct Descriptor {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(Descriptor) == 16);

template <typename T>
T load(const GuestMemory& memory, uint64_t gpa) {
  T value;
  std::memcpy(&value, memory.hostAddress(Gpa{gpa}, sizeof(T)), sizeof(T));
  return value;
}

}  // namespace

std::optional<Chain> Queue::pop(const GuestMemory& memory) {
  if (!state.ready || state.size == 0) return std::nullopt;
  uint16_t availIdx = load<uint16_t>(memory, state.availRing + 2);
  if (availIdx == state.lastAvail) return std::nullopt;
  std::atomic_thread_fence(std::memory_order_acquire);  // ring entries after the index that covers them
  uint16_t head = load<uint16_t>(memory, state.availRing + 4 + 2 * (state.lastAvail % state.size));
  ++state.lastAvail;

  Chain chain;
  chain.head = head;
  uint16_t index = head;
  for (unsigned hops = 0;; ++hops) {
    if (index >= state.size || hops >= state.size)
      throw Error(ErrorKind::Failed, concat("virtqueue chain from ", head, " is malformed at descriptor ", index));
    auto d = load<Descriptor>(memory, state.descTable + 16ull * index);
    if (d.flags & kDescIndirect) throw Error(ErrorKind::Failed, "indirect descriptors were not negotiated");
    memory.hostAddress(Gpa{d.addr}, d.len);  // throws if the buffer is not RAM
    chain.buffers.push_back(Buffer{Gpa{d.addr}, d.len, (d.flags & kDescWrite) != 0});
    if (!(d.flags & kDescNext)) break;
    index = d.next;
  }
  return chain;
}

void Queue::pushUsed(GuestMemory& memory, uint16_t head, uint32_t written) {
  uint32_t element[2] = {head, written};
  memory.write(Gpa{state.usedRing + 4 + 8ull * (state.usedIdx % state.size)},
               std::span(reinterpret_cast<const uint8_t*>(element), sizeof element));
  std::atomic_thread_fence(std::memory_order_release);  // the element before the index that shows it
  ++state.usedIdx;
  memory.write(Gpa{state.usedRing + 2}, std::span(reinterpret_cast<const uint8_t*>(&state.usedIdx), 2));
}

bool Queue::interruptWanted(const GuestMemory& memory) const {
  constexpr uint16_t kNoInterrupt = 1;
  // The used index the device just wrote before the flags it reads: a driver that clears the flag
  // and then looks at the used ring (with a full barrier between, as this one) either sees the
  // new entry or has its flag seen here.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return !(load<uint16_t>(memory, state.availRing) & kNoInterrupt);
}

}  // namespace tandem::dev::virtio
