// One page of a Pages message, checked and decoded: where it goes (GuestMemory numbering) and its
// 4 KiB. Throws Error(Failed) naming what is wrong: an unknown encoding, bytes that do not decode
// to a page, a frame outside guest memory, a difference (xbzrle) where none may come. Nothing is
// written to guest memory here. An xbzrle page applies to the copy guest memory holds now, which
// is read: only where that copy is what the source last sent (precopy, the guest not running).
#pragma once

#include <cstdint>

#include "memory/guest_memory.hpp"
#include "protocol.capnp.h"

namespace tandem {

enum class Deltas { Allowed, Refused };
uint64_t decodeReceivedPage(const GuestMemory& memory, schema::Page::Reader page, uint8_t* out, Deltas deltas);

}  // namespace tandem
