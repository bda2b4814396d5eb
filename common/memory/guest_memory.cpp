#include "memory/guest_memory.hpp"

#include <algorithm>
#include <cstring>

#include "base/error.hpp"

namespace tandem {

std::vector<GuestMemory::Region> GuestMemory::layout(uint64_t size) {
  require(size >= kMinimumSize && size % kPageSize == 0, "guest memory size ", size);
  std::vector<Region> regions;
  uint64_t low = std::min(size, kHoleStart);
  regions.push_back(Region{Gpa{0}, low, 0});
  if (size > low) regions.push_back(Region{Gpa{kHoleEnd}, size - low, low});
  return regions;
}

GuestMemory::GuestMemory(uint64_t size) : mapping_(Mapping::anonymous(size)), regions_(layout(size)) {}

uint8_t* GuestMemory::hostAddress(Gpa gpa, uint64_t length) const {
  for (const auto& r : regions_) {
    if (gpa >= r.start && gpa.value - r.start.value <= r.size && length <= r.size - (gpa.value - r.start.value))
      return mapping_.data() + r.hostOffset + (gpa.value - r.start.value);
  }
  throw Error(ErrorKind::Failed, concat("guest range [0x", std::hex, gpa.value, ", +0x", length, ") is not RAM"));
}

void GuestMemory::write(Gpa gpa, std::span<const uint8_t> bytes) {
  std::memcpy(hostAddress(gpa, bytes.size()), bytes.data(), bytes.size());
}

void GuestMemory::zero(Gpa gpa, uint64_t length) { std::memset(hostAddress(gpa, length), 0, length); }

void GuestMemory::read(Gpa gpa, std::span<uint8_t> out) const {
  std::memcpy(out.data(), hostAddress(gpa, out.size()), out.size());
}

}  // namespace tandem
