// tandem standby (receive a guest) and tandem migrate (send one away).
#pragma once

#include <string>
#include <vector>

namespace tandem::cli {

int standbyCommand(const std::vector<std::string>& args);
int migrateCommand(const std::vector<std::string>& args);
extern const char* const kStandbyUsage;
extern const char* const kMigrateUsage;

}  // namespace tandem::cli
