// Sizes and guest addresses with their own types, so a frame number is never taken for a byte address.
#pragma once

#include <cstdint>

namespace tandem {

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;
constexpr uint64_t kGiB = 1024 * kMiB;
constexpr uint64_t kPageSize = 4096;

// A guest-physical byte address.
struct Gpa {
  uint64_t value = 0;
  constexpr Gpa operator+(uint64_t offset) const { return Gpa{value + offset}; }
  constexpr auto operator<=>(const Gpa&) const = default;
};

}  // namespace tandem
