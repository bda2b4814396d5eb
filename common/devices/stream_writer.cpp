#include "devices/stream_writer.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>
#include <vector>

namespace tandem::dev {

StreamWriter::StreamWriter(int fd, size_t limit, Overflow overflow)
    : fd_(fd), limit_(limit), overflow_(overflow) {
  struct stat st{};
  bool known = ::fstat(fd, &st) == 0;
  socket_ = known && S_ISSOCK(st.st_mode);
  if (!socket_ && !(known && S_ISREG(st.st_mode))) {
    // O_NONBLOCK on the caller's descriptor would change it for every process sharing it (a shell's
    // terminal); a second opening of the same pipe or terminal is ours alone.
    std::string path = "/proc/self/fd/" + std::to_string(fd);
    int reopened = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (reopened >= 0) own_.reset(reopened);  // (else: written as it is, which may block)
  }
}

ssize_t StreamWriter::writeNow(std::span<const uint8_t> bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    auto rest = bytes.subspan(done);
    ssize_t n = socket_ ? ::send(fd_, rest.data(), rest.size(), MSG_DONTWAIT | MSG_NOSIGNAL)
                                      : ::write(pollFd(), rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n <= 0) return -1;
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

StreamWriter::Result StreamWriter::write(std::span<const uint8_t> bytes) {
  std::lock_guard lock(mutex_);
  if (gone_) return Result::Gone;
  if (cut_) return Result::CutOff;
  if (queue_.empty()) {
    ssize_t n = writeNow(bytes);
    if (n < 0) return gone_ = true, Result::Gone;
    bytes = bytes.subspan(static_cast<size_t>(n));
    if (bytes.empty()) return Result::Written;
  }
  if (queue_.size() + bytes.size() > limit_) {
    if (overflow_ == Overflow::Drop) {
      dropped_ += bytes.size();
      return Result::Dropped;
    }
    cutOff();
    return Result::CutOff;
  }
  queue_.insert(queue_.end(), bytes.begin(), bytes.end());
  return Result::Queued;
}

StreamWriter::Result StreamWriter::flush() {
  std::lock_guard lock(mutex_);
  if (gone_) return Result::Gone;
  if (cut_) return Result::CutOff;
  return drainQueue();
}

StreamWriter::Result StreamWriter::drainQueue() {
  std::vector<uint8_t> chunk;
  while (!queue_.empty()) {
    size_t take = std::min<size_t>(queue_.size(), 64 * 1024);
    chunk.assign(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(take));
    ssize_t n = writeNow(chunk);
    if (n < 0) {
      queue_.clear();
      gone_ = true;
      return Result::Gone;
    }
    queue_.erase(queue_.begin(), queue_.begin() + n);
    if (static_cast<size_t>(n) < take) return Result::Queued;
  }
  return Result::Written;
}

void StreamWriter::cutOff() {
  cut_ = true;
  queue_.clear();
  if (socket_) ::shutdown(fd_, SHUT_RDWR);
}

uint64_t StreamWriter::takeDropped() {
  std::lock_guard lock(mutex_);
  return std::exchange(dropped_, 0);
}

bool StreamWriter::hasQueued() const {
  std::lock_guard lock(mutex_);
  return !queue_.empty();
}

}  // namespace tandem::dev
