// Page encodings for the wire: zero (no bytes), lz4, raw, whichever is smallest.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace tandem::codec {

enum class Encoding : uint8_t { Zero, Raw, Lz4 };

// Encodes one 4 KiB page into out (cleared first); returns the encoding chosen.
Encoding encodePage(const uint8_t* page, std::vector<uint8_t>& out);
// Decodes into page (4 KiB); false if bytes are not a valid encoding of one page.
bool decodePage(Encoding encoding, std::span<const uint8_t> bytes, uint8_t* page);

}  // namespace tandem::codec
