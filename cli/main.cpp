// The tandem executable: picks the subcommand and turns errors into one sentence and an exit code
// (2 for bad input, 1 for everything else).
#include <signal.h>

#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/log.hpp"
#include "cli/run_command.hpp"

namespace {

constexpr const char* kUsage =
    "usage: tandem <command> [options]\n"
    "commands:\n"
    "  run     boot a guest and run it until it powers off (tandem run --help)\n";

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
    if (command == "run") {
      if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
        std::cout << tandem::cli::kRunUsage;
        return 0;
      }
      return tandem::cli::runCommand(args, argv[0]);
    }
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
