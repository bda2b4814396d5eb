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
#include "base/fault_point.hpp"
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
  ::setsockopt(socket_.get(), IPPROTO_TCP, TCP_CORK, &one, sizeof one);
}

void ReleaseSender::send(uint64_t epoch) { writeAll(socket_.get(), &epoch, sizeof epoch); }

void ReleaseSender::push() {
  int off = 0, on = 1;
  ::setsockopt(socket_.get(), IPPROTO_TCP, TCP_CORK, &off, sizeof off);  // sends what is queued
  ::setsockopt(socket_.get(), IPPROTO_TCP, TCP_CORK, &on, sizeof on);
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
    faultPoint("standby.before-release-read");
    std::lock_guard lock(mutex_);
    if (frozen_) return;
    pump();
  }
}

void ReleaseListener::freeze() {
  std::lock_guard lock(mutex_);
  if (!frozen_) pump();  // records already in this host's kernel count: the primary showed their output
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
    for (; c.partial.size() - used >= 8; used += 8) {
      uint64_t value;
      std::memcpy(&value, c.partial.data() + used, 8);
      if (!c.sessionKnown) {
        c.session = value;
        c.sessionKnown = true;
      } else {
        c.highest = std::max(c.highest.value_or(0), value);
      }
    }
    c.partial.erase(c.partial.begin(), c.partial.begin() + static_cast<long>(used));
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
