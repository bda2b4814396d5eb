// DiskWriteLog: what the guest wrote to one disk while a standby is being kept in step
// (DESIGN.md, "Output commit": disk writes are not external output; they travel with their epoch).
// Blk records every write once it reached the file; the replicator reads it in two ways:
//
//   begin()        recording on: every chunk counts as written (a new standby needs the whole
//                  disk), the journal is empty
//   takeChunks()   initial sync: the 64 KiB chunks written since the last take (all of them after
//                  begin()), to be read from the file now; the journal starts again empty, as what
//                  it held is in those chunks
//   takeJournal()  epochs, inside the pause: every write since the last take, bytes and order
//   end()          recording off (no standby), its memory given back
//
// The guest's writes come from the device thread, the takes from the replicator's: one mutex.
#pragma once

#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "memory/dirty_tracker.hpp"

namespace tandem::dev {

struct DiskWrite {
  uint64_t offset = 0;  // bytes from the start of the disk
  std::vector<uint8_t> bytes;
};

// What both sides of a sync compare to find the chunks that differ (XXH3-64).
uint64_t chunkDigest(std::span<const uint8_t> chunk);
// chunkDigest of `length` zero bytes.
uint64_t zeroChunkDigest(size_t length);
// Where the data of the file `fd` (`size` bytes) goes on at or after offset: offset itself when the
// file system cannot tell (SEEK_DATA), size when only a hole follows.
uint64_t nextDataAt(int fd, uint64_t offset, uint64_t size);

// Walks a file's chunks in increasing order and tells which lie wholly in a hole (zeros, known
// without reading them), asking the file system again only past the data it found last.
class HoleWalk {
public:
  HoleWalk(int fd, uint64_t size) : fd_(fd), size_(size) {}
  bool inHole(uint64_t offset, uint64_t length) {
    if (!looked_ || dataAt_ < offset) {
      dataAt_ = nextDataAt(fd_, offset, size_);
      looked_ = true;
    }
    return dataAt_ >= offset + length;
  }

private:
  int fd_;
  uint64_t size_;
  uint64_t dataAt_ = 0;
  bool looked_ = false;
};
// Shared storage is fingerprinted by the digests of every stride-th chunk (64 of them, or all of
// a small disk).
inline uint64_t sampleStride(uint64_t chunks) { return chunks / 64 ? chunks / 64 : 1; }

class DiskWriteLog {
public:
  static constexpr uint64_t kChunkBytes = 64 * 1024;

  explicit DiskWriteLog(uint64_t diskBytes) : diskBytes_(diskBytes) {}

  uint64_t diskBytes() const { return diskBytes_; }
  uint64_t chunkCount() const { return (diskBytes_ + kChunkBytes - 1) / kChunkBytes; }

  void begin();
  void end();
  // A write of bytes at offset reached the file (nothing happens while not recording).
  void record(uint64_t offset, std::span<const uint8_t> bytes);
  // Chunk numbers (a PageSet over chunks) written since the last take.
  PageSet takeChunks();
  uint64_t chunksWritten() const;
  // The guest flushed the disk (its writes so far are durable here).
  void recordFlush();
  // The writes since the last take, in order, appended to out; whether the guest flushed since the
  // last takeJournal() (a flush during the sync counts for the first epoch after it).
  bool takeJournal(std::vector<DiskWrite>& out);

private:
  const uint64_t diskBytes_;
  mutable std::mutex mutex_;
  bool recording_ = false;
  bool flushed_ = false;
  PageSet chunks_;
  std::vector<DiskWrite> journal_;
};

}  // namespace tandem::dev
