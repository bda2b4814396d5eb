#include "devices/mmio_bus.hpp"

#include <algorithm>

#include "base/error.hpp"

namespace tandem::dev {

void MmioBus::add(uint64_t base, uint64_t length, MmioDevice& device) {
  for (const auto& r : ranges_)
    require(base + length <= r.base || r.base + r.length <= base, "MMIO range 0x", std::hex, base, " overlaps 0x", r.base);
  ranges_.push_back(Range{base, length, &device});
}

const MmioBus::Range* MmioBus::find(uint64_t address) const {
  for (const auto& r : ranges_)
    if (address >= r.base && address - r.base < r.length) return &r;
  return nullptr;
}

void MmioBus::read(uint64_t address, std::span<uint8_t> data) {
  if (const Range* r = find(address)) return r->device->read(address - r->base, data);
  std::fill(data.begin(), data.end(), 0xff);
}

void MmioBus::write(uint64_t address, std::span<const uint8_t> data) {
  if (const Range* r = find(address)) r->device->write(address - r->base, data);
}

}  // namespace tandem::dev
