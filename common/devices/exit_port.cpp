#include "devices/exit_port.hpp"

#include <algorithm>

namespace tandem::dev {

void ExitPort::read(uint16_t, std::span<uint8_t> data) { std::fill(data.begin(), data.end(), 0); }

}  // namespace tandem::dev
