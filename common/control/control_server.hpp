// ControlServer: a Unix socket speaking JSON lines: one request object per line, one reply object
// per line. Requests are handled one at a time on the server's own thread ("control"), except the
// long ones named at construction (a migration): each of those gets a thread of its own and
// answers on its connection when it is done, while other requests go on being served.
#pragma once

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/fd.hpp"
#include "base/thread.hpp"

namespace tandem {

class ControlServer {
public:
  // Runs on the control thread; returns the reply ({"ok": true, ...} or {"ok": false, "error": ...}).
  using Handler = std::function<nlohmann::json(const nlohmann::json& request)>;

  // Listens at path (a stale socket left by a dead tandem is replaced; a live one is BadInput).
  ControlServer(std::string path, Handler handler, std::set<std::string> longCommands = {});
  ~ControlServer();  // stops the thread, waits for long requests to answer, removes the socket

  const std::string& path() const { return path_; }

private:
  void serve();

  std::string path_;
  Handler handler_;
  Fd listener_;
  EventFd stop_;
  std::set<std::string> longCommands_;
  std::vector<std::unique_ptr<NamedThread>> longRequests_;
  std::unique_ptr<NamedThread> thread_;
};

// One request to a control socket; throws Error(BadInput) when nothing answers at path.
nlohmann::json controlRequest(const std::string& path, const nlohmann::json& request);

}  // namespace tandem
