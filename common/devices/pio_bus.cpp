#include "devices/pio_bus.hpp"

#include <algorithm>

#include "base/error.hpp"

namespace tandem::dev {

void PioBus::add(uint16_t base, uint16_t length, PioDevice& device) {
  for (const auto& r : ranges_)
    require(base + length <= r.base || r.base + r.length <= base, "port range 0x", std::hex, base, " overlaps 0x", r.base);
  ranges_.push_back(Range{base, length, &device});
}

const PioBus::Range* PioBus::find(uint16_t port) const {
  for (const auto& r : ranges_)
    if (port >= r.base && port - r.base < r.length) return &r;
  return nullptr;
}

void PioBus::read(uint16_t port, std::span<uint8_t> data) {
  if (const Range* r = find(port)) return r->device->read(static_cast<uint16_t>(port - r->base), data);
  std::fill(data.begin(), data.end(), 0xff);
}

void PioBus::write(uint16_t port, std::span<const uint8_t> data) {
  if (const Range* r = find(port)) r->device->write(static_cast<uint16_t>(port - r->base), data);
}

}  // namespace tandem::dev
