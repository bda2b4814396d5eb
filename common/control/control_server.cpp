#include "control/control_server.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <map>

#include "base/error.hpp"
#include "base/log.hpp"

namespace tandem {

namespace {

constexpr size_t kMaxRequestBytes = 64 * 1024;

sockaddr_un addressOf(const std::string& path) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof sa.sun_path)
    failBadInput("control socket path '", path, "' must be 1 to ", sizeof sa.sun_path - 1, " characters");
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  return sa;
}

bool sendAll(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::send(fd, text.data() + done, text.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

ControlServer::ControlServer(std::string path, Handler handler, std::set<std::string> longCommands)
    : path_(std::move(path)), handler_(std::move(handler)), longCommands_(std::move(longCommands)) {
  sockaddr_un sa = addressOf(path_);
  listener_.reset(checkSys(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket"));
  if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
    if (errno != EADDRINUSE) failBadInput("cannot create control socket ", path_, ": ", std::strerror(errno));
    // Someone's socket file is there: in use if something answers, stale otherwise.
    Fd probe(checkSys(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket"));
    if (::connect(probe.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0)
      failBadInput("control socket ", path_, " is in use by another tandem; choose another path");
    ::unlink(path_.c_str());
    if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0)
      failBadInput("cannot create control socket ", path_, ": ", std::strerror(errno));
  }
  checkSys(::listen(listener_.get(), 8), "listen on the control socket");
  thread_ = std::make_unique<NamedThread>("control", [this] { serve(); });
}

ControlServer::~ControlServer() {
  stop_.signal();
  thread_->join();
  longRequests_.clear();  // each answers its client and ends
  ::unlink(path_.c_str());
}

namespace {

nlohmann::json answer(const ControlServer::Handler& handler, const nlohmann::json& request) {
  try {
    return handler(request);
  } catch (const Error& e) {
    return {{"ok", false}, {"error", e.what()}};
  } catch (const nlohmann::json::exception& e) {
    return {{"ok", false}, {"error", concat("a field of the request has the wrong type: ", e.what())}};
  }
}

}  // namespace

void ControlServer::serve() {
  std::map<int, std::string> clients;  // fd -> bytes received but not yet a whole line
  for (;;) {
    std::vector<pollfd> fds{{stop_.fd(), POLLIN, 0}, {listener_.get(), POLLIN, 0}};
    for (const auto& [fd, pending] : clients) fds.push_back({fd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      throwErrno("poll on the control socket", errno);
    }
    if (fds[0].revents) break;
    if (fds[1].revents) {
      int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) clients[fd] = "";
    }
    for (size_t i = 2; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      int fd = fds[i].fd;
      char chunk[4096];
      ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      bool keep = n > 0, handedOver = false;
      if (keep) {
        std::string& pending = clients[fd];
        pending.append(chunk, static_cast<size_t>(n));
        for (auto nl = pending.find('\n'); keep && nl != std::string::npos; nl = pending.find('\n')) {
          std::string line = pending.substr(0, nl);
          pending.erase(0, nl + 1);
          nlohmann::json request;
          try {
            request = nlohmann::json::parse(line);
          } catch (const nlohmann::json::exception& e) {
            keep = sendAll(fd, nlohmann::json{{"ok", false}, {"error", concat("the request is not valid JSON: ", e.what())}}.dump() + "\n");
            continue;
          }
          if (request.is_object() && request.contains("cmd") && request["cmd"].is_string() &&
              longCommands_.contains(request["cmd"].get<std::string>())) {
            // Its own thread answers and closes the connection; nothing more is read from it.
            longRequests_.push_back(std::make_unique<NamedThread>("control-long", [this, fd, request] {
              sendAll(fd, answer(handler_, request).dump() + "\n");
              ::close(fd);
            }));
            clients.erase(fd);
            handedOver = true;
            break;
          }
          keep = sendAll(fd, answer(handler_, request).dump() + "\n");
        }
        if (handedOver) continue;
        if (pending.size() > kMaxRequestBytes) keep = false;
      }
      if (!keep) {
        ::close(fd);
        clients.erase(fd);
      }
    }
  }
  for (const auto& [fd, pending] : clients) ::close(fd);
}

nlohmann::json controlRequest(const std::string& path, const nlohmann::json& request) {
  sockaddr_un sa = addressOf(path);
  Fd fd(checkSys(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket"));
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0)
    failBadInput("nothing answers at control socket ", path, " (", std::strerror(errno),
                 "); is 'tandem run --control ", path, "' running?");
  if (!sendAll(fd.get(), request.dump() + "\n")) failBadInput("control socket ", path, " closed before the request was sent");
  std::string reply;
  char chunk[4096];
  while (reply.find('\n') == std::string::npos) {
    ssize_t n = ::recv(fd.get(), chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) failBadInput("control socket ", path, " closed without an answer");
    reply.append(chunk, static_cast<size_t>(n));
  }
  return nlohmann::json::parse(reply.substr(0, reply.find('\n')));
}

}  // namespace tandem
