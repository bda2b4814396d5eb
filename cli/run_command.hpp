// tandem run: boots a guest and runs it until it powers off.
#pragma once

#include <string>
#include <vector>

namespace tandem::cli {

// Returns the process exit code: 0 when the guest powered off cleanly, 1 when it or tandem failed.
// Bad input throws Error(BadInput) before anything starts.
int runCommand(const std::vector<std::string>& args, const std::string& self);
extern const char* const kRunUsage;

}  // namespace tandem::cli
