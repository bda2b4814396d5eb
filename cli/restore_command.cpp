#include "cli/restore_command.hpp"

#include "base/error.hpp"
#include "cli/arguments.hpp"
#include "cli/device_options.hpp"
#include "cli/serve.hpp"
#include "devices/console.hpp"
#include "machine/machine.hpp"
#include "state/snapshot_file.hpp"

namespace tandem::cli {

const char* const kRestoreUsage =
    "usage: tandem restore --from DIR [--memory SIZE] [--cpus N] [--disk PATH[,readonly]]...\n"
    "                      [--console stdio|tcp:ADDR:PORT|file:PATH] [--control PATH]\n"
    "  --from     a directory written by tandem snapshot\n"
    "  --memory, --cpus   if given, must match the snapshot (a check, not a change)\n"
    "  --disk, --net   the devices, in the order the snapshotted machine had them\n";

int restoreCommand(const std::vector<std::string>& args) {
  Arguments options(args, "restore", {"from", "memory", "cpus", "console", "control", "disk", "net"});
  auto from = options.value("from");
  if (!from) failBadInput("tandem restore needs --from DIR, the directory tandem snapshot wrote");

  // Everything about the snapshot is checked before KVM is touched.
  SnapshotFile snapshot = SnapshotFile::open(*from);
  const MachineState& state = snapshot.state();
  MachineConfig config;
  config.memory = state.memorySize;
  config.cpus = static_cast<uint32_t>(state.vcpus.size());
  config.cmdline = state.cmdline;
  if (auto memory = options.value("memory"); memory && parseSize(*memory, "memory") != config.memory)
    failBadInput("the snapshot in ", *from, " has ", config.memory / kMiB, " MiB of memory, not ", *memory);
  if (auto cpus = options.value("cpus"); cpus && parseNumber(*cpus, "cpus", 0, 1u << 20) != config.cpus)
    failBadInput("the snapshot in ", *from, " has ", config.cpus, " vCPUs, not ", *cpus);
  addDeviceOptions(options, config);
  if (config.disks.size() + config.nets.size() != state.virtio.size())
    failBadInput("the snapshot in ", *from, " has ", state.virtio.size(), " virtio devices; give as many --disk and --net options (",
                 config.disks.size() + config.nets.size(), " given, disks first)");
  for (const auto& disk : config.disks) dev::virtio::Blk probe(disk.path, disk.readonly);
  for (const auto& net : config.nets) dev::Tap probe(net.tap);
  auto layout = GuestMemory::layout(config.memory);
  bool sameLayout = layout.size() == state.regions.size();
  for (size_t i = 0; sameLayout && i < layout.size(); ++i)
    sameLayout = layout[i].start == state.regions[i].start && layout[i].size == state.regions[i].size;
  if (!sameLayout) failBadInput("the snapshot in ", *from, " has a memory layout this tandem does not make");

  Fd signals = blockStopSignals();
  auto console = dev::openConsole(options.value("console").value_or("stdio"));
  Machine machine(config, *console, Machine::ForRestore{});
  snapshot.loadMemory(machine.memory());
  machine.restore(state);
  return serveMachine(machine, signals, options.value("control"), console->describe());
}

}  // namespace tandem::cli
