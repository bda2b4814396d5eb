// Starting `tandem run` on the test guest the way a user does, for integration tests.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "support/child_process.hpp"
#include "support/paths.hpp"

namespace tandem::test {

using namespace std::chrono_literals;

// tandem run --kernel <test guest> <args...>
inline std::unique_ptr<ChildProcess> startTandemRun(const std::vector<std::string>& args) {
  std::vector<std::string> argv{kTandemBinary, "run", "--kernel", kTestGuest};
  argv.insert(argv.end(), args.begin(), args.end());
  return std::make_unique<ChildProcess>(argv);
}

// tandem run <args...> exactly as given (no --kernel added).
inline std::unique_ptr<ChildProcess> startTandem(const std::vector<std::string>& args) {
  std::vector<std::string> argv{kTandemBinary};
  argv.insert(argv.end(), args.begin(), args.end());
  return std::make_unique<ChildProcess>(argv);
}

}  // namespace tandem::test
