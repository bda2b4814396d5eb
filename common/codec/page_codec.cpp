#include "codec/page_codec.hpp"

#include <lz4.h>

#include <cstring>

#include "base/units.hpp"

namespace tandem::codec {

Encoding encodePage(const uint8_t* page, std::vector<uint8_t>& out) {
  out.clear();
  const auto* words = reinterpret_cast<const uint64_t*>(page);
  bool zero = true;
  for (size_t i = 0; i < kPageSize / 8 && zero; ++i) zero = words[i] == 0;
  if (zero) return Encoding::Zero;
  out.resize(static_cast<size_t>(LZ4_compressBound(kPageSize)));
  int n = LZ4_compress_default(reinterpret_cast<const char*>(page), reinterpret_cast<char*>(out.data()), kPageSize,
                               static_cast<int>(out.size()));
  if (n > 0 && static_cast<uint64_t>(n) < kPageSize) {
    out.resize(static_cast<size_t>(n));
    return Encoding::Lz4;
  }
  out.assign(page, page + kPageSize);
  return Encoding::Raw;
}

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
    case Encoding::Lz4:
      return LZ4_decompress_safe(reinterpret_cast<const char*>(bytes.data()), reinterpret_cast<char*>(page),
                                 static_cast<int>(bytes.size()), kPageSize) == static_cast<int>(kPageSize);
  }
  return false;
}

}  // namespace tandem::codec
