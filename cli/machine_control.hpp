// What the control socket of a running machine answers: status, pause, resume, snapshot, quit,
// migrate and, during a postcopy, migrate_resume and migrate_give_up.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "machine/machine.hpp"
#include "primary/migration_progress.hpp"
#include "primary/migration_requests.hpp"
#include "metrics/metrics.hpp"
#include "primary/protection.hpp"

namespace tandem::cli {

class MachineControl {
public:
  MachineControl(Machine& machine, std::string console) : machine_(machine), console_(std::move(console)) {}

  // Runs on the control thread, and "migrate" on a thread of its own (ControlServer's long
  // requests): while it runs, status answers with its progress and pause, resume, snapshot, quit
  // and another migrate are refused. The machine's owner only waits meanwhile.
  nlohmann::json handle(const nlohmann::json& request);
  // Whether the guest is protected, and the operator's protect and unprotect. While it is, status
  // shows the replication; pause, resume, snapshot and migrate are refused (the epoch loop pauses
  // and resumes the guest itself).
  void setProtection(Protection* protection) { protection_ = protection; }
  // The last migration's phase and progress, for Prometheus (any thread).
  void collectMetrics(metrics::Families& out) const;
  // A guest that migrated here: how its arrival stands (status "migration", the phase metric).
  void setArrival(std::function<nlohmann::json()> arrival) { arrival_ = std::move(arrival); }

private:
  nlohmann::json status() const;
  nlohmann::json snapshot(const std::string& dir);
  nlohmann::json migrate(const nlohmann::json& request);
  nlohmann::json protect(const nlohmann::json& request);
  nlohmann::json unprotect(const nlohmann::json& request);
  nlohmann::json recover(const nlohmann::json& request);
  std::string lastMigrationPhase() const;

  Machine& machine_;
  Protection* protection_ = nullptr;
  std::string console_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::atomic<bool> migrating_{false};
  std::shared_ptr<ProgressBoard> migration_;  // the last migration's progress (guarded by its own mutex)
  std::shared_ptr<MigrationRequests> migrationRequests_;  // the operator's --resume and --give-up for it
  mutable std::mutex migrationMutex_;          // guards the pointers
  std::function<nlohmann::json()> arrival_;
};

}  // namespace tandem::cli
