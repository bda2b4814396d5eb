#include "devices/console.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <vector>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/log.hpp"
#include "base/thread.hpp"
#include "devices/stream_writer.hpp"

namespace tandem::dev {

namespace {

// How far a reader may fall behind (beyond what its kernel buffers hold) before it is cut off.
constexpr size_t kReaderLimit = 128 * 1024;

// Waits until fd can take more bytes, wake is signalled or stop is; false on stop.
bool waitWritable(int fd, bool wantOut, EventFd& wake, const EventFd& stop) {
  pollfd p[3] = {{wantOut ? fd : -1, POLLOUT, 0}, {wake.fd(), POLLIN, 0}, {stop.fd(), POLLIN, 0}};
  int n = ::poll(p, 3, -1);
  if (p[1].revents) wake.consume();
  return !(n > 0 && p[2].revents);
}

// Writes all of bytes to a regular file (which never waits for a reader); false on an error.
bool writeFile(int fd, std::span<const uint8_t> bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
  return true;
}

// Hands bytes to deliver, waiting while the guest's buffer is full; false if stop was signalled.
bool deliverAll(const Console::Deliver& deliver, std::span<const uint8_t> bytes, const EventFd& stop) {
  while (!bytes.empty()) {
    size_t taken = deliver(bytes);
    bytes = bytes.subspan(taken);
    if (taken == 0) {
      pollfd p{stop.fd(), POLLIN, 0};
      if (::poll(&p, 1, 10) > 0) return false;
    }
  }
  return true;
}

class FdConsole final : public Console {
public:
  FdConsole(int inputFd, int outputFd, std::string description)
      : inputFd_(inputFd), description_(std::move(description)), writer_(outputFd, kReaderLimit, StreamWriter::Overflow::Drop) {
    flusher_ = std::make_unique<NamedThread>("console-out", [this] { flushWhileRunning(); });
  }
  ~FdConsole() override {
    stopInput();
    stopFlusher_.signal();
    flusher_->join();
  }

  void write(std::span<const uint8_t> bytes) override {
    switch (writer_.write(bytes)) {
      case StreamWriter::Result::Written: return;
      case StreamWriter::Result::Queued: wake_.signal(); return;
      case StreamWriter::Result::CutOff: return;  // (not with Overflow::Drop)
      case StreamWriter::Result::Dropped:
        if (!dropping_.exchange(true))
          log::warn("console ", description_, " fell ", kReaderLimit / 1024,
                    " KiB behind its reader; its output is dropped until the reader catches up (the guest does not wait for it)");
        return;
      case StreamWriter::Result::Gone:
        if (!outputGone_.exchange(true))
          log::warn("console output ", description_, " is gone; the guest's output is dropped from now on");
        return;
    }
  }

  void startInput(Deliver deliver) override {
    if (inputFd_ < 0) return;
    reader_ = std::make_unique<NamedThread>("console-in", [this, deliver = std::move(deliver)] {
      std::vector<uint8_t> buffer(4096);
      for (;;) {
        pollfd p[2] = {{inputFd_, POLLIN, 0}, {stop_.fd(), POLLIN, 0}};
        if (::poll(p, 2, -1) < 0) {
          if (errno == EINTR) continue;
          throwErrno("poll on console input", errno);
        }
        if (p[1].revents) return;
        ssize_t n = ::read(inputFd_, buffer.data(), buffer.size());
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) return;  // end of input: the guest simply gets no more
        if (!deliverAll(deliver, std::span(buffer.data(), static_cast<size_t>(n)), stop_)) return;
      }
    });
  }

  void stopInput() override {
    if (!reader_) return;
    stop_.signal();
    reader_->join();
    reader_.reset();
  }

  std::string describe() const override { return description_; }

private:
  // Writes out what the reader was not ready for, as it makes room; at the end, what is still
  // queued gets one more second.
  void flushWhileRunning() {
    while (waitWritable(writer_.pollFd(), writer_.hasQueued(), wake_, stopFlusher_)) {
      writer_.flush();
      if (!writer_.hasQueued() && dropping_.exchange(false))
        log::warn("console ", description_, " caught up; ", writer_.takeDropped(), " bytes of the guest's output were dropped meanwhile");
    }
    for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
         writer_.hasQueued() && std::chrono::steady_clock::now() < until;) {
      pollfd p{writer_.pollFd(), POLLOUT, 0};
      if (::poll(&p, 1, 100) > 0) writer_.flush();
    }
  }

  int inputFd_;
  std::string description_;
  StreamWriter writer_;
  std::atomic<bool> outputGone_{false}, dropping_{false};
  EventFd stop_, stopFlusher_, wake_;
  std::unique_ptr<NamedThread> reader_, flusher_;
};

class FileConsole final : public Console {
public:
  explicit FileConsole(std::string path) : path_(std::move(path)) {
    int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) failBadInput("cannot open console file ", path_, ": ", std::strerror(errno));
    fd_.reset(fd);
  }
  void write(std::span<const uint8_t> bytes) override {
    if (!writeFile(fd_.get(), bytes) && !failed_.exchange(true))
      log::warn("cannot write console file ", path_, ": ", std::strerror(errno));
  }
  void startInput(Deliver) override {}
  void stopInput() override {}
  std::string describe() const override { return "file:" + path_; }

private:
  std::string path_;
  Fd fd_;
  std::atomic<bool> failed_{false};
};

class TcpConsole final : public Console {
public:
  static constexpr size_t kBacklog = 64 * 1024;

