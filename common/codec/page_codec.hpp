// Page encodings for the wire: zero (no bytes), lz4, raw, whichever is smallest; and xbzrle, the
// difference from an older copy (codec/xbzrle.hpp), chosen by the sender when it has one.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace tandem::codec {

enum class Encoding : uint8_t { Zero, Raw, Lz4, Xbzrle };

// Encodes one 4 KiB page into out (cleared first) as zero, lz4 or raw, whichever is smallest;
// returns the encoding chosen.
Encoding encodePage(const uint8_t* page, std::vector<uint8_t>& out);
bool isZeroPage(const uint8_t* page);
// The page as an LZ4 block in out (room for kLz4Bound bytes); its size, or 0 when it would not
// be smaller than the page.
constexpr size_t kLz4Bound = 4096 + 4096 / 255 + 16;
size_t compressLz4(const uint8_t* page, uint8_t* out);
// The same into room bytes at out; 0 when the block would not fit. page may change meanwhile (a
// guest writing it): the block then decodes to some page, not necessarily any it held.
size_t compressLz4Into(const uint8_t* page, uint8_t* out, size_t room);
// Decodes into page (4 KiB); false if bytes are not a valid encoding of one page. For Xbzrle, page
// must hold the old copy the difference applies to.
bool decodePage(Encoding encoding, std::span<const uint8_t> bytes, uint8_t* page);

// The same for a block of any size (disk chunks): zero, lz4 or raw, whichever is smallest, and
// back into out (its size is the block's); false if bytes do not decode to exactly out.size().
// RawCopy::Skip: a block that goes raw leaves out empty (the caller sends the block itself).
// Lz4::Skip: zero or raw only (for a caller that found the last blocks incompressible).
enum class RawCopy { Make, Skip };
enum class Lz4 { Try, Skip };
Encoding encodeBlock(std::span<const uint8_t> block, std::vector<uint8_t>& out, RawCopy raw = RawCopy::Make,
                     Lz4 lz4 = Lz4::Try);
bool decodeBlock(Encoding encoding, std::span<const uint8_t> bytes, std::span<uint8_t> out);

}  // namespace tandem::codec
