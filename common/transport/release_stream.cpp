#include "transport/release_stream.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "base/error.hpp"
#include "transport/link.hpp"

namespace tandem {

namespace {

struct HostPort {
  std::string host;
  uint16_t port;
};

HostPort parse(const std::string& endpoint) {
  urgentEndpoint(endpoint);  // refuses anything but tcp://HOST:PORT with PORT + 1 free of overflow
  auto colon = endpoint.rfind(':');
  unsigned port = 0;
  std::from_chars(endpoint.data() + colon + 1, endpoint.data() + endpoint.size(), port);
  if (port + 2 > 65535) failBadInput("'", endpoint, "' leaves no room for its release port (PORT + 2)");
  return {endpoint.substr(6, colon - 6), static_cast<uint16_t>(port + 2)};
}

sockaddr_in address(const HostPort& at, bool listening) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(at.port);
  if (listening && (at.host == "*" || at.host == "0.0.0.0")) {
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    return a;
  }
  if (::inet_pton(AF_INET, at.host.c_str(), &a.sin_addr) == 1) return a;
  addrinfo hints{}, *found = nullptr;
  hints.ai_family = AF_INET;
  if (::getaddrinfo(at.host.c_str(), nullptr, &hints, &found) != 0 || !found)
    failBadInput("cannot resolve host '", at.host, "'");
  a.sin_addr = reinterpret_cast<sockaddr_in*>(found->ai_addr)->sin_addr;
  ::freeaddrinfo(found);
  return a;
}

void writeAll(int fd, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw Error(ErrorKind::Disconnected, concat("the standby's release connection broke: ", std::strerror(errno)));
    p += w;
    n -= static_cast<size_t>(w);
  }
}

constexpr auto kSpinFor = std::chrono::microseconds(500);

}  // namespace

uint16_t releasePort(const std::string& endpoint) { return parse(endpoint).port; }

ReleaseSender::ReleaseSender(const std::string& endpoint, uint64_t session) {
  sockaddr_in a = address(parse(endpoint), false);
  socket_ = Fd(checkSys(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket"));
  int one = 1;
  ::setsockopt(socket_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(socket_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) < 0)
    throw Error(ErrorKind::Disconnected, concat("cannot reach the standby's release port ", ntohs(a.sin_port), ": ", std::strerror(errno)));
  writeAll(socket_.get(), &session, sizeof session);
}

void ReleaseSender::send(uint64_t epoch) { writeAll(socket_.get(), &epoch, sizeof epoch); }

bool ReleaseSender::waitRecorded(uint64_t epoch, std::chrono::milliseconds timeout) {
  auto start = std::chrono::steady_clock::now(), until = start + timeout;
  while (recorded_ < epoch) {
    // Between the standby's record and our write of the output, a kill loses that output: the
    // answer is looked for without sleeping for a while (a wakeup costs 0.1 ms here, far more on a
    // busy machine), then with poll().
    auto now = std::chrono::steady_clock::now();
    if (now - start > kSpinFor) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - now);
      pollfd p{socket_.get(), POLLIN, 0};
      int ready = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(0, left.count())));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return false;
    } else if (now > until) {
      return false;
    }
    uint8_t buffer[256];
    ssize_t n = ::recv(socket_.get(), buffer, sizeof buffer, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) throw Error(ErrorKind::Disconnected, "the standby closed its release connection");
    partial_.insert(partial_.end(), buffer, buffer + n);
    size_t used = 0;
    for (; partial_.size() - used >= 8; used += 8) {
      uint64_t value;
      std::memcpy(&value, partial_.data() + used, 8);
      recorded_ = std::max(recorded_, value);
    }
    partial_.erase(partial_.begin(), partial_.begin() + static_cast<long>(used));
  }
  return true;
}

ReleaseListener::ReleaseListener(const std::string& endpoint) {
  HostPort at = parse(endpoint);
  sockaddr_in a = address(at, true);
  listen_ = Fd(checkSys(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), "socket"));
  int one = 1;
  ::setsockopt(listen_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(listen_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 || ::listen(listen_.get(), 8) < 0)
    failBadInput("cannot listen on ", at.host, ":", at.port, " (the release port, ", endpoint, " + 2): ", std::strerror(errno));
  thread_ = std::make_unique<NamedThread>("releases", [this] { serve(); });
}

ReleaseListener::~ReleaseListener() {
  stop_.signal();
  thread_.reset();
}

void ReleaseListener::serve() {
  for (;;) {
    std::vector<pollfd> fds{{stop_.fd(), POLLIN, 0}, {listen_.get(), POLLIN, 0}};
    {
      std::lock_guard lock(mutex_);
      for (const auto& c : connections_)
        if (c.fd) fds.push_back({c.fd.get(), POLLIN, 0});
    }
    if (::poll(fds.data(), fds.size(), 1000) < 0 && errno != EINTR) return;
    if (fds[0].revents) return;
    std::lock_guard lock(mutex_);
    if (frozen_) return;
    pump();
  }
}

void ReleaseListener::freeze() {
  std::lock_guard lock(mutex_);
  frozen_ = true;
}

void ReleaseListener::pump() {
  for (;;) {
    int fd = ::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) break;
    connections_.push_back(Connection{Fd(fd), 0, {}, std::nullopt, false});
  }
  for (auto& c : connections_) {
    if (!c.fd) continue;  // closed: what it released stays known
    uint8_t buffer[4096];
    for (;;) {
      ssize_t n = ::read(c.fd.get(), buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      if (n <= 0) {
        c.fd.reset();
        break;
      }
      c.partial.insert(c.partial.end(), buffer, buffer + n);
    }
    size_t used = 0;
    bool recorded = false;
    for (; c.partial.size() - used >= 8; used += 8) {
      uint64_t value;
      std::memcpy(&value, c.partial.data() + used, 8);
      if (!c.sessionKnown) {
        c.session = value;
        c.sessionKnown = true;
      } else {
        c.highest = std::max(c.highest.value_or(0), value);
        recorded = true;
      }
    }
    c.partial.erase(c.partial.begin(), c.partial.begin() + static_cast<long>(used));
    // Recorded: the primary may show it now (8 bytes always fit an idle socket's buffer).
    if (recorded && c.fd) [[maybe_unused]] auto sent = ::send(c.fd.get(), &*c.highest, 8, MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  // Keep the most recent connections only: a primary opens one per session.
  if (connections_.size() > 16) connections_.erase(connections_.begin(), connections_.end() - 16);
}

std::optional<uint64_t> ReleaseListener::released(uint64_t session) const {
  std::lock_guard lock(mutex_);
  std::optional<uint64_t> highest;
  for (const auto& c : connections_)
    if (c.sessionKnown && c.session == session && c.highest) highest = std::max(highest.value_or(0), *c.highest);
  return highest;
}

}  // namespace tandem
