#include "codec/page_codec.hpp"

#include <lz4.h>

#include <cstring>

#include "base/units.hpp"
#include "codec/xbzrle.hpp"

namespace tandem::codec {

bool isZeroPage(const uint8_t* page) {
  const auto* words = reinterpret_cast<const uint64_t*>(page);
  for (size_t i = 0; i < kPageSize / 8; ++i)
    if (words[i]) return false;
  return true;
}

size_t compressLz4(const uint8_t* page, uint8_t* out) { return compressLz4Into(page, out, kPageSize - 1); }

size_t compressLz4Into(const uint8_t* page, uint8_t* out, size_t room) {
  int n = LZ4_compress_default(reinterpret_cast<const char*>(page), reinterpret_cast<char*>(out), kPageSize,
                               static_cast<int>(room));
  return n > 0 ? static_cast<size_t>(n) : 0;
}

Encoding encodePage(const uint8_t* page, std::vector<uint8_t>& out) {
  out.clear();
  if (isZeroPage(page)) return Encoding::Zero;
  out.resize(kLz4Bound);
  if (size_t n = compressLz4(page, out.data())) {
    out.resize(n);
    return Encoding::Lz4;
  }
  out.assign(page, page + kPageSize);
  return Encoding::Raw;
}

static_assert(kLz4Bound >= static_cast<size_t>(LZ4_COMPRESSBOUND(4096)));

bool decodePage(Encoding encoding, std::span<const uint8_t> bytes, uint8_t* page) {
  switch (encoding) {
    case Encoding::Zero:
      if (!bytes.empty()) return false;
      std::memset(page, 0, kPageSize);
      return true;
    case Encoding::Raw:
      if (bytes.size() != kPageSize) return false;
      std::memcpy(page, bytes.data(), kPageSize);
      return true;
    case Encoding::Xbzrle:
      return decodeXbzrle(bytes, page);
    case Encoding::Lz4:
      return LZ4_decompress_safe(reinterpret_cast<const char*>(bytes.data()), reinterpret_cast<char*>(page),
                                 static_cast<int>(bytes.size()), kPageSize) == static_cast<int>(kPageSize);
  }
  return false;
}

Encoding encodeBlock(std::span<const uint8_t> block, std::vector<uint8_t>& out, RawCopy raw, Lz4 lz4) {
  out.clear();
  const uint8_t* p = block.data();
  size_t n = block.size();
  if (n == 0 || (p[0] == 0 && std::memcmp(p, p + 1, n - 1) == 0)) return Encoding::Zero;
  int packed = 0;
  if (lz4 == Lz4::Try) {
    out.resize(static_cast<size_t>(LZ4_compressBound(static_cast<int>(n))));
    packed = LZ4_compress_default(reinterpret_cast<const char*>(p), reinterpret_cast<char*>(out.data()),
                                  static_cast<int>(n), static_cast<int>(out.size()));
  }
  if (packed > 0 && static_cast<size_t>(packed) < n) {
    out.resize(static_cast<size_t>(packed));
    return Encoding::Lz4;
  }
  if (raw == RawCopy::Make) out.assign(p, p + n);
  else out.clear();
  return Encoding::Raw;
}

bool decodeBlock(Encoding encoding, std::span<const uint8_t> bytes, std::span<uint8_t> out) {
  switch (encoding) {
    case Encoding::Zero:
      if (!bytes.empty()) return false;
      std::memset(out.data(), 0, out.size());
      return true;
    case Encoding::Raw:
      if (bytes.size() != out.size()) return false;
      std::memcpy(out.data(), bytes.data(), out.size());
      return true;
    case Encoding::Lz4:
      return LZ4_decompress_safe(reinterpret_cast<const char*>(bytes.data()), reinterpret_cast<char*>(out.data()),
                                 static_cast<int>(bytes.size()), static_cast<int>(out.size())) == static_cast<int>(out.size());
    case Encoding::Xbzrle:
      return false;
  }
  return false;
}

}  // namespace tandem::codec
