// ReplicaDisks: the standby's disk files, kept equal to what its committed epoch says (DESIGN.md,
// "Output commit": the standby applies disk writes only on Commit). They change in two ways:
//
//   sync      DiskChunk messages are written at once. While an earlier session's epoch is the one
//             this standby would run, whatever they overwrite is first saved to an undo file (a
//             file without a name beside the disk, gone with the process), so that rollBackSync()
//             gives that epoch its disks back if the new session never commits
//   epochs    a Commit's disk writes are checked with the rest of it (check()) and applied with
//             its pages (apply()); the first commit of a session also ends its sync (keepSync())
//
// Nothing the primary sends is written before it was checked: a chunk or write outside a disk, or
// one that does not decode, is refused whole.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/fd.hpp"
#include "machine/machine.hpp"
#include "memory/dirty_tracker.hpp"
#include "protocol.capnp.h"
#include "transport/channel.hpp"

namespace tandem {

class ReplicaDisks {
public:
  // Opens the standby's disks read-write; throws Error(BadInput) for one that cannot be.
  explicit ReplicaDisks(const std::vector<DiskConfig>& disks);

  // Throws Error(BadInput) when the primary's (or a migration source's: peer) disks, their sizes in
  // order, are not these.
  void checkShape(capnp::List<uint64_t>::Reader primarySizes, const char* peer = "primary") const;

  // XXH3-64 of every 64 KiB chunk of disk d as it is now (the sync then skips the equal ones).
  // Throws Error(Failed) when the file cannot be read.
  std::vector<uint64_t> digests(size_t d, uint64_t stride = 1);
  // Shared storage: Error(BadInput) unless each disk file here is the very file (device, inode)
  // the source names; and unless the sampled digests the source sent of disk d (every
  // dev::sampleStride()-th chunk) are those of the file here.
  void checkSameFiles(capnp::List<schema::DiskIdentity>::Reader identities) const;
  void checkSameContent(schema::DiskDigests::Reader sampled);
  // Sends DiskDigests for every disk on bulk (after Welcome); false when the peer went away.
  bool sendDigests(Channel& bulk);
  size_t count() const { return disks_.size(); }

  // A session's sync begins; with keepOld (a committed epoch stands), overwritten bytes are saved.
  void beginSync(bool keepOld);
  // Decodes and writes one chunk; throws Error(Failed) for one that does not fit or decode, or
  // when the file cannot be written.
  void writeChunk(schema::DiskChunk::Reader chunk);
  void keepSync();
  // Puts back every byte the sync (and a failed first commit) overwrote.
  void rollBackSync();

  // nullopt when every write fits its disk, else why not.
  std::optional<std::string> check(capnp::List<schema::DiskWrite>::Reader writes) const;
  // Throws Error(Failed) when a file cannot be written.
  void apply(capnp::List<schema::DiskWrite>::Reader writes);

  // fdatasync of every disk: what was applied survives this host losing power. Throws Error(Failed).
  void makeDurable();

  uint64_t bytesApplied() const { return bytesApplied_; }
  uint64_t syncs() const { return syncs_; }
  double syncMs() const { return syncMs_; }  // spent in makeDurable(), all told

private:
  struct Disk {
    std::string path;
    Fd fd;
    // The same file opened O_DIRECT, for whole chunks: a disk copied whole then does not go
    // through the page cache (on this machine five times faster). None where the file system
    // refuses it.
    Fd direct;
    uint64_t size = 0;
    // The sync's undo file: (offset, length, where its old bytes are in the file) per saved chunk.
    Fd undo;
    uint64_t undoEnd = 0;
    struct Saved {
      uint64_t offset, length, at;
    };
    std::vector<Saved> saved;
    PageSet savedChunks;  // over 64 KiB chunks
  };
  // With an undo file open, saves the old bytes of every chunk [offset, offset + length) touches.
  void saveOld(Disk& disk, uint64_t offset, uint64_t length);
  void dropUndo();
  // Writes through disk.direct; false (and no more direct writes to that disk) when the file
  // system refuses it.
  bool writeDirect(Disk& disk, uint64_t offset, const uint8_t* bytes, uint64_t length);
  // Direct writes go in runs of contiguous chunks, up to kRunBytes: one 64 KiB direct write waits
  // for the device (about 100 us here), a 1 MiB one hardly longer. Every other use of the files
  // writes the run out first.
  static constexpr uint64_t kRunBytes = 16 * 65536;
  void writeRun();
  struct Run {
    size_t disk = 0;
    uint64_t offset = 0, length = 0;  // its bytes: aligned_[0, length)
  } run_;

  std::vector<Disk> disks_;
  bool keepOld_ = false;
  std::vector<uint8_t> chunk_;
  std::unique_ptr<uint8_t, void (*)(void*)> aligned_{nullptr, std::free};  // kRunBytes, page-aligned (for O_DIRECT)
  uint64_t bytesApplied_ = 0;
  uint64_t syncs_ = 0;
  double syncMs_ = 0;
};

}  // namespace tandem
