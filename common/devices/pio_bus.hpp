// PioBus: routes the guest's port I/O to the device that owns the port.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace tandem::dev {

// A device reached through I/O ports. Called on the vCPU thread that trapped; a device shared by
// several vCPUs locks itself.
class PioDevice {
public:
  virtual ~PioDevice() = default;
  // offset is relative to the base the device was added at; data.size() is 1, 2 or 4.
  virtual void read(uint16_t offset, std::span<uint8_t> data) = 0;
  virtual void write(uint16_t offset, std::span<const uint8_t> data) = 0;
};

class PioBus {
public:
  // device outlives the bus.
  void add(uint16_t base, uint16_t length, PioDevice& device);
  // Ports nobody owns read as all ones and ignore writes, as on real hardware.
  void read(uint16_t port, std::span<uint8_t> data);
  void write(uint16_t port, std::span<const uint8_t> data);

private:
  struct Range {
    uint16_t base;
    uint16_t length;
    PioDevice* device;
  };
  const Range* find(uint16_t port) const;
  std::vector<Range> ranges_;
};

}  // namespace tandem::dev
