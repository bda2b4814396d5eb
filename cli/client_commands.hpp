// Commands that talk to a running tandem through its control socket.
#pragma once

#include <string>
#include <vector>

namespace tandem::cli {

int statusCommand(const std::vector<std::string>& args);
int snapshotCommand(const std::vector<std::string>& args);
// tandem failover --control PATH: a planned switchover of a protected guest to its standby.
int failoverCommand(const std::vector<std::string>& args);
// tandem protect --control PATH --to tcp://HOST:PORT [knobs]: protect a running guest (again).
int protectCommand(const std::vector<std::string>& args);
// tandem unprotect --control PATH --confirm [--why TEXT]: run a protected guest without its standby.
int unprotectCommand(const std::vector<std::string>& args);
// "pause" or "resume".
int pauseResumeCommand(const std::string& command, const std::vector<std::string>& args);

}  // namespace tandem::cli
