// One page of a Pages message, checked and decoded: where it goes (GuestMemory numbering) and its
// 4 KiB. Throws Error(Failed) naming what is wrong: an unknown encoding, bytes that do not decode
// to a page, a frame outside guest memory. Nothing is written to guest memory here.
#pragma once

#include <cstdint>

#include "memory/guest_memory.hpp"
#include "protocol.capnp.h"

namespace tandem {

uint64_t decodeReceivedPage(const GuestMemory& memory, schema::Page::Reader page, uint8_t* out);

}  // namespace tandem
