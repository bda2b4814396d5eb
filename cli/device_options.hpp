// --disk and --net, the same for tandem run and tandem restore.
#pragma once

#include "cli/arguments.hpp"
#include "machine/machine.hpp"

namespace tandem::cli {

// Adds the --disk and --net options (in the order given) to config; Error(BadInput) if malformed.
void addDeviceOptions(const Arguments& options, MachineConfig& config);

}  // namespace tandem::cli
