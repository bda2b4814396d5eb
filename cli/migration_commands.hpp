// tandem standby (receive a guest) and tandem migrate (send one away).
#pragma once

#include <string>

#include <nlohmann/json.hpp>
#include <vector>

namespace tandem::cli {

int standbyCommand(const std::vector<std::string>& args);
int migrateCommand(const std::vector<std::string>& args);
// One line for a person: a migration's progress as status reports it ("migration" object).
std::string describeMigration(const nlohmann::json& progress);
extern const char* const kStandbyUsage;
extern const char* const kMigrateUsage;

}  // namespace tandem::cli
