#include "secondary/machine_shape.hpp"

#include <algorithm>

#include "base/error.hpp"

namespace tandem {

MachineConfig machineForHello(const MachineConfig& base, schema::Hello::Reader hello, const char* peer) {
  if (hello.getDisks() != base.disks.size() || hello.getNets() != base.nets.size())
    failBadInput("the ", peer, " has ", hello.getDisks(), " disks and ", hello.getNets(), " NICs; this standby was given ",
                 base.disks.size(), " and ", base.nets.size());
  MachineConfig config = base;
  config.memory = hello.getMemorySize();
  config.cpus = hello.getCpus();
  if (config.memory < GuestMemory::kMinimumSize || config.memory % (2 * kMiB) || config.memory > hostAvailableMemory())
    failBadInput("the ", peer, "'s ", config.memory / kMiB, " MiB of memory do not fit on this standby");
  if (config.cpus == 0 || config.cpus > 255) failBadInput("the ", peer, " has ", config.cpus, " vCPUs");
  // A NIC given without mac= takes the guest's: the MAC is the guest's, wherever it runs.
  auto devices = hello.getShape().getDevices();
  for (size_t n = 0; n < config.nets.size(); ++n) {
    size_t device = config.disks.size() + n;
    if (config.nets[n].mac || device >= devices.size() || devices[device].getType() != kVirtioNetDevice) continue;
    auto bytes = devices[device].getConfig();
    if (bytes.size() < 6) continue;
    std::array<uint8_t, 6> mac;
    std::copy(bytes.begin(), bytes.begin() + 6, mac.begin());
    config.nets[n].mac = mac;
  }
  return config;
}

}  // namespace tandem
