// MigrationTarget: the standby. For a replicating primary (Hello mode replicate) it hands the
// session to its Replica and returns the committed machine when the primary has died; after that
// it answers any primary's Hello with "superseded". For a one-shot migration: listens (bulk on
// PORT, urgent on PORT+1), checks the source's Hello against what this standby was given
// (protocol version, number of disks and NICs), builds an empty machine of the source's shape
// (into memory prepared beforehand with --prealloc, when the size fits; its threads created and
// parked), writes pages as they come, and on Done restores the MachineState. For postcopy, a
// PostcopyTarget then fetches the owed pages while the guest runs. A source that says Bye, goes
// silent for 30 s or sends something that does not decode is dropped with all it sent, and the
// standby waits for the next one; only a source this standby does not fit (other devices, too
// much memory) ends it, with exit code 2.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <atomic>

#include <nlohmann/json.hpp>

#include "base/thread.hpp"
#include "machine/machine.hpp"
#include "secondary/prepared_memory.hpp"
#include "secondary/replica.hpp"

namespace tandem {

struct Link;
class PostcopyTarget;

class MigrationTarget {
public:
  // base: the standby's devices and console (memory and vCPUs come from the source).
  // prepared: memory to receive a guest into when it fits (prepared again, when a guest that took
  // it was dropped, before the next wait for a source).
  // postcopyWait: how long a postcopy waits for a silent source before it gives the guest up.
  MigrationTarget(std::string listen, MachineConfig base, dev::Console& console, PreparedMemory& prepared,
                  std::chrono::seconds postcopyWait = std::chrono::seconds(600));
  ~MigrationTarget();

  // Blocks until a migration has arrived or a replicated primary died; returns the machine,
  // restored and not yet started (tookOver() tells which).
  // A source with another protocol version is told why and the wait goes on; one this standby
  // does not fit is told why and BadInput is thrown.
  std::unique_ptr<Machine> receive();
  // After the machine started: tells the source the guest runs here, or, after a takeover, starts
  // refusing the old primary (and any other) as superseded.
  void reportRunning();
  bool tookOver() const { return tookOver_; }
  // The generation the guest runs at here after a takeover (the primary's + 1).
  uint64_t generation() const { return replica_.generation() + 1; }
  nlohmann::json status() const { return replica_.status(); }
  // Once the guest runs here: how its arrival stands (a postcopy's phase and owed pages), for
  // tandem status and the migration phase metric; null after a takeover.
  nlohmann::json arrivalStatus() const;
  // While waiting: the replica's figures. Once the guest runs here: failovers and postcopy faults.
  void collectMetrics(metrics::Families& out) const;
  void collectRunningMetrics(metrics::Families& out) const;

private:
  std::unique_ptr<Machine> receiveFrom(class Incoming& hello);
  void refuse(schema::RefusalReason reason, const std::string& text);
  void listenAnew();  // drops every peer: a fresh link on the same endpoint

  std::chrono::seconds postcopyWait_;
  std::string listen_;
  MachineConfig base_;
  dev::Console& console_;
  std::unique_ptr<Link> link_;
  std::unique_ptr<PostcopyTarget> postcopy_;  // while owed pages are fetched
  PreparedMemory& prepared_;
  Replica replica_;
  ReleaseListener releases_;
  bool tookOver_ = false, handedOver_ = false;
  std::atomic<bool> stopRefusing_{false};
  std::unique_ptr<NamedThread> refuser_;  // after a takeover: answers Hellos "superseded"
};

}  // namespace tandem
