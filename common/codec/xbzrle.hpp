// XBZRLE: a 4 KiB page sent as its difference from the copy the receiver already holds.
//
// The delta is a sequence of records, one per stretch of bytes that changed:
//
//   record := varint zeroRun, varint dataRun, dataRun bytes of the new page
//
// where the varints are unsigned LEB128 (7 bits per byte, low group first; here at most two
// bytes, since no run exceeds 4096). zeroRun counts the unchanged bytes skipped before the
// stretch, dataRun the bytes that follow, copied from the new page. The unchanged tail of the
// page has no record, so an identical page is the empty delta. The format is canonical and the
// decoder holds senders to it: dataRun >= 1, zeroRun >= 1 in every record after the first,
// varints in their shortest form, records never running past the page, nothing after the last.
//
// The encoder folds an unchanged stretch shorter than three bytes into the surrounding data run
// (splitting there would cost two varint bytes to save at most two). So every record after the
// first skips three or more bytes, which pay for its varints, and no delta exceeds the page by
// more than the first record's varints: see kXbzrleMaxDelta.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "base/units.hpp"

namespace tandem::codec {

// The largest delta encodeXbzrle() can produce (every byte changed: varints 0 and 4096, 4096 bytes).
constexpr size_t kXbzrleMaxDelta = kPageSize + 3;

// Encodes the 4 KiB page `now` as its difference from `old` into `out` (replacing its contents;
// reuse one vector, its capacity is kept). Returns false, with `out` unspecified, when the delta
// would be longer than `limit` bytes: the caller then sends the page another way (lz4, raw).
// Both pages must stay unchanged during the call: encode from a staged copy, not live guest RAM.
bool encodeXbzrle(const uint8_t* old, const uint8_t* now, std::vector<uint8_t>& out, size_t limit);

// Encodes `now` as its difference from a page of zeros, for a receiver known to hold zeros there
// (a migration's round 0), reading each 8-byte word of `now` once: `now` may be guest memory that
// changes meanwhile (the delta is then valid and canonical, of some page). Runs are whole words.
// Returns false when the delta would be longer than `limit`; an all-zero page is the empty delta.
bool encodeXbzrleFromZero(const uint8_t* now, std::vector<uint8_t>& out, size_t limit);

// Applies `delta` to `page` (4 KiB holding the old content). The whole delta is validated before
// the first byte is written, so on false (any malformed or non-canonical input) `page` is
// untouched, and nothing outside its 4096 bytes is ever written.
bool decodeXbzrle(std::span<const uint8_t> delta, uint8_t* page);

}  // namespace tandem::codec
