#include "cli/run_command.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <filesystem>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/log.hpp"
#include "cli/arguments.hpp"
#include "devices/console.hpp"
#include "machine/machine.hpp"

namespace tandem::cli {

const char* const kRunUsage =
    "usage: tandem run [--kernel PATH] [--append STR] [--memory SIZE] [--cpus N]\n"
    "                  [--console stdio|tcp:ADDR:PORT|file:PATH]\n"
    "  --kernel   guest ELF (default: the test guest built with tandem)\n"
    "  --append   guest command line, e.g. 'job=counter rate=10' or 'job=dirty mib=64 rate=1000'\n"
    "  --memory   guest RAM, e.g. 256M (default) or 2G; at least 16M\n"
    "  --cpus     vCPUs (default 1)\n"
    "  --console  where the guest's serial console goes (default stdio)\n";

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

// SIGINT, SIGTERM and SIGHUP end the guest in order; blocked here so every thread inherits that.
Fd blockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  checkSys(::pthread_sigmask(SIG_BLOCK, &set, nullptr), "pthread_sigmask");
  return Fd(checkSys(::signalfd(-1, &set, SFD_CLOEXEC), "signalfd"));
}

}  // namespace

int runCommand(const std::vector<std::string>& args, const std::string& self) {
  Arguments options(args, "run", {"kernel", "append", "memory", "cpus", "console"});
  MachineConfig config;
  config.kernel = options.value("kernel").value_or("");
  if (config.kernel.empty()) config.kernel = defaultKernel(self);
  config.cmdline = options.value("append").value_or("");
  if (auto memory = options.value("memory")) config.memory = parseSize(*memory, "memory");
  if (auto cpus = options.value("cpus")) config.cpus = static_cast<uint32_t>(parseNumber(*cpus, "cpus", 0, 1u << 20));

  checkMachineConfig(config, kvm::System());  // all bad input is refused before anything is made
  Fd signals = blockStopSignals();
  auto console = dev::openConsole(options.value("console").value_or("stdio"));
  Machine machine(config, *console);
  machine.start();

  for (;;) {
    pollfd p[2] = {{machine.exitFd(), POLLIN, 0}, {signals.get(), POLLIN, 0}};
    if (::poll(p, 2, -1) < 0 && errno != EINTR) throwErrno("poll", errno);
    if (p[0].revents) break;
    if (p[1].revents) {
      signalfd_siginfo info{};
      [[maybe_unused]] auto n = ::read(signals.get(), &info, sizeof info);
      log::info("signal ", info.ssi_signo, ": stopping the guest");
      machine.stop();
    }
  }
  MachineExit exit = machine.wait();
  switch (exit.kind) {
    case MachineExit::Kind::PowerOff:
      if (exit.status == 0) return 0;
      log::error(exit.message);
      return 1;
    case MachineExit::Kind::Stopped:
      return 0;
    case MachineExit::Kind::GuestFault:
    case MachineExit::Kind::HostError:
      log::error(exit.message);
      return 1;
  }
  return 1;
}

}  // namespace tandem::cli
