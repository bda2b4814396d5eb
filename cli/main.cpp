// The tandem executable: picks the subcommand and turns errors into one sentence and an exit code
// (2 for bad input, 1 for everything else).
#include <signal.h>

#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/log.hpp"
#include "cli/client_commands.hpp"
#include "cli/migration_commands.hpp"
#include "cli/restore_command.hpp"
#include "cli/run_command.hpp"

namespace {

constexpr const char* kUsage =
    "usage: tandem <command> [options]\n"
    "commands:\n"
    "  run       boot a guest and run it until it powers off (tandem run --help)\n"
    "  restore   continue a guest from a snapshot (tandem restore --help)\n"
    "  status    --control PATH [--json]: what a running tandem is doing\n"
    "  snapshot  --control PATH --to DIR [--json]: write the running guest to DIR\n"
    "  standby   wait for a migrating guest and run it (tandem standby --help)\n"
    "  migrate   move a running guest to a standby (tandem migrate --help)\n"
    "  failover  --control PATH: hand a protected guest to its standby, nothing lost\n"
    "  protect   --control PATH --to tcp://HOST:PORT [--epoch-ms N ...]: protect a running guest (again)\n"
    "  unprotect --control PATH --confirm [--why TEXT]: run a protected guest without its standby\n"
    "            (shows its held output; only once the standby is down for good)\n"
    "  pause     --control PATH: stop the guest's vCPUs\n"
    "  resume    --control PATH [--confirm]: let them run again (--confirm: after a failed postcopy,\n"
    "            run this older copy again; what the guest did on the target is lost)\n";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  ::signal(SIGPIPE, SIG_IGN);  // a console reader that went away is an error to report, not a death
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << kUsage;
    return args.empty() ? 2 : 0;
  }
  std::string command = args[0];
  args.erase(args.begin());
  try {
    bool help = !args.empty() && (args[0] == "--help" || args[0] == "-h");
    if (command == "run") {
      if (help) return std::cout << tandem::cli::kRunUsage, 0;
      return tandem::cli::runCommand(args, argv[0]);
    }
    if (command == "restore") {
      if (help) return std::cout << tandem::cli::kRestoreUsage, 0;
      return tandem::cli::restoreCommand(args);
    }
    if (command == "standby") {
      if (help) return std::cout << tandem::cli::kStandbyUsage, 0;
      return tandem::cli::standbyCommand(args);
    }
    if (command == "migrate") {
      if (help) return std::cout << tandem::cli::kMigrateUsage, 0;
      return tandem::cli::migrateCommand(args);
    }
    if (command == "status") return tandem::cli::statusCommand(args);
    if (command == "snapshot") return tandem::cli::snapshotCommand(args);
    if (command == "failover") return tandem::cli::failoverCommand(args);
    if (command == "protect") return tandem::cli::protectCommand(args);
    if (command == "unprotect") return tandem::cli::unprotectCommand(args);
    if (command == "pause" || command == "resume") return tandem::cli::pauseResumeCommand(command, args);
    tandem::log::error("unknown command '", command, "'; see tandem --help");
    return 2;
  } catch (const tandem::Error& e) {
    tandem::log::error(e.what());
    return e.kind() == tandem::ErrorKind::BadInput ? 2 : 1;
  } catch (const std::exception& e) {
    tandem::log::error(e.what());
    return 1;
  }
}
