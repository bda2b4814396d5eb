// Running a built machine until it ends: the control socket, stop signals, the exit code.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "base/fd.hpp"
#include "base/thread.hpp"
#include "machine/machine.hpp"
#include "metrics/metrics.hpp"
#include "primary/replicator.hpp"

namespace tandem::cli {

// Blocks SIGINT, SIGTERM and SIGHUP in this thread and every thread made after; returns a
// signalfd for them. Call before building anything that starts threads.
Fd blockStopSignals();

// Until handOver(), a stop signal ends the process at once, with exit code 0: for a standby that
// runs no guest yet, whose waits (for a source, in a replication session) do not look at signals.
// There is no guest of its own to stop; a primary's committed epoch goes with it (the primary
// notices), and a source waiting for Running resumes its guest. After handOver(), signals wait in
// stopSignals for serveMachine (one the watcher had already read is sent again). handOver() does
// not wait for the watcher: a migration's guest is about to start, and the watcher's thread is
// joined when this goes, once the guest runs.
class StopWhileWaiting {
public:
  explicit StopWhileWaiting(const Fd& stopSignals);
  ~StopWhileWaiting();

  void handOver();

private:
  std::mutex mutex_;
  bool handedOver_ = false;
  EventFd done_;
  std::unique_ptr<NamedThread> watcher_;
};

struct ServeOptions {
  // Runs once the vCPUs run (a migration target reports to its source there), before the control
  // socket opens (a migration target's own goes in onStarted, not inside the downtime).
  std::function<void()> onStarted;
  // A Replicator keeps the guest protected by that standby (its output held from the start).
  std::optional<ReplicationOptions> protect;
  metrics::Server* metrics = nullptr;  // shows the guest's figures there
  // The generation of a guest this standby took over (without protect it runs unprotected, and
  // says so).
  std::optional<uint64_t> tookOverAt;
  // A migrated guest: how its arrival stands (MigrationTarget::arrivalStatus), for status and metrics.
  std::function<nlohmann::json()> arrival;
};

// Starts the machine, serves the control socket (if any) and returns the exit code: 0 when the
// guest powered off cleanly or was stopped by a signal or "quit", 1 when it or tandem failed.
int serveMachine(Machine& machine, const Fd& stopSignals, const std::optional<std::string>& controlPath,
                 const std::string& consoleDescription, const ServeOptions& options = {});

}  // namespace tandem::cli
