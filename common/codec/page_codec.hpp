// Page encodings for the wire: zero (no bytes), lz4, raw, whichever is smallest; and xbzrle, the
// difference from an older copy (codec/xbzrle.hpp), chosen by the sender when it has one.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace tandem::codec {

enum class Encoding : uint8_t { Zero, Raw, Lz4, Xbzrle };

// Encodes one 4 KiB page into out (cleared first) as zero, lz4 or raw (only zero or raw without
// lz4); returns the encoding chosen.
Encoding encodePage(const uint8_t* page, std::vector<uint8_t>& out, bool lz4 = true);
bool isZeroPage(const uint8_t* page);
// Decodes into page (4 KiB); false if bytes are not a valid encoding of one page. For Xbzrle, page
// must hold the old copy the difference applies to.
bool decodePage(Encoding encoding, std::span<const uint8_t> bytes, uint8_t* page);

}  // namespace tandem::codec
