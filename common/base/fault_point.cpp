#include "base/fault_point.hpp"

#ifdef TANDEM_FAULT_POINTS

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "base/log.hpp"

namespace tandem {

namespace {

struct Armed {
  enum class Action { Kill, Stop, Stall } action;
  unsigned stallMs = 0;
  uint64_t at = 0;  // 0: every time
  std::atomic<uint64_t> reached{0};
};

// TANDEM_FAULTS, parsed once. A malformed entry is a test's mistake: said once and ignored.
std::map<std::string, std::unique_ptr<Armed>> parse() {
  std::map<std::string, std::unique_ptr<Armed>> armed;
  const char* text = std::getenv("TANDEM_FAULTS");
  if (!text) return armed;
  std::string all = text;
  for (size_t start = 0; start < all.size();) {
    size_t end = all.find(',', start);
    std::string entry = all.substr(start, end == std::string::npos ? std::string::npos : end - start);
    start = end == std::string::npos ? all.size() : end + 1;
    auto eq = entry.find('=');
    if (eq == std::string::npos) {
      log::warn("TANDEM_FAULTS: '", entry, "' is not NAME=ACTION[@K]; ignored");
      continue;
    }
    auto a = std::make_unique<Armed>();
    std::string action = entry.substr(eq + 1);
    if (auto atSign = action.find('@'); atSign != std::string::npos) {
      a->at = std::strtoull(action.c_str() + atSign + 1, nullptr, 10);
      action.resize(atSign);
    }
    if (action == "kill") a->action = Armed::Action::Kill, a->at = a->at ? a->at : 1;
    else if (action == "stop") a->action = Armed::Action::Stop, a->at = a->at ? a->at : 1;
    else if (action.starts_with("stall-")) a->action = Armed::Action::Stall, a->stallMs = static_cast<unsigned>(std::atoi(action.c_str() + 6));
    else {
      log::warn("TANDEM_FAULTS: unknown action '", action, "' (kill, stop, stall-MS); ignored");
      continue;
    }
    log::warn("fault point ", entry.substr(0, eq), " armed: ", entry.substr(eq + 1));
    armed[entry.substr(0, eq)] = std::move(a);
  }
  return armed;
}

}  // namespace

void faultPoint(const char* name) {
  static const auto armed = parse();
  if (armed.empty()) return;
  auto it = armed.find(name);
  if (it == armed.end()) return;
  Armed& a = *it->second;
  uint64_t reached = ++a.reached;
  if (a.at && reached != a.at) return;
  switch (a.action) {
    case Armed::Action::Kill:
      log::warn("fault point ", name, ": killing this process");
      // Directed at this thread, which takes it on its way out of the call: kill(getpid()) could
      // wake another thread to take it while this one goes on past the point.
      ::pthread_kill(::pthread_self(), SIGKILL);
      break;
    case Armed::Action::Stop:
      log::warn("fault point ", name, ": stopping this process");
      ::pthread_kill(::pthread_self(), SIGSTOP);
      break;
    case Armed::Action::Stall:
      std::this_thread::sleep_for(std::chrono::milliseconds(a.stallMs));
      break;
  }
}

}  // namespace tandem

#endif
