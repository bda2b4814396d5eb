// OutgoingMessage: an envelope to send together with a staging buffer it references without
// copying (Cap'n Proto external data). Channel::send takes it over and keeps it alive until
// ZeroMQ has put the buffer on the wire: the bytes in it are copied by nobody on the way.
#pragma once

#include <capnp/message.h>

#include <algorithm>
#include <cstdint>
#include <memory>

namespace tandem {

class OutgoingMessage {
public:
  capnp::MallocMessageBuilder& builder() { return builder_; }
  // A word-aligned buffer of at least bytes, owned by this message (one per message).
  uint8_t* staging(size_t bytes) {
    bytes = std::max<size_t>(bytes, 8);
    if (bytes > stagingBytes_) {
      staging_.reset(new uint64_t[(bytes + 7) / 8]);
      stagingBytes_ = bytes;
    }
    return reinterpret_cast<uint8_t*>(staging_.get());
  }
  // Data for a field that refers to [staging, staging + bytes): becomes a segment of its own.
  capnp::Orphan<capnp::Data> referenceStaging(size_t bytes) {
    return builder_.getOrphanage().referenceExternalData(
        capnp::Data::Reader(reinterpret_cast<const kj::byte*>(staging_.get()), bytes));
  }

private:
  std::unique_ptr<uint64_t[]> staging_;  // declared before builder_: outlives it
  size_t stagingBytes_ = 0;
  capnp::MallocMessageBuilder builder_;
};

}  // namespace tandem
