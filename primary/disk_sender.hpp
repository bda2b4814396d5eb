// DiskSender: keeps a standby's disks in step with the primary's, for one replication session
// (DESIGN.md, "Output commit": disk writes travel with their epoch). While it lives, every disk's
// write log records (devices/disk_write_log.hpp).
//
//   sync    sendChunks() after each round's pages: the 64 KiB chunks written since the last round
//           (every chunk in round 0), read from the disk file while the guest runs; a chunk being
//           written meanwhile is sent again in the next round, and the writes after the last round
//           go with epoch 1
//   epochs  takeEpoch() inside the pause (moves the logs' journals: no I/O), then fillCommit()
//           puts the writes into Commit{N}, disk by disk, each disk's in the order they were made
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "machine/machine.hpp"
#include "transport/channel.hpp"
#include "transport/outgoing.hpp"
#include "transport/staging_pool.hpp"

namespace tandem {

class DiskSender {
public:
  explicit DiskSender(Machine& machine);
  ~DiskSender();
  DiskSender(const DiskSender&) = delete;
  DiskSender& operator=(const DiskSender&) = delete;

  // What the standby's disk d holds (DiskDigests): the first sendChunks() skips the chunks equal
  // to it (a chunk written meanwhile goes in a later round anyway).
  void standbyHolds(schema::DiskDigests::Reader digests);
  // Chunks the first sendChunks() left out because the standby had them.
  uint64_t chunksSkipped() const { return skipped_; }

  // Chunks written since the last sendChunks() (or all, before the first).
  uint64_t chunksWritten() const;
  // Sends those chunks on channel, each message through deliver (with the number of chunks in
  // it: raw chunks go in runs of up to kRunChunks in a row); returns how many chunks went. Throws
  // Error when a disk cannot be read.
  static constexpr uint64_t kRunChunks = 16;
  uint64_t sendChunks(const Channel& channel, const std::function<void(std::unique_ptr<OutgoingMessage>, uint32_t)>& deliver);

  void takeEpoch();
  uint64_t epochWriteBytes() const;
  void fillCommit(schema::Commit::Builder commit);

private:
  bool standbyHas(uint64_t theirs, bool hole, std::span<const uint8_t> bytes) const;

  Machine& machine_;
  std::vector<std::vector<dev::DiskWrite>> epoch_;  // per disk
  bool epochFlushed_ = false;                       // the guest flushed a disk in this epoch
  std::vector<uint8_t> encoded_;
  uint32_t lz4SkipLeft_ = 0, lz4Backoff_ = 0;  // chunks to send without trying lz4, and the last such run
  std::vector<std::vector<uint64_t>> standbyDigests_;  // per disk, until the first sendChunks() used them
  std::shared_ptr<StagingPool> staging_;         // run buffers, used again once ZeroMQ sent them
  uint64_t skipped_ = 0;
};

}  // namespace tandem
