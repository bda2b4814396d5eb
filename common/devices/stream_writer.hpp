// StreamWriter: a console's output into a file descriptor, never blocking the thread that writes
// (a vCPU, or the replicator releasing an epoch). What the kernel takes at once goes straight in,
// so it outlives this process; the rest waits in a bounded queue that flush() writes out as the
// reader makes room (its owner calls flush() when poll() says the descriptor is writable). A reader
// that falls more than `limit` bytes behind either is cut off (Overflow::CutOff: a socket is shut
// down and its reader sees the end of the stream; the next client gets a fresh start) or misses
// what comes while it is that far behind (Overflow::Drop: stdout, which has no next client; it
// gets output again once the queue is written out). The guest never waits for a reader.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <span>

#include "base/fd.hpp"

namespace tandem::dev {

class StreamWriter {
public:
  enum class Overflow { CutOff, Drop };
  enum class Result {
    Written,  // all of it is in the kernel
    Queued,   // some waits for the reader: poll for POLLOUT and call flush()
    CutOff,   // the reader fell `limit` bytes behind (now, or before): nothing more is written
    Dropped,  // Overflow::Drop: the reader is `limit` bytes behind; these bytes are not written
    Gone,     // the reader went away (EPIPE, a reset)
  };

  // fd stays the caller's. A pipe or terminal is reopened here in non-blocking mode (a descriptor
  // of our own, so the caller's stays as it was); a socket is written with MSG_DONTWAIT; a regular
  // file is written as it is (it never waits for a reader).
  StreamWriter(int fd, size_t limit, Overflow overflow = Overflow::CutOff);

  Result write(std::span<const uint8_t> bytes);
  Result flush();
  bool hasQueued() const;
  // Bytes dropped (Overflow::Drop) since the last call.
  uint64_t takeDropped();
  // The descriptor to poll for POLLOUT.
  int pollFd() const { return own_ ? own_.get() : fd_; }

private:

  // Writes what the kernel takes now; the count, or -1 when the reader is gone.
  ssize_t writeNow(std::span<const uint8_t> bytes);
  Result drainQueue();  // mutex_ held
  void cutOff();        // mutex_ held

  int fd_;
  Fd own_;  // the non-blocking reopening of a pipe or terminal
  bool socket_ = false;  // written with send(MSG_DONTWAIT); anything else with write(pollFd())
  const size_t limit_;
  const Overflow overflow_;
  uint64_t dropped_ = 0;
  mutable std::mutex mutex_;
  std::deque<uint8_t> queue_;
  bool cut_ = false, gone_ = false;
};

}  // namespace tandem::dev
