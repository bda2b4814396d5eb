// MmioBus: routes the guest's MMIO exits to the device that owns the address.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace tandem::dev {

// A device in guest-physical address space. Called on the vCPU thread that trapped.
class MmioDevice {
public:
  virtual ~MmioDevice() = default;
  virtual void read(uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

class MmioBus {
public:
  void add(uint64_t base, uint64_t length, MmioDevice& device);  // device outlives the bus
  // Addresses nobody owns read as all ones and ignore writes.
  void read(uint64_t address, std::span<uint8_t> data);
  void write(uint64_t address, std::span<const uint8_t> data);

private:
  struct Range {
    uint64_t base;
    uint64_t length;
    MmioDevice* device;
  };
  const Range* find(uint64_t address) const;
  std::vector<Range> ranges_;
};

}  // namespace tandem::dev
