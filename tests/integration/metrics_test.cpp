// --metrics on a protected pair: Prometheus text with every metric of metrics/names.hpp, values
// that make sense and move (epochs counting up, a pause histogram filling), and a failover counted.
#include <signal.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "metrics/names.hpp"
#include "support/http_get.hpp"
#include "support/snapshot_helpers.hpp"

using namespace tandem::test;
namespace names = tandem::metrics::names;

namespace {

using Clock = std::chrono::steady_clock;

// 18200-18999: replication on BASE..BASE+2, the primary's metrics on BASE+3, the standby's on BASE+4.
const int kBase = 18200 + 8 * (::getpid() % 100);

// "name{labels}" -> value, from one scrape.
std::map<std::string, double> scrape(int port) {
  std::map<std::string, double> values;
  std::istringstream text(httpGet(static_cast<uint16_t>(port), "/metrics"));
  for (std::string line; std::getline(text, line);) {
    if (line.empty() || line[0] == '#') continue;
    auto space = line.rfind(' ');
    try {
      values[line.substr(0, space)] = std::stod(line.substr(space + 1));
    } catch (const std::exception&) {
      values[line.substr(0, space)] = -1;  // NaN and the like
    }
  }
  return values;
}

double value(const std::map<std::string, double>& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? -1 : it->second;
}

bool has(const std::map<std::string, double>& m, const std::string& name) {
  for (const auto& [key, v] : m)
    if (key == name || key.starts_with(name + "{") || key.starts_with(name + "_")) return true;
  return false;
}

// Both tests: a standby at `at` with its metrics on kBase + 4, and a tandem run with `args`, its
// control socket and its metrics on kBase + 3.
std::unique_ptr<ChildProcess> standbyWithMetrics(const std::string& at) {
  return startTandem({"standby", "--listen", at, "--metrics", "127.0.0.1:" + std::to_string(kBase + 4)});
}
std::unique_ptr<ChildProcess> runWithMetrics(std::vector<std::string> args, const std::string& socket) {
  args.insert(args.end(), {"--control", socket, "--metrics", "127.0.0.1:" + std::to_string(kBase + 3)});
  return startTandemRun(args);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(metrics)

BOOST_AUTO_TEST_CASE(a_protected_pair_shows_every_metric_with_values_that_move) {
  TempDir tmp("metrics");
  std::string at = "tcp://127.0.0.1:" + std::to_string(kBase);
  std::string socket = tmp / "p.sock";
  auto standby = standbyWithMetrics(at);
  auto primary = runWithMetrics({"--memory", "64M", "--append", "job=counter rate=50", "--protect", at}, socket);
  std::map<std::string, double> p;
  for (auto until = Clock::now() + 30s; Clock::now() < until; std::this_thread::sleep_for(50ms)) {
    p = scrape(kBase + 3);
    if (value(p, names::kProtected) == 1 && value(p, std::string(names::kEpochs)) > 20) break;
  }
  BOOST_REQUIRE_MESSAGE(value(p, names::kProtected) == 1, "the primary's metrics never said protected");
  auto s = scrape(kBase + 4);

  BOOST_TEST(value(p, std::string(names::kRole) + "{role=\"primary\"}") == 1);
  BOOST_TEST(value(s, std::string(names::kRole) + "{role=\"standby\"}") == 1);
  BOOST_TEST(value(s, names::kProtected) == 1);
  BOOST_TEST(value(p, names::kGeneration) == 1);
  std::string pause = names::kEpochPause;
  BOOST_TEST(value(p, pause + "_count") > 20);
  BOOST_TEST(value(p, pause + "_sum") > 0);
  BOOST_TEST(value(p, pause + "_sum") < value(p, pause + "_count") * 0.05);  // under 50 ms an epoch on average
  BOOST_TEST(value(p, pause + "_bucket{le=\"+Inf\"}") == value(p, pause + "_count"));
  BOOST_TEST(value(p, std::string(names::kAckLatency) + "_count") > 0);
  BOOST_TEST(value(p, std::string(names::kEpochSize) + "_sum") > 0);
  BOOST_TEST(value(p, std::string(names::kPagesSent) + "{encoding=\"zero\"}") > 0);  // the initial sync's
  BOOST_TEST(value(p, names::kHeartbeatAge) >= 0);
  BOOST_TEST(value(p, names::kHeartbeatAge) < 0.2);
  BOOST_TEST(value(p, names::kReleasedOutput) > 0);  // ticks shown
  BOOST_TEST(value(s, names::kCommittedEpoch) > 20);
  BOOST_TEST(value(s, std::string(names::kPagesReceived) + "{encoding=\"zero\"}") > 0);
  BOOST_TEST(value(s, names::kReceivedBytes) > 0);
  BOOST_TEST(value(s, std::string(names::kRefusedMessages) + "{reason=\"malformed\"}") == 0);

  // Every name of metrics/names.hpp shows up on one side or the other (failovers after the kill).
  for (const char* name : {names::kRole, names::kProtected, names::kGeneration, names::kEpochs, names::kLastAckedEpoch,
                           names::kEpochPause, names::kEpochSize, names::kEpochDirtyPages, names::kAckLatency,
                           names::kPagesSent, names::kSentBytes, names::kHeldOutput, names::kHeldOutputAge,
                           names::kReleasedOutput, names::kHeartbeatAge, names::kSessions, names::kPausedForOutput,
                           names::kCommittedEpoch, names::kPagesReceived, names::kReceivedBytes, names::kDiscardedEpochs, names::kIgnoredReplays, names::kDiskSyncs, names::kRefusedMessages,
                           names::kFailoverAfter, names::kReplicationState, names::kRefusedSessions, names::kFailovers,
                           names::kOperatorUnprotects})
    BOOST_TEST((has(p, name) || has(s, name)), name << " is not exported");
  // Counters are there from the start, at 0, so that increase() sees the first one (on main before
  // this change the failover counter appeared only after a failover, at 1).
  BOOST_TEST(has(s, names::kFailovers));
  BOOST_TEST(value(s, names::kFailovers) == 0);
  BOOST_TEST(value(p, names::kOperatorUnprotects) == 0);
  BOOST_TEST(value(p, std::string(names::kReplicationState) + "{state=\"protected\"}") == 1);
  BOOST_TEST(value(p, std::string(names::kReplicationState) + "{state=\"unprotected\"}") == 0);

  // They move: a second later more epochs, more pauses observed.
  std::this_thread::sleep_for(1s);
  auto later = scrape(kBase + 3);
  BOOST_TEST(value(later, names::kEpochs) > value(p, names::kEpochs) + 10);
  BOOST_TEST(value(later, pause + "_count") > value(p, pause + "_count"));

  // The primary dies: the standby takes over and counts it.
  primary->kill(SIGKILL);
  std::map<std::string, double> after;
  for (auto until = Clock::now() + 10s; Clock::now() < until; std::this_thread::sleep_for(50ms)) {
    after = scrape(kBase + 4);
    if (value(after, names::kFailovers) == 1) break;
  }
  BOOST_TEST(value(after, names::kFailovers) == 1);
}

BOOST_AUTO_TEST_CASE(a_migration_shows_its_phase_and_progress_and_postcopy_its_fault_times) {
  // A guest dirtying memory, migrated with hybrid (precopy rounds, then postcopy) under a bandwidth
  // cap, so that the source's phases last long enough to be seen at 20 ms a scrape.
  TempDir tmp("metricsmig");
  std::string at = "tcp://127.0.0.1:" + std::to_string(kBase);
  std::string socket = tmp / "src.sock";
  auto target = standbyWithMetrics(at);
  auto source = runWithMetrics({"--memory", "256M", "--append", "job=dirty mib=64 rate=2000"}, socket);
  BOOST_REQUIRE(source->waitForLine("dirty: working set filled", 60s));
  auto before = scrape(kBase + 3);
  BOOST_TEST(value(before, std::string(names::kMigrationPhase) + "{phase=\"none\"}") == 1);

  auto migration = startTandem({"migrate", "--control", socket, "--to", at, "--mode", "hybrid", "--max-bandwidth", "32M",
                                "--max-rounds", "2"});
  std::set<std::string> phases;
  double progress = -1;
  for (auto until = Clock::now() + 60s; Clock::now() < until && migration->wait(0ms) == ChildProcess::kTimedOut;) {
    for (const auto& [key, v] : scrape(kBase + 3))
      if (key.starts_with(std::string(names::kMigrationPhase) + "{") && v == 1) phases.insert(key);
      else if (key == names::kMigrationProgress) progress = std::max(progress, v);
    std::this_thread::sleep_for(20ms);
  }
  BOOST_TEST(migration->wait(60s) == 0);
  BOOST_TEST(phases.count(std::string(names::kMigrationPhase) + "{phase=\"precopy\"}") == 1u, "phases seen: " << phases.size());
  BOOST_TEST(progress > 0);
  BOOST_TEST(progress <= 1);

  // The target runs the guest; its postcopy fault times are there once the owed pages arrived.
  std::map<std::string, double> t;
  for (auto until = Clock::now() + 30s; Clock::now() < until; std::this_thread::sleep_for(50ms)) {
    t = scrape(kBase + 4);
    if (value(t, names::kPostcopyOwedPages) == 0) break;
  }
  BOOST_TEST(value(t, names::kPostcopyOwedPages) == 0);
  BOOST_TEST(value(t, std::string(names::kPostcopyFault) + "_count") >= 0);
  BOOST_TEST(value(t, std::string(names::kPostcopyFault) + "_bucket{le=\"+Inf\"}") == value(t, std::string(names::kPostcopyFault) + "_count"));
  BOOST_TEST(has(t, names::kPostcopyZeroFaults));
  BOOST_TEST(value(t, names::kFailovers) == 0);
}

BOOST_AUTO_TEST_SUITE_END()
