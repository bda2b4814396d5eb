// One page of a Pages message, checked and decoded: where it goes (GuestMemory numbering) and its
// 4 KiB. Throws Error(Failed) naming what is wrong: an unknown encoding, bytes that do not decode
// to a page, a frame outside guest memory, a difference (xbzrle) where none may come. Nothing is
// written to guest memory here, but by writeReceivedPages. An xbzrle page applies to the copy guest memory holds now, which
// is read: only where that copy is what the source last sent (precopy, the guest not running).
#pragma once

#include <cstdint>
#include <functional>

#include "codec/page_codec.hpp"
#include "memory/guest_memory.hpp"
#include "protocol.capnp.h"

namespace tandem {

enum class Deltas { Allowed, Refused };

// The wire's name of an encoding as the codec's; false for one the codec does not know.
bool codecEncoding(schema::Encoding e, codec::Encoding& out);

// Decodes each page of pages in turn into a 4 KiB buffer and hands it to take(page number, bytes).
// A message Cap'n Proto cannot read (a bad pointer deep inside) is an Error(Failed) too.
void decodeReceivedPages(const GuestMemory& memory, schema::Pages::Reader pages, Deltas deltas,
                         const std::function<void(uint64_t page, const uint8_t* bytes)>& take);

// The same, each page decoded straight into its place in guest memory (one copy less): only for
// memory that is dropped whole when a message fails (a migration's target, a replica's sync),
// since a page that does not decode may be left half-written. Not marked dirty (GuestMemory::write
// does that; nothing tracks a target's memory before it runs).
void writeReceivedPages(GuestMemory& memory, schema::Pages::Reader pages, Deltas deltas);

}  // namespace tandem
