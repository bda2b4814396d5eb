// Blk: a virtio block device on a raw file. Every write to the file leaves through writeToDisk(),
// which tells the disk's write log (replication ships the writes with their epoch).
#pragma once

#include <cstdint>
#include <string>

#include "base/fd.hpp"
#include "devices/disk_write_log.hpp"
#include "devices/virtio/mmio_transport.hpp"

namespace tandem::dev::virtio {

class Blk final : public Device {
public:
  static constexpr uint64_t kSectorSize = 512;

  // Opens path (read-write unless readonly); throws Error(BadInput) with one sentence if it cannot.
  Blk(std::string path, bool readonly);

  uint32_t deviceId() const override { return 2; }
  uint64_t features() const override;
  uint16_t queueCount() const override { return 1; }
  void readConfig(uint64_t offset, std::span<uint8_t> data) const override;
  bool process(uint16_t index, Queue& queue, GuestMemory& memory) override;

  const std::string& path() const { return path_; }
  uint64_t sizeBytes() const { return sectors_ * kSectorSize; }
  DiskWriteLog& writeLog() { return writeLog_; }
  // Reads the disk's bytes at offset into out (any thread); false on a read error or past the end.
  bool readAt(uint64_t offset, std::span<uint8_t> out) const;
  // The disk's holes, chunk after chunk (what is in one need not be read: it is zeros).
  HoleWalk holes() const { return HoleWalk(fd_.get(), sizeBytes()); }

private:
  uint8_t serve(const Chain& chain, GuestMemory& memory, uint32_t& written);
  bool writeToDisk(uint64_t offset, const uint8_t* data, size_t length);

  std::string path_;
  bool readonly_;
  Fd fd_;
  uint64_t sectors_ = 0;
  DiskWriteLog writeLog_;
};

}  // namespace tandem::dev::virtio
