// A client of the test guest's kv job (job=kv): UDP requests with ids, retried until answered.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>

namespace tandem::test {

class KvClient {
public:
  KvClient(const std::string& ip, uint16_t port) : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    if (fd_ < 0) throw std::runtime_error("socket failed");
    server_.sin_family = AF_INET;
    server_.sin_port = htons(port);
    ::inet_pton(AF_INET, ip.c_str(), &server_.sin_addr);
  }
  ~KvClient() { ::close(fd_); }
  KvClient(const KvClient&) = delete;
  KvClient& operator=(const KvClient&) = delete;

  // Sends "ID TEXT" until "ID ..." comes back or giveUp passes; returns the answer after the id.
  std::optional<std::string> request(const std::string& text, std::chrono::milliseconds giveUp,
                                     std::chrono::milliseconds retryAfter = std::chrono::milliseconds(200)) {
    uint64_t id = ++nextId_;
    std::string message = std::to_string(id) + " " + text;
    std::string prefix = std::to_string(id) + " ";
    auto deadline = std::chrono::steady_clock::now() + giveUp;
    while (std::chrono::steady_clock::now() < deadline) {
      ::sendto(fd_, message.data(), message.size(), 0, reinterpret_cast<sockaddr*>(&server_), sizeof server_);
      ++sent_;
      auto retryAt = std::chrono::steady_clock::now() + retryAfter;
      while (std::chrono::steady_clock::now() < retryAt) {
        auto left = std::chrono::duration_cast<std::chrono::microseconds>(retryAt - std::chrono::steady_clock::now());
        timeval tv{static_cast<time_t>(left.count() / 1000000), static_cast<suseconds_t>(left.count() % 1000000)};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char buffer[2048];  // values up to 1 KiB
        ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        std::string reply(buffer, static_cast<size_t>(n));
        if (!reply.empty() && reply.back() == '\n') reply.pop_back();
        if (reply.starts_with(prefix)) return reply.substr(prefix.size());  // older answers are skipped
      }
    }
    return std::nullopt;
  }
  uint64_t sent() const { return sent_; }

private:
  int fd_;
  sockaddr_in server_{};
  uint64_t nextId_ = 0;
  uint64_t sent_ = 0;
};

}  // namespace tandem::test
