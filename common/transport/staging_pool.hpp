// StagingPool: staging buffers for OutgoingMessages that are used again rather than freed. A
// fresh buffer costs a page fault per 4 KiB on its first write, and inside an epoch's pause the
// dirty pages are copied into such buffers: 0.75 us a page with fresh ones, 0.35 with reused ones.
// A buffer goes back to the pool when its message is done with it (on ZeroMQ's thread).
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace tandem {

using StagingBuffer = std::unique_ptr<uint64_t[], std::function<void(uint64_t*)>>;

class StagingPool : public std::enable_shared_from_this<StagingPool> {
public:
  static std::shared_ptr<StagingPool> make(size_t bufferBytes) {
    return std::shared_ptr<StagingPool>(new StagingPool(bufferBytes));
  }
  size_t bufferBytes() const { return words_ * 8; }

  // A buffer of bufferBytes(), already touched; back to the pool when released.
  StagingBuffer take() {
    uint64_t* buffer = nullptr;
    {
      std::lock_guard lock(mutex_);
      if (!free_.empty()) {
        buffer = free_.back().release();
        free_.pop_back();
      }
    }
    if (!buffer) {
      buffer = new uint64_t[words_];
      std::memset(buffer, 0, words_ * 8);
    }
    return StagingBuffer(buffer, [pool = shared_from_this()](uint64_t* b) { pool->giveBack(b); });
  }

private:
  explicit StagingPool(size_t bufferBytes) : words_((bufferBytes + 7) / 8) {}
  void giveBack(uint64_t* buffer) {
    std::lock_guard lock(mutex_);
    free_.emplace_back(buffer);
  }

  size_t words_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<uint64_t[]>> free_;
};

}  // namespace tandem
