// Snapshots of a running machine, taken the way precopy moves one: memory goes to the file while
// the guest runs, then again for the pages it changed meanwhile, and the guest is paused only to
// copy the last few pages and capture its state. (A forked writer, the earlier way, paused the
// guest 0.7-1.0 ms for the fork alone on a 1 GiB guest: fork copies page tables and makes KVM drop
// its mappings of all of guest memory.)
#pragma once

#include <cstdint>
#include <string>

#include "state/snapshot_file.hpp"

namespace tandem {

class Machine;

struct MachineSnapshotReport {
  SnapshotWriteStats file;
  uint32_t passes = 0;        // over memory, the one inside the pause included
  uint64_t pagesInPause = 0;  // copied while the guest was paused
  double captureMs = 0;       // the state's capture, inside the pause
  double pausedMs = 0;        // 0 when the machine was paused already
  double totalMs = 0;
};

// Writes DIR/snapshot.tandem of machine, which is running or paused, and leaves it as it was.
// Errors are Error(BadInput) for a DIR that cannot be written; the guest runs on after any error.
MachineSnapshotReport snapshotMachine(Machine& machine, const std::string& dir);

}  // namespace tandem
