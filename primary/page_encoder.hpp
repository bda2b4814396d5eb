// PageEncoder: turns guest pages into a Pages envelope, each page encoded from a private copy
// (the guest may be writing it right now: it is then dirty again and goes later) as whatever is
// smallest, and counts the encodings it chose.
#pragma once

#include <capnp/message.h>

#include <cstdint>
#include <span>
#include <vector>

#include "memory/guest_memory.hpp"
#include "transport/channel.hpp"

namespace tandem {

struct EncodingCounts {
  uint64_t zero = 0, raw = 0, lz4 = 0;
};

class PageEncoder {
public:
  static constexpr size_t kPagesPerMessage = 256;

  explicit PageEncoder(const GuestMemory& memory) : memory_(memory), staged_(kPageSize) {}

  // Fills message (an envelope from channel.start) with pages (GuestMemory numbers, at most
  // kPagesPerMessage of them) for round.
  void build(const Channel& channel, capnp::MallocMessageBuilder& message, uint32_t round,
             std::span<const uint64_t> pages);
  const EncodingCounts& counts() const { return counts_; }

private:
  const GuestMemory& memory_;
  std::vector<uint8_t> staged_, encoded_;
  EncodingCounts counts_;
};

}  // namespace tandem
