// Postcopy recovery: a source and a target on two hosts (network namespaces joined by one link),
// the link pulled in the middle of a postcopy. The guest writes its memory and shows ticks
// throughout; it must end on the target with every page right and every tick once.
#include <boost/test/unit_test.hpp>

#include <thread>

#include "support/linked_hosts.hpp"
#include "support/protected_pair.hpp"
#include "support/snapshot_helpers.hpp"

using namespace tandem::test;

namespace {

// 256 MiB written by the guest (about 5 MiB once compressed): at 512 KiB/s the pages nobody asks
// for take about ten seconds, so the postcopy is under way when the link goes.
constexpr const char* kGuestJob = "job=dirty mib=256 rate=1000 tick=20 fill=zero";  // pages of a few dozen bytes on the wire
constexpr const char* kBandwidth = "512K";
constexpr uint64_t kPages = 256 * 256;

std::string phaseOf(const std::string& socket) {
  try {
    auto migration = control(socket, {{"cmd", "status"}})["migration"];
    return migration.is_object() ? migration.value("phase", "") : "";
  } catch (const std::exception&) {
    return "";  // not listening (yet), or gone
  }
}

std::string stateOf(const std::string& socket) {
  try {
    return control(socket, {{"cmd", "status"}}).value("state", "");
  } catch (const std::exception&) {
    return "";
  }
}

bool waitForPhase(const std::string& socket, const std::string& phase, std::chrono::milliseconds timeout) {
  for (auto until = Clock::now() + timeout; Clock::now() < until; std::this_thread::sleep_for(20ms))
    if (phaseOf(socket) == phase) return true;
  BOOST_TEST_MESSAGE(socket << " is in phase '" << phaseOf(socket) << "', not " << phase);
  return false;
}

// A source running the dirty job on the primary's side and a standby on the other, both with
// control sockets; `migrate` starts a postcopy from one to the other.
struct TwoHosts {
  LinkedHosts hosts;
  TempDir tmp{"pcrecovery"};
  std::string at = std::string("tcp://") + LinkedHosts::kStandbyIp + ":21000";
  std::string sourceSocket = tmp / "source.sock", targetSocket = tmp / "target.sock";
  std::unique_ptr<ChildProcess> target, source;
  TickStream console;

  explicit TwoHosts(std::vector<std::string> standbyExtra = {}) {
    std::vector<std::string> standby{kTandemBinary, "standby", "--listen", at, "--control", targetSocket};
    standby.insert(standby.end(), standbyExtra.begin(), standbyExtra.end());
    target = std::make_unique<ChildProcess>(hosts.onStandby(standby));
    source = std::make_unique<ChildProcess>(hosts.onPrimary({kTandemBinary, "run", "--kernel", kTestGuest, "--memory", "512M",
                                                            "--append", kGuestJob, "--control", sourceSocket, "--metrics",
                                                            "127.0.0.1:9464"}));
    BOOST_REQUIRE(source->waitForLine("dirty: working set filled", 90s));
    console.readFor(*source, 300ms);
  }

  std::unique_ptr<ChildProcess> migrate(std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"migrate", "--control", sourceSocket, "--to", at, "--mode", "postcopy", "--max-bandwidth", kBandwidth, "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto migration = startTandem(args);
    BOOST_REQUIRE(waitForPhase(sourceSocket, "postcopy", 30s));
    std::this_thread::sleep_for(500ms);  // the guest runs on the target, faulting on pages still here
    return migration;
  }

