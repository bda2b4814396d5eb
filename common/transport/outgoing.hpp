// OutgoingMessage: an envelope to send together with a staging buffer it references without
// copying (Cap'n Proto external data). Channel::send takes it over and keeps it alive until
// ZeroMQ has put the buffer on the wire: the bytes in it are copied by nobody on the way.
#pragma once

#include <capnp/message.h>

#include <algorithm>
#include <cstdint>
#include <memory>

#include "transport/staging_pool.hpp"

namespace tandem {

class OutgoingMessage {
public:
  capnp::MallocMessageBuilder& builder() { return builder_; }
  // A word-aligned buffer of at least bytes, owned by this message (one per message).
  uint8_t* staging(size_t bytes) {
    bytes = std::max<size_t>(bytes, 8);
    if (bytes > stagingBytes_) {
      staging_ = StagingBuffer(new uint64_t[(bytes + 7) / 8], [](uint64_t* b) { delete[] b; });
      stagingBytes_ = bytes;
    }
    return reinterpret_cast<uint8_t*>(staging_.get());
  }
  // The same, from pool (bytes at most its buffer size): the buffer goes back when this message is done.
  uint8_t* staging(size_t bytes, StagingPool& pool) {
    if (bytes > pool.bufferBytes()) return staging(bytes);
    staging_ = pool.take();
    stagingBytes_ = pool.bufferBytes();
    return reinterpret_cast<uint8_t*>(staging_.get());
  }
  // Data for a field that refers to [staging, staging + bytes): becomes a segment of its own.
  capnp::Orphan<capnp::Data> referenceStaging(size_t bytes) {
    return builder_.getOrphanage().referenceExternalData(
        capnp::Data::Reader(reinterpret_cast<const kj::byte*>(staging_.get()), bytes));
  }

private:
  StagingBuffer staging_;  // declared before builder_: outlives it
  size_t stagingBytes_ = 0;
  capnp::MallocMessageBuilder builder_;
};

}  // namespace tandem
