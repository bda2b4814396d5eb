// Snapshot files: MachineState plus guest memory in one file, DIR/snapshot.tandem.
//
//   header   64 bytes: magic "TANDEMSS", format version, where the state and the memory are
//   state    the MachineState message (schema/machine_state.capnp)
//   memory   chunks of up to 64 pages: first frame, a mask of the pages present (zero pages are
//            not written), then those pages lz4-compressed (or raw when lz4 does not help)
//   trailer  XXH3-64 of everything before it, and the magic "TANDEMEN"
//
// The file is written beside its final name and renamed into place, so DIR never holds half a
// snapshot. Reading checks magic, version and checksum before anything else looks inside.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "state/machine_state.hpp"

namespace tandem {

class GuestMemory;

struct SnapshotWriteStats {
  uint64_t stateBytes = 0;
  uint64_t fileBytes = 0;
  uint64_t pagesWritten = 0;  // non-zero pages
  uint64_t zeroPages = 0;
};

constexpr uint32_t kSnapshotFormatVersion = 1;

std::string snapshotPath(const std::string& dir);

// Writes state and memory to DIR/snapshot.tandem (DIR is created if missing). The machine is
// paused, or memory is a copy no one writes. Throws Error(BadInput) when DIR cannot be written.
SnapshotWriteStats writeSnapshot(const std::string& dir, const MachineState& state, const GuestMemory& memory);

// The same, written by a forked child from its copy-on-write view of memory, so the guest can run
// again while the file is written: afterFork() runs in this process as soon as the child exists
// (the caller resumes the guest there). Returns when the child has finished; its errors are thrown
// here as they would be by writeSnapshot().
SnapshotWriteStats writeSnapshotForked(const std::string& dir, const MachineState& state, const GuestMemory& memory,
                                       const std::function<void()>& afterFork);

// A snapshot file whose checksum and version were verified and whose state was decoded.
class SnapshotFile {
public:
  // Throws Error(BadInput) with one sentence for a missing, truncated, corrupted or foreign file.
  static SnapshotFile open(const std::string& dir);

  const MachineState& state() const { return state_; }
  // Fills memory (of state().memorySize bytes, all zero) with the pages of the snapshot.
  void loadMemory(GuestMemory& memory) const;

private:
  std::string path_;
  MachineState state_;
  uint64_t memoryOffset_ = 0;
  uint64_t memoryBytes_ = 0;
};

}  // namespace tandem
