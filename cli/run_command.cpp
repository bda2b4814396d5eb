#include "cli/run_command.hpp"

#include <filesystem>

#include "base/error.hpp"
#include "cli/arguments.hpp"
#include "cli/device_options.hpp"
#include "cli/protect_options.hpp"
#include "cli/serve.hpp"
#include "devices/console.hpp"
#include "machine/machine.hpp"

namespace tandem::cli {

const char* const kRunUsage =
    "usage: tandem run [--kernel PATH] [--append STR] [--memory SIZE] [--cpus N]\n"
    "                  [--disk PATH[,readonly]]... [--net tap=NAME[,mac=MAC]]... [--console stdio|tcp:ADDR:PORT|file:PATH] [--control PATH]\n"
    "                  [--metrics ADDR:PORT]\n"
    "                  [--protect tcp://HOST:PORT [--epoch-ms 25] [--heartbeat-ms 20] [--failover-after-ms 200]]\n"
    "  --kernel   guest ELF (default: the test guest built with tandem)\n"
    "  --append   guest command line, e.g. 'job=counter rate=10' or 'job=dirty mib=64 rate=1000'\n"
    "  --memory   guest RAM, e.g. 256M (default) or 2G; at least 16M\n"
    "  --cpus     vCPUs (default 1)\n"
    "  --console  where the guest's serial console goes (default stdio)\n"
    "  --disk     PATH[,readonly]: a raw file as a virtio-blk disk (repeatable)\n"
    "  --net      tap=NAME[,mac=MAC]: an existing tap device as a virtio-net NIC (repeatable)\n"
    "  --control  Unix socket for tandem status, pause, resume, snapshot\n"
    "  --metrics  serve Prometheus metrics on http://ADDR:PORT/metrics\n"
    "  --protect  replicate the guest to the tandem standby listening there: every --epoch-ms the\n"
    "             guest pauses briefly and what changed goes to the standby; console output is shown\n"
    "             only once the standby has the state that produced it. The standby takes over after\n"
    "             --failover-after-ms without a heartbeat (sent every --heartbeat-ms both ways)\n";

namespace {

// The test guest sits next to the tandem executable in a build tree, and in lib/tandem when installed.
std::string defaultKernel(const std::string& self) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path exe = fs::canonical("/proc/self/exe", ec);
  if (ec) exe = fs::path(self);
  for (const fs::path& candidate : {exe.parent_path() / "tandem-guest.elf",
                                    exe.parent_path().parent_path() / "lib" / "tandem" / "tandem-guest.elf"}) {
    if (fs::exists(candidate, ec)) return candidate.string();
  }
  failBadInput("the test guest tandem-guest.elf is not next to ", exe.string(), "; give --kernel PATH");
}

}  // namespace

int runCommand(const std::vector<std::string>& args, const std::string& self) {
  std::set<std::string> known = {"kernel", "append", "memory", "cpus", "console", "control", "disk", "net", "metrics"};
  known.insert(kProtectOptions.begin(), kProtectOptions.end());
  Arguments options(args, "run", known);
  MachineConfig config;
  config.kernel = options.value("kernel").value_or("");
  if (config.kernel.empty()) config.kernel = defaultKernel(self);
  config.cmdline = options.value("append").value_or("");
  if (auto memory = options.value("memory")) config.memory = parseSize(*memory, "memory");
  if (auto cpus = options.value("cpus")) config.cpus = static_cast<uint32_t>(parseNumber(*cpus, "cpus", 0, 1u << 20));
  addDeviceOptions(options, config);
  auto protect = protectOptions(options);

  checkMachineConfig(config, kvm::System());  // all bad input is refused before anything is made
  Fd signals = blockStopSignals();
  auto console = dev::openConsole(options.value("console").value_or("stdio"));
  Machine machine(config, *console);
  std::optional<metrics::Server> metricsServer;
  if (auto address = options.value("metrics")) metricsServer.emplace(*address);
  return serveMachine(machine, signals, options.value("control"), console->describe(),
                      {.protect = protect, .metrics = metricsServer ? &*metricsServer : nullptr});
}

}  // namespace tandem::cli
