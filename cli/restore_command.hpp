// tandem restore: continues a guest from a snapshot in this new process.
#pragma once

#include <string>
#include <vector>

namespace tandem::cli {

int restoreCommand(const std::vector<std::string>& args);
extern const char* const kRestoreUsage;

}  // namespace tandem::cli