  TcpConsole(const std::string& address, uint16_t port) : address_(address), port_(port) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    if (::inet_pton(AF_INET, address.c_str(), &sa.sin_addr) != 1)
      failBadInput("console address ", address, " is not an IPv4 address; use tcp:ADDR:PORT, e.g. tcp:127.0.0.1:4555");
    listener_.reset(checkSys(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket"));
    int one = 1;
    ::setsockopt(listener_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
      int e = errno;
      if (e == EADDRINUSE) failBadInput("console address ", address, ":", port, " is already in use; choose another port");
      failBadInput("cannot listen on console address ", address, ":", port, ": ", std::strerror(e));
    }
    checkSys(::listen(listener_.get(), 1), "listen");
  }
  ~TcpConsole() override { stopInput(); }

  // Never waits for the client: what its socket cannot take now is queued for the console thread,
  // and a client that falls kReaderLimit behind is disconnected (what follows goes to the backlog
  // for the next client).
  void write(std::span<const uint8_t> bytes) override {
    std::lock_guard lock(mutex_);
    if (writer_) {
      switch (writer_->write(bytes)) {
        case StreamWriter::Result::Written: return;
        case StreamWriter::Result::Queued: wake_.signal(); return;
        case StreamWriter::Result::CutOff:
          if (!cutOffLogged_) {
            cutOffLogged_ = true;
            log::warn("console client of ", describe(), " fell ", kReaderLimit / 1024,
                      " KiB behind; disconnected it (the guest does not wait for a reader)");
          }
          break;
        case StreamWriter::Result::Dropped:  // (not with Overflow::CutOff)
        case StreamWriter::Result::Gone: break;  // the console thread notices too and closes it
      }
    }
    backlog_.insert(backlog_.end(), bytes.begin(), bytes.end());
    while (backlog_.size() > kBacklog) backlog_.pop_front();
  }

  void startInput(Deliver deliver) override {
    reader_ = std::make_unique<NamedThread>("console-tcp", [this, deliver = std::move(deliver)] { serve(deliver); });
  }

  void stopInput() override {
    if (!reader_) return;
    stop_.signal();
    reader_->join();
    reader_.reset();
  }

  std::string describe() const override { return concat("tcp:", address_, ":", port_); }

private:
  void serve(const Deliver& deliver) {
    std::vector<uint8_t> buffer(4096);
    Fd client;
    for (;;) {
      bool queued = false;
      {
        std::lock_guard lock(mutex_);
        queued = writer_ && writer_->hasQueued();
      }
      pollfd p[3] = {{client ? client.get() : listener_.get(), static_cast<short>(POLLIN | (queued ? POLLOUT : 0)), 0},
                     {stop_.fd(), POLLIN, 0},
                     {wake_.fd(), POLLIN, 0}};
      if (::poll(p, 3, -1) < 0) {
        if (errno == EINTR) continue;
        throwErrno("poll on console socket", errno);
      }
      if (p[1].revents) return;
      if (p[2].revents) wake_.consume();
      if (!client) {
        if (p[0].revents & POLLIN) accept(client);
        continue;
      }
      if (p[0].revents & POLLOUT) {
        std::lock_guard lock(mutex_);
        writer_->flush();
      }
      if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::recv(client.get(), buffer.data(), buffer.size(), MSG_DONTWAIT);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {  // the client left, or was disconnected for falling behind
        std::lock_guard lock(mutex_);
        writer_.reset();
        client.reset();
        continue;
      }
      if (!deliverAll(deliver, std::span(buffer.data(), static_cast<size_t>(n)), stop_)) return;
    }
  }

  // Takes the next client; it gets the backlog first.
  void accept(Fd& client) {
    int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    client.reset(fd);
    std::lock_guard lock(mutex_);
    writer_ = std::make_unique<StreamWriter>(fd, kReaderLimit);
    cutOffLogged_ = false;
    std::vector<uint8_t> pending(backlog_.begin(), backlog_.end());
    backlog_.clear();
    if (writer_->write(pending) == StreamWriter::Result::Queued) wake_.signal();
  }

  std::string address_;
  uint16_t port_;
  Fd listener_;
  std::mutex mutex_;  // writer_, backlog_ and cutOffLogged_: written by vCPU threads, changed by the console thread
  std::unique_ptr<StreamWriter> writer_;  // the connected client's, or null
  std::deque<uint8_t> backlog_;
  bool cutOffLogged_ = false;
  EventFd stop_, wake_;
  std::unique_ptr<NamedThread> reader_;
};

}  // namespace

std::unique_ptr<Console> fdConsole(int inputFd, int outputFd, std::string description) {
  return std::make_unique<FdConsole>(inputFd, outputFd, std::move(description));
}

std::unique_ptr<Console> openConsole(std::string_view spec) {
  if (spec == "stdio") return fdConsole(STDIN_FILENO, STDOUT_FILENO, "stdio");
  if (spec.starts_with("file:") && spec.size() > 5) return std::make_unique<FileConsole>(std::string(spec.substr(5)));
  if (spec.starts_with("tcp:")) {
    auto rest = spec.substr(4);
    auto colon = rest.rfind(':');
    unsigned port = 0;
    if (colon != std::string_view::npos) {
      auto digits = rest.substr(colon + 1);
      auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
      if (ec == std::errc() && end == digits.data() + digits.size() && port > 0 && port < 65536)
        return std::make_unique<TcpConsole>(std::string(rest.substr(0, colon)), static_cast<uint16_t>(port));
    }
  }
  failBadInput("unknown console '", spec, "'; use stdio, file:PATH or tcp:ADDR:PORT");
}

}  // namespace tandem::dev
