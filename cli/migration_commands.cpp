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
#include "transport/link.hpp"

namespace tandem::cli {

const char* const kStandbyUsage =
    "usage: tandem standby --listen tcp://HOST:PORT [--disk PATH[,readonly]]... [--net tap=NAME[,mac=MAC]]...\n"
    "                      [--console stdio|tcp:ADDR:PORT|file:PATH] [--control PATH]\n"
    "  waits for tandem migrate from a source, then runs the guest here\n";

const char* const kMigrateUsage =
    "usage: tandem migrate --control PATH --to tcp://HOST:PORT [--mode precopy|postcopy|hybrid]\n"
    "                      [--max-downtime-ms 300] [--max-rounds 30] [--max-bandwidth SIZE (per second)]\n"
    "                      [--on-no-converge stop|postcopy|abort] [--json]\n"
    "  moves the guest of the tandem at --control to the standby at --to (which listens on PORT and PORT+1)\n"
    "  precopy: rounds while the guest runs, then a short stop; postcopy: the guest moves at once and\n"
    "  fetches its memory on demand; hybrid: precopy rounds, then postcopy for what is left.\n"
    "  --on-no-converge: what to do when the rounds cannot get the downtime under --max-downtime-ms\n"
    "  within --max-rounds: stop and copy anyway (default), switch to postcopy, or abort and leave\n"
    "  the guest running here.\n";

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
  Arguments options(args, "migrate",
                    {"control", "to", "mode", "max-downtime-ms", "max-rounds", "max-bandwidth", "on-no-converge"}, {"json"});
  auto control = options.value("control");
  auto to = options.value("to");
  if (!control || !to) failBadInput("tandem migrate needs --control PATH and --to tcp://HOST:PORT");
  std::string mode = options.value("mode").value_or("precopy");
  if (mode != "precopy" && mode != "postcopy" && mode != "hybrid")
    failBadInput("--mode is precopy, postcopy or hybrid, not '", mode, "'");
  std::string onNoConverge = options.value("on-no-converge").value_or("stop");
  if (onNoConverge != "stop" && onNoConverge != "postcopy" && onNoConverge != "abort")
    failBadInput("--on-no-converge is stop, postcopy or abort, not '", onNoConverge, "'");
  urgentEndpoint(*to);  // checks the address: tcp://HOST:PORT with PORT+1 free for the urgent channel
  nlohmann::json request{{"cmd", "migrate"}, {"to", *to}, {"mode", mode}, {"on_no_converge", onNoConverge}};
  if (auto v = options.value("max-bandwidth")) request["max_bandwidth"] = parseSize(*v, "max-bandwidth");
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
