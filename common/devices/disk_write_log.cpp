#include "devices/disk_write_log.hpp"

#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <utility>
#include <vector>

namespace tandem::dev {

uint64_t chunkDigest(std::span<const uint8_t> chunk) { return XXH3_64bits(chunk.data(), chunk.size()); }

uint64_t zeroChunkDigest(size_t length) {
  static const std::vector<uint8_t> zeros(DiskWriteLog::kChunkBytes);
  static const uint64_t whole = chunkDigest(zeros);
  if (length == zeros.size()) return whole;
  return chunkDigest(std::span(zeros).first(std::min(length, zeros.size())));
}

uint64_t nextDataAt(int fd, uint64_t offset, uint64_t size) {
  off_t at = ::lseek(fd, static_cast<off_t>(offset), SEEK_DATA);
  if (at < 0) return errno == ENXIO ? size : offset;
  return std::min(static_cast<uint64_t>(at), size);
}

void DiskWriteLog::begin() {
  std::lock_guard lock(mutex_);
  recording_ = true;
  flushed_ = false;
  chunks_ = PageSet(chunkCount());
  for (uint64_t c = 0; c < chunkCount(); ++c) chunks_.set(c);
  journal_.clear();
}

void DiskWriteLog::end() {
  std::lock_guard lock(mutex_);
  recording_ = false;
  chunks_ = PageSet();
  std::vector<DiskWrite>().swap(journal_);
}

void DiskWriteLog::record(uint64_t offset, std::span<const uint8_t> bytes) {
  std::lock_guard lock(mutex_);
  if (!recording_ || bytes.empty()) return;
  for (uint64_t c = offset / kChunkBytes; c <= (offset + bytes.size() - 1) / kChunkBytes && c < chunkCount(); ++c) chunks_.set(c);
  journal_.push_back(DiskWrite{offset, {bytes.begin(), bytes.end()}});
}

PageSet DiskWriteLog::takeChunks() {
  std::lock_guard lock(mutex_);
  PageSet taken = std::exchange(chunks_, PageSet(recording_ ? chunkCount() : 0));
  journal_.clear();
  return taken;
}

uint64_t DiskWriteLog::chunksWritten() const {
  std::lock_guard lock(mutex_);
  return chunks_.count();
}

void DiskWriteLog::recordFlush() {
  std::lock_guard lock(mutex_);
  if (recording_) flushed_ = true;
}

bool DiskWriteLog::takeJournal(std::vector<DiskWrite>& out) {
  std::lock_guard lock(mutex_);
  if (out.empty()) {
    out.swap(journal_);
  } else {
    for (auto& w : journal_) out.push_back(std::move(w));
    journal_.clear();
  }
  return std::exchange(flushed_, false);
}

}  // namespace tandem::dev
