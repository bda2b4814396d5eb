// Snapshot files: MachineState plus guest memory in one file, DIR/snapshot.tandem.
//
//   header   64 bytes: magic "TANDEMSS", format version, where the memory and the state are
//   memory   chunks of up to 64 pages: first frame, a mask of the pages present, then those pages
//            lz4-compressed (or raw when lz4 does not help). Zero pages are not written in the
//            first pass; later passes add the pages that changed, and a later copy of a page wins
//   state    the MachineState message (schema/machine_state.capnp), taken at the end
//   trailer  XXH3-64 of everything before it, and the magic "TANDEMEN"
//
// The file is written beside its final name and renamed into place, so DIR never holds half a
// snapshot. Reading checks magic, version and checksum before anything else looks inside.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/fd.hpp"
#include "memory/dirty_tracker.hpp"

#include "state/machine_state.hpp"

namespace tandem {

struct SnapshotWriteStats {
  uint64_t stateBytes = 0;
  uint64_t fileBytes = 0;
  uint64_t pagesWritten = 0;  // non-zero pages
  uint64_t zeroPages = 0;
};

constexpr uint32_t kSnapshotFormatVersion = 2;  // 2: memory in passes, state after it

std::string snapshotPath(const std::string& dir);

class ChecksummedWriter;

// Writes DIR/snapshot.tandem (DIR is created if missing) in passes while the guest may still run:
// pages can be added more than once, the last copy wins on restore. finish() adds the state and
// puts the file in place; a writer destroyed unfinished leaves nothing behind. Errors writing are
// Error(BadInput) naming the file.
class SnapshotWriter {
public:
  SnapshotWriter(const std::string& dir, uint64_t memorySize);
  ~SnapshotWriter();
  SnapshotWriter(const SnapshotWriter&) = delete;
  SnapshotWriter& operator=(const SnapshotWriter&) = delete;

  // Every page the host ever backed that is not zero (a restore starts from zeros).
  void addBackedPages(const GuestMemory& memory);
  // These pages as they are now, zero ones too: they may have held data in an earlier pass.
  void addPages(const GuestMemory& memory, const PageSet& pages);
  // One page of guest frame `frame` (gpa / 4096); a copy is taken.
  void addPage(uint64_t frame, const uint8_t* data);
  SnapshotWriteStats finish(const MachineState& state);

private:
  void flushChunk();

  std::string path_, temporary_;
  uint64_t memorySize_;
  Fd fd_;
  std::unique_ptr<ChecksummedWriter> body_;
  std::vector<uint8_t> raw_;       // the chunk being gathered: up to 64 pages
  std::vector<char> compressed_;
  uint64_t chunkFirst_ = 0, chunkMask_ = 0, chunkPages_ = 0;
  SnapshotWriteStats stats_;
  bool finished_ = false;
};

// One pass over memory that no one writes meanwhile (a paused machine, or a copy), then the state.
SnapshotWriteStats writeSnapshot(const std::string& dir, const MachineState& state, const GuestMemory& memory);

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
