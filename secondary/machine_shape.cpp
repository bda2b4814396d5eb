#include "secondary/machine_shape.hpp"

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
  return config;
}

}  // namespace tandem