  // What the source's metrics say its migration phase is (scraped with curl on its host).
  std::string sourcePhaseMetric() {
    ChildProcess curl(hosts.onPrimary({"/usr/bin/curl", "-s", "http://127.0.0.1:9464/metrics"}));
    std::string phase;
    while (auto line = curl.readLine(5s))
      if (line->starts_with("tandem_migration_phase{") && line->ends_with(" 1")) phase = *line;
    curl.wait(5s);
    return phase;
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(postcopy_recovery)

BOOST_AUTO_TEST_CASE(a_link_cut_for_5_s_pauses_the_postcopy_on_both_sides_and_it_completes_once_healed) {
  TwoHosts two;
  auto migration = two.migrate();
  two.hosts.cut();
  auto cutAt = Clock::now();
  // Both sides say so while the link is down: the source in status and metrics, the target in status.
  BOOST_TEST(waitForPhase(two.sourceSocket, "postcopy-paused", 4500ms));
  BOOST_TEST(waitForPhase(two.targetSocket, "postcopy-paused", 4500ms));
  BOOST_TEST(two.sourcePhaseMetric() == "tandem_migration_phase{phase=\"postcopy-paused\"} 1");
  BOOST_TEST(stateOf(two.sourceSocket) == "paused");  // the guest never runs here again
  std::this_thread::sleep_until(cutAt + 5s);
  two.hosts.heal();

  BOOST_TEST(migration->wait(120s) == 0, migration->stderrText());
  auto result = nlohmann::json::parse(migration->readLine(1s).value_or("{}"));
  BOOST_TEST(result.value("status", "") == "completed", result.dump());
  BOOST_TEST(result["postcopy_stats"].value("pauses", 0) >= 1, result.dump());
  BOOST_TEST(two.source->wait(20s) == 0);
  std::string sourceLog = two.source->stderrText();
  BOOST_TEST(sourceLog.find("postcopy paused") != std::string::npos, sourceLog);
  BOOST_TEST(sourceLog.find("postcopy resumed") != std::string::npos, sourceLog);

  // The guest went on on the target: its ticks follow the source's, none lost or repeated, and
  // every page of its working set holds what it last wrote there.
  two.console.readFor(*two.source, 1s);
  two.target->continueConsoleOf(*two.source);
  BOOST_REQUIRE(two.console.readUntilTick(*two.target, 30s));
  two.console.readFor(*two.target, 500ms);
  BOOST_TEST(two.console.verify(*two.target, 60s) == "verify ok pages=" + std::to_string(kPages));
  BOOST_TEST(two.console.problem == "");
  BOOST_TEST(waitForPhase(two.targetSocket, "completed", 10s));
  std::string targetLog = two.target->stderrText();
  BOOST_TEST(targetLog.find("postcopy paused") != std::string::npos, targetLog);
  BOOST_TEST(targetLog.find("postcopy resumed") != std::string::npos, targetLog);
  control(two.targetSocket, {{"cmd", "quit"}});
  BOOST_TEST(two.target->wait(20s) == 0);
}

BOOST_AUTO_TEST_CASE(tandem_migrate_resume_connects_anew_and_the_postcopy_completes) {
  TwoHosts two;
  auto migration = two.migrate();
  two.hosts.cut();
  BOOST_REQUIRE(waitForPhase(two.sourceSocket, "postcopy-paused", 4500ms));
  // The operator has the source connect anew (the old connection may never come back).
  auto resume = startTandem({"migrate", "--control", two.sourceSocket, "--resume", "--to", two.at});
  BOOST_TEST(resume->wait(10s) == 0, resume->stderrText());
  std::this_thread::sleep_for(1s);
  two.hosts.heal();

  if (migration->wait(120s) != 0)
    BOOST_FAIL("the migration did not complete: " << migration->stderrText() << "\nsource: " << logOf(*two.source)
                                                   << "\ntarget: " << logOf(*two.target));
  BOOST_TEST(two.source->wait(20s) == 0);
  BOOST_TEST(two.source->stderrText().find("connecting to " + two.at + " anew") != std::string::npos);
  two.console.readFor(*two.source, 1s);
  two.target->continueConsoleOf(*two.source);
  BOOST_REQUIRE(two.console.readUntilTick(*two.target, 30s));
  BOOST_TEST(two.console.verify(*two.target, 60s) == "verify ok pages=" + std::to_string(kPages));
  BOOST_TEST(two.console.problem == "");
  control(two.targetSocket, {{"cmd", "quit"}});
  BOOST_TEST(two.target->wait(20s) == 0);
}

BOOST_AUTO_TEST_CASE(a_link_cut_for_longer_than_the_postcopy_wait_leaves_the_guest_paused_at_the_source_for_the_operator) {
  TwoHosts two({"--postcopy-wait", "6"});
  auto migration = two.migrate({"--postcopy-wait", "6"});
  two.hosts.cut();
  // The documented outcome: after 6 s of silence the target stops the guest and exits 1; the
  // source's migration fails and the guest stays paused there, every page kept.
  BOOST_TEST(two.target->wait(20s) == 1);
  std::string targetLog = two.target->stderrText();
  BOOST_TEST(targetLog.find("the source stayed silent for 6 s (--postcopy-wait)") != std::string::npos, targetLog);
  BOOST_TEST(migration->wait(20s) == 1);
  std::string error = migration->stderrText();
  BOOST_TEST(error.find("stayed silent for 6 s") != std::string::npos, error);
  BOOST_TEST(error.find("stays paused here") != std::string::npos, error);
  BOOST_TEST(phaseOf(two.sourceSocket) == "postcopy-failed");

  // The link comes back: the source does not resume the guest by itself.
  two.hosts.heal();
  std::this_thread::sleep_for(2s);
  BOOST_TEST(stateOf(two.sourceSocket) == "paused");
  // Running this older copy again is the operator's decision, asked for explicitly and logged.
  auto refused = startTandem({"resume", "--control", two.sourceSocket});
  BOOST_TEST(refused->wait(10s) == 1);
  BOOST_TEST(refused->stderrText().find("--confirm") != std::string::npos);
  BOOST_TEST(stateOf(two.sourceSocket) == "paused");
  auto resumed = startTandem({"resume", "--control", two.sourceSocket, "--confirm"});
  BOOST_TEST(resumed->wait(10s) == 0);
  BOOST_TEST(two.source->stderrText().find("the operator resumes the guest here after its postcopy failed") != std::string::npos);
  // The source kept every page: the guest's memory there is whole.
  BOOST_TEST(two.console.verify(*two.source, 60s) == "verify ok pages=" + std::to_string(kPages));
  control(two.sourceSocket, {{"cmd", "quit"}});
  BOOST_TEST(two.source->wait(20s) == 0);
}

BOOST_AUTO_TEST_SUITE_END()
