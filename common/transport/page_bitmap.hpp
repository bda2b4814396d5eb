// A PageSet on the wire (Postcopy.owed, PostcopyResume): its 64-bit words in host byte order, by
// page number (GuestMemory numbering, the same on both sides of a migration).
#pragma once

#include <capnp/blob.h>

#include <cstring>
#include <optional>

#include "memory/dirty_tracker.hpp"

namespace tandem {

inline capnp::Data::Reader bitmapBytes(const PageSet& pages) {
  return {reinterpret_cast<const kj::byte*>(pages.words.data()), pages.words.size() * sizeof(uint64_t)};
}

// The set of `pageCount` pages the bytes encode; nullopt when they are not as long as such a set
// (a peer with another memory size, or garbage). Bits past the last page are dropped.
inline std::optional<PageSet> bitmapOf(capnp::Data::Reader bytes, uint64_t pageCount) {
  PageSet pages(pageCount);
  if (bytes.size() != pages.words.size() * sizeof(uint64_t)) return std::nullopt;
  std::memcpy(pages.words.data(), bytes.begin(), bytes.size());
  if (pageCount % 64) pages.words.back() &= (uint64_t{1} << (pageCount % 64)) - 1;
  return pages;
}

}  // namespace tandem
