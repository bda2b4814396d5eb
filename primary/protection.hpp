// Protection: whether a running guest is protected by a standby, and the operator's changes of
// that (DESIGN.md: never automatically). It owns the guest's Replicator, if any:
//
//   none --protect(to)--> protected --unprotect()--> unprotected --protect(to)--> protected ...
//
// unprotect() is the way out when the standby is gone for good: the standby is told the guest
// runs on without it (End, as for a guest that ended; a standby that hears it never runs this
// guest), the output held for it is shown, a guest paused for held output runs again, and from
// then on output goes out at once. It is logged and counted. protect() begins anew with a
// standby (a full sync), carrying on the generation and knobs of the last protection.
//
// Every method may be called from any thread (the control socket's, the metrics server's, the
// main thread's).
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "machine/machine.hpp"
#include "metrics/metrics.hpp"
#include "primary/replicator.hpp"

namespace tandem {

class Protection {
public:
  explicit Protection(Machine& machine) : machine_(machine) {}
  ~Protection();

  // Before the machine starts: its output is held from its first byte on (started by start()).
  void protectFromBoot(ReplicationOptions options);
  // A guest that took over from its primary with no standby to protect it onward: it runs
  // unprotected (status and metrics say so, and why), until tandem protect.
  void runUnprotected(uint64_t generation, std::string why);
  // The machine runs: the replicator, if any, begins its sessions.
  void start();

  // A running guest: Error(BadInput) if it is protected already.
  void protect(ReplicationOptions options);
  // Error(BadInput) if it is not protected. why: the operator's words, for the log and status.
  void unprotect(const std::string& why);

  // The guest ended here in an orderly way (Replicator::end).
  void end(const std::string& why);
  // The machine is ending: the replicator's threads end (what is held stays held).
  void stop();
  // tandem failover (Replicator::switchover); Error(Failed) when not protected.
  void switchover();

  bool active() const;
  // The last protection's options (for protect --to: its knobs), if the guest was ever protected.
  std::optional<ReplicationOptions> lastOptions() const;
  // null for a guest never protected; the replicator's status, or why it runs unprotected.
  nlohmann::json status() const;
  void collectMetrics(metrics::Families& out) const;

private:
  Machine& machine_;
  mutable std::mutex mutex_;
  std::shared_ptr<Replicator> current() const;

  // Replaced under mutex_, used outside it (a switchover blocks for seconds; status must not).
  std::shared_ptr<Replicator> replicator_;
  std::optional<ReplicationOptions> last_;
  bool started_ = false;
  uint64_t unprotects_ = 0;
  std::string unprotectedReason_;
};

}  // namespace tandem
