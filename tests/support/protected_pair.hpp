// Helpers of the chaos suites: the console as the outside sees it across processes, the
// replication status of a tandem, a protected pair of processes.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include <deque>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/snapshot_helpers.hpp"
#include "support/tandem_run.hpp"

namespace tandem::test {

using Clock = std::chrono::steady_clock;

// Endpoints for a chain of standbys: each uses PORT to PORT + 2, from `first` on, 2400 ports per
// suite (the suites run as processes of their own, in parallel: failover 30000, protection 12000,
// silent_target 15000;
// other suites use other ranges, and the kernel picks outgoing ports from 32768 up).
struct ChainEndpoints {
  explicit ChainEndpoints(int first) : base(first + 4 * ((::getpid() * 11) % 600)) {}
  int base;
  std::string operator[](int i) const { return "tcp://127.0.0.1:" + std::to_string(base + 4 * i); }
};

// The console as the outside sees it, across processes: every tick the one after the last, every
// disk record the one after the last (each is on the disk before it is shown), and the answers to
// "verify".
struct TickStream {
  std::optional<uint64_t> last, lastRecord;
  uint64_t count = 0;
  std::string problem;  // the first tick or record out of place ("" while all are in order)
  std::vector<std::string> verdicts;  // "verify ok records=N" or "verify bad record=K"
  std::deque<std::string> recent;     // the last lines seen, for the message when one is out of place
  void feed(const std::string& line) {
    recent.push_back(line);
    if (recent.size() > 12) recent.pop_front();
    if (line.starts_with("verify ok") || line.starts_with("verify bad")) verdicts.push_back(line);
    if (line.starts_with("disk: wrote record ")) {
      uint64_t k = std::stoull(line.substr(19));
      if (lastRecord && k != *lastRecord + 1 && problem.empty())
        problem = "disk record " + std::to_string(k) + " came after record " + std::to_string(*lastRecord) + lastLines();
      lastRecord = k;
    }
    if (!line.starts_with("tick ")) return;
    uint64_t n = tickNumber(line);
    if (last && n != *last + 1 && problem.empty()) problem = "tick " + std::to_string(n) + " came after tick " + std::to_string(*last) + lastLines();
    last = n;
    ++count;
  }
  std::string lastLines() const {
    std::string text = " (the last lines:";
    for (const auto& l : recent) text += " [" + l + "]";
    return text + ")";
  }
  // Reads what child shows for `duration` (or until its output ends).
  void readFor(ChildProcess& child, std::chrono::milliseconds duration) {
    auto until = Clock::now() + duration;
    while (Clock::now() < until) {
      auto line = child.readLine(std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()) + 1ms);
      if (!line) break;
      feed(*line);
    }
  }
  // Reads until child shows its next tick; how long that took, or nullopt.
  std::optional<double> readUntilTick(ChildProcess& child, std::chrono::milliseconds timeout) {
    auto start = Clock::now();
    while (auto line = child.readLine(timeout)) {
      feed(*line);
      if (line->starts_with("tick ")) return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
      if (Clock::now() - start > timeout) break;
    }
    return std::nullopt;
  }
  // Asks the guest on child's console to verify what it keeps; its verdict, or "" without one.
  std::string verify(ChildProcess& child, std::chrono::milliseconds timeout) {
    size_t before = verdicts.size();
    child.send("verify\n");
    for (auto until = Clock::now() + timeout; verdicts.size() == before && Clock::now() < until;) {
      auto line = child.readLine(100ms);
      if (line) feed(*line);
    }
    return verdicts.size() > before ? verdicts.back() : "";
  }
};

inline nlohmann::json replication(const std::string& socket) {
  try {
    return control(socket, {{"cmd", "status"}})["replication"];
  } catch (const std::exception&) {
    return nullptr;  // not listening yet, or going away
  }
}

// Waits until the tandem behind socket says its guest is protected.
inline bool waitProtected(const std::string& socket, std::chrono::milliseconds timeout) {
  nlohmann::json r;
  for (auto until = Clock::now() + timeout; Clock::now() < until; std::this_thread::sleep_for(10ms)) {
    r = replication(socket);
    if (r.is_object() && r.value("state", "") == "protected") return true;
  }
  BOOST_TEST_MESSAGE("not protected: " << socket << " says " << r.dump());
  return false;
}

// For a failure message: what a process logged (it is killed to read it all).
inline std::string logOf(ChildProcess& child) {
  child.kill(SIGKILL);
  child.wait(5s);
  return child.stderrText();
}

// A standby and a primary running `counter`, protected by it.
template <int kFirstPort>
struct ProtectedPairOn {
  TempDir tmp{"chaos"};
  ChainEndpoints at{kFirstPort};
  TickStream console;
  std::string socket = tmp / "p.sock";
  std::unique_ptr<ChildProcess> standby, primary;

  ProtectedPairOn() {
    standby = startTandem({"standby", "--listen", at[0]});
    primary = startTandemRun({"--append", "job=counter rate=50", "--memory", "64M", "--control", socket, "--protect", at[0]});
    BOOST_REQUIRE(waitProtected(socket, 30s));
    console.readFor(*primary, 300ms);
  }
};


}  // namespace tandem::test
