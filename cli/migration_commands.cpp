#include "cli/migration_commands.hpp"

#include <iomanip>
#include <iostream>

#include "base/error.hpp"
#include "base/log.hpp"
#include "cli/arguments.hpp"
#include "cli/device_options.hpp"
#include "cli/serve.hpp"
#include "control/control_server.hpp"
#include "devices/console.hpp"
#include "secondary/migration_target.hpp"

namespace tandem::cli {

const char* const kStandbyUsage =
    "usage: tandem standby --listen tcp://HOST:PORT [--disk PATH[,readonly]]... [--net tap=NAME[,mac=MAC]]...\n"
    "                      [--console stdio|tcp:ADDR:PORT|file:PATH] [--control PATH]\n"
    "  waits for tandem migrate from a source, then runs the guest here\n";

const char* const kMigrateUsage =
    "usage: tandem migrate --control PATH --to tcp://HOST:PORT [--mode precopy] [--max-downtime-ms 300]\n"
    "                      [--max-rounds 30] [--json]\n"
    "  moves the guest of the tandem at --control to the standby at --to\n";

int standbyCommand(const std::vector<std::string>& args) {
  Arguments options(args, "standby", {"listen", "disk", "net", "console", "control"});
  auto listen = options.value("listen");
  if (!listen) failBadInput("tandem standby needs --listen tcp://HOST:PORT");
  MachineConfig base;
  addDeviceOptions(options, base);
  for (const auto& disk : base.disks) dev::virtio::Blk probe(disk.path, disk.readonly);
  for (const auto& net : base.nets) dev::Tap probe(net.tap);

  Fd signals = blockStopSignals();
  auto console = dev::openConsole(options.value("console").value_or("stdio"));
  MigrationTarget target(*listen, base, *console);
  log::info("standby listening on ", *listen);
  auto machine = target.receive();
  return serveMachine(*machine, signals, options.value("control"), console->describe(), [&] { target.reportRunning(); });
}

int migrateCommand(const std::vector<std::string>& args) {
  Arguments options(args, "migrate", {"control", "to", "mode", "max-downtime-ms", "max-rounds"}, {"json"});
  auto control = options.value("control");
  auto to = options.value("to");
  if (!control || !to) failBadInput("tandem migrate needs --control PATH and --to tcp://HOST:PORT");
  std::string mode = options.value("mode").value_or("precopy");
  if (mode != "precopy") failBadInput("--mode ", mode, " is not available yet; this tandem migrates with precopy");
  nlohmann::json request{{"cmd", "migrate"}, {"to", *to}};
  if (auto v = options.value("max-downtime-ms")) request["max_downtime_ms"] = parseNumber(*v, "max-downtime-ms", 1, 600000);
  if (auto v = options.value("max-rounds")) request["max_rounds"] = parseNumber(*v, "max-rounds", 1, 1000);
  nlohmann::json reply = controlRequest(*control, request);
  if (!reply.value("ok", false)) throw Error(ErrorKind::Failed, reply.value("error", std::string("the migration failed")));
  reply.erase("ok");
  if (options.flag("json")) {
    std::cout << reply.dump() << "\n";
  } else {
    std::cout << std::fixed << std::setprecision(1) << "migrated to " << *to << " in " << reply["total_ms"].get<double>()
              << " ms (downtime " << reply["downtime_ms"].get<double>() << " ms, " << reply["rounds"] << " rounds, "
              << reply["bytes"].get<uint64_t>() / kMiB << " MiB sent)\n";
  }
  return 0;
}

}  // namespace tandem::cli
