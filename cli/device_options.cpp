#include "cli/device_options.hpp"

#include "devices/virtio/net.hpp"

namespace tandem::cli {

void addDeviceOptions(const Arguments& options, MachineConfig& config) {
  for (const auto& text : options.values("disk")) {
    auto disk = parseDisk(text);
    config.disks.push_back(DiskConfig{disk.path, disk.readonly});
  }
  for (const auto& text : options.values("net")) {
    auto net = parseNet(text);
    config.nets.push_back(NetConfig{net.tap, net.mac.empty() ? std::nullopt : std::optional(dev::virtio::parseMac(net.mac))});
  }
}

}  // namespace tandem::cli
