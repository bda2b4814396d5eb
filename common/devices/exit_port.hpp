// ExitPort: the guest powers the VM off by writing its status byte to port 0x501 (guest_abi.h).
#pragma once

#include <functional>

#include "devices/pio_bus.hpp"

namespace tandem::dev {

class ExitPort final : public PioDevice {
public:
  // powerOff(status) runs on the vCPU thread that wrote the port.
  explicit ExitPort(std::function<void(uint8_t status)> powerOff) : powerOff_(std::move(powerOff)) {}
  void read(uint16_t, std::span<uint8_t> data) override;
  void write(uint16_t, std::span<const uint8_t> data) override { powerOff_(data[0]); }

private:
  std::function<void(uint8_t)> powerOff_;
};

}  // namespace tandem::dev
