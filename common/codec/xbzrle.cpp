#include "codec/xbzrle.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

namespace tandem::codec {
namespace {

static_assert(std::endian::native == std::endian::little, "word scans find the first byte in the low bits");

// Unchanged stretches shorter than this are sent inside a data run (see the header).
constexpr size_t kMinZeroRun = 3;
constexpr uint64_t kOnes = 0x0101010101010101ull;
constexpr uint64_t kHighs = 0x8080808080808080ull;

// memmove, not memcpy, for the runs: g++ expands a memcpy whose size it can bound by 8 KiB into
// `rep movsq`, which costs some 40 ns per short run here; memmove stays a library call.
void copyRun(uint8_t* to, const uint8_t* from, size_t length) { std::memmove(to, from, length); }

uint64_t xorAt(const uint8_t* a, const uint8_t* b, size_t i) {
  uint64_t x, y;
  std::memcpy(&x, a + i, 8);
  std::memcpy(&y, b + i, 8);
  return x ^ y;
}

// The first offset from i on where the pages differ, or kPageSize.
// TODO(perf): two 8-byte loads per cycle bound this (~120 ns for an unchanged page); SSE2's
// 16-byte compares would halve it.
size_t skipEqual(const uint8_t* a, const uint8_t* b, size_t i) {
  while (i + 32 <= kPageSize &&
         (xorAt(a, b, i) | xorAt(a, b, i + 8) | xorAt(a, b, i + 16) | xorAt(a, b, i + 24)) == 0)
    i += 32;
  for (; i + 8 <= kPageSize; i += 8)
    if (uint64_t x = xorAt(a, b, i)) return i + std::countr_zero(x) / 8;
  while (i < kPageSize && a[i] == b[i]) ++i;
  return i;
}

// The first offset from i on where the pages are equal, or kPageSize. A zero byte of x marks an
// equal byte; (x - ones) & ~x & highs has its lowest set bit in the first zero byte of x (borrows
// can set bits above it, never below).
size_t skipDifferent(const uint8_t* a, const uint8_t* b, size_t i) {
  for (; i + 8 <= kPageSize; i += 8) {
    uint64_t x = xorAt(a, b, i);
    if (uint64_t zeros = (x - kOnes) & ~x & kHighs) return i + std::countr_zero(zeros) / 8;
  }
  while (i < kPageSize && a[i] != b[i]) ++i;
  return i;
}

size_t varintSize(size_t value) { return value < 0x80 ? 1 : 2; }

// Values up to kPageSize fit in two LEB128 bytes.
uint8_t* putVarint(uint8_t* p, size_t value) {
  if (value < 0x80) {
    *p++ = static_cast<uint8_t>(value);
  } else {
    *p++ = static_cast<uint8_t>(value | 0x80);
    *p++ = static_cast<uint8_t>(value >> 7);
  }
  return p;
}

// Reads one varint in its shortest form, at most kPageSize, advancing p; -1 if it is not one.
inline int getVarint(const uint8_t*& p, const uint8_t* end) {
  if (p == end) return -1;
  int low = *p++;
  if (low < 0x80) return low;
  if (p == end) return -1;
  int high = *p++;
  if (high == 0 || high >= 0x80) return -1;  // padded, or a third byte follows
  int value = (low & 0x7f) | high << 7;
  return value <= static_cast<int>(kPageSize) ? value : -1;
}

// Walks the records of delta, calling apply(offset, bytes, length) for each data run; false at
// the first thing that breaks the format, before apply() sees that record.
template <typename Apply>
bool forEachRecord(std::span<const uint8_t> delta, Apply&& apply) {
  const uint8_t* p = delta.data();
  const uint8_t* const end = p + delta.size();
  int offset = 0;
  while (p != end) {
    int zeroRun = getVarint(p, end);
    int dataRun = getVarint(p, end);
    if (zeroRun < 0 || dataRun <= 0 || (zeroRun == 0 && offset != 0)) return false;
    if (zeroRun + dataRun > static_cast<int>(kPageSize) - offset || dataRun > end - p) return false;
    offset += zeroRun;
    apply(offset, p, dataRun);
    offset += dataRun;
    p += dataRun;
  }
  return true;
}

}  // namespace

bool encodeXbzrle(const uint8_t* old, const uint8_t* now, std::vector<uint8_t>& out, size_t limit) {
  uint8_t buffer[kXbzrleMaxDelta];
  uint8_t* const room = buffer + std::min(limit, sizeof buffer);
  uint8_t* p = buffer;
  size_t offset = 0;
  for (;;) {
    size_t start = skipEqual(old, now, offset);
    if (start == kPageSize) break;
    size_t end = skipDifferent(old, now, start);
    while (end < kPageSize) {
      size_t resume = end + 1;
      while (resume < end + kMinZeroRun && resume < kPageSize && old[resume] == now[resume]) ++resume;
      if (resume == end + kMinZeroRun || resume == kPageSize) break;
      end = skipDifferent(old, now, resume);
    }
    size_t zeroRun = start - offset, dataRun = end - start;
    if (varintSize(zeroRun) + varintSize(dataRun) + dataRun > static_cast<size_t>(room - p)) return false;
    p = putVarint(p, zeroRun);
    p = putVarint(p, dataRun);
    copyRun(p, now + start, dataRun);
    p += dataRun;
    offset = end;
  }
  out.assign(buffer, p);
  return true;
}

bool encodeXbzrleFromZero(const uint8_t* now, std::vector<uint8_t>& out, size_t limit) {
  constexpr size_t kWords = kPageSize / 8;
  uint8_t buffer[kXbzrleMaxDelta];
  uint8_t* const room = buffer + std::min(limit, sizeof buffer);
  uint8_t* p = buffer;
  const auto* words = reinterpret_cast<const uint64_t*>(now);
  auto load = [&](size_t w) { return __atomic_load_n(&words[w], __ATOMIC_RELAXED); };
  size_t offset = 0;  // bytes the records so far cover
  size_t w = 0;
  uint64_t word = kWords ? load(0) : 0;
  while (w < kWords) {
    if (word == 0) {  // (each word is loaded once: a zero one ends a run and is skipped here)
      if (++w < kWords) word = load(w);
      continue;
    }
    // A data run of whole words, sent as read. Its header has room for two-byte varints; a
    // one-byte dataRun varint closes the gap afterwards. Every run after the first follows at
    // least one zero word, which pays for its header (see kXbzrleMaxDelta).
    size_t zeroRun = w * 8 - offset;
    if (room - p < static_cast<ptrdiff_t>(varintSize(zeroRun) + 2 + 8)) return false;
    uint8_t* header = p;
    uint8_t* data = p + varintSize(zeroRun) + 2;
    p = data;
    for (;;) {
      if (room - p < 8) return false;
      std::memcpy(p, &word, 8);
      p += 8;
      if (++w == kWords) break;
      word = load(w);
      if (word == 0) break;
    }
    size_t dataRun = static_cast<size_t>(p - data);
    uint8_t* q = putVarint(putVarint(header, zeroRun), dataRun);
    if (q != data) {
      std::memmove(q, data, dataRun);
      p = q + dataRun;
    }
    offset = w * 8;
  }
  out.assign(buffer, p);
  return true;
}

bool decodeXbzrle(std::span<const uint8_t> delta, uint8_t* page) {
  if (!forEachRecord(delta, [](int, const uint8_t*, int) {})) return false;
  forEachRecord(delta, [page](int offset, const uint8_t* bytes, int length) {
    copyRun(page + offset, bytes, static_cast<size_t>(length));
  });
  return true;
}

}  // namespace tandem::codec
