// Snapshots of a running guest, restored in fresh processes: the guest continues exactly.
#include <signal.h>

#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <thread>

#include "support/snapshot_helpers.hpp"

using namespace tandem::test;
namespace data = boost::unit_test::data;

namespace {

std::unique_ptr<ChildProcess> startRestore(const std::string& dir, std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"restore", "--from", dir};
  args.insert(args.end(), extra.begin(), extra.end());
  return startTandem(args);
}

// Expects the next lines of child to be "tick first", "tick first+1", ... count of them.
void expectTicksFrom(ChildProcess& child, uint64_t first, int count) {
  for (int i = 0; i < count; ++i) {
    auto line = child.readLine(10s);
    BOOST_REQUIRE_MESSAGE(line, "no tick " << first + i << " within 10 s");
    BOOST_REQUIRE_EQUAL(*line, "tick " + std::to_string(first + i));
  }
}

std::vector<char> fileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(snapshot)

BOOST_AUTO_TEST_CASE(counter_killed_after_a_snapshot_resumes_with_the_next_tick) {
  TempDir tmp("snap");
  std::string socket = tmp / "control.sock";
  auto original = startTandemRun({"--control", socket, "--append", "job=counter rate=50"});
  auto seen = original->waitForLine("tick 5", 20s);
  BOOST_REQUIRE(seen);
  std::mt19937 random(std::random_device{}());
  std::this_thread::sleep_for(std::chrono::milliseconds(random() % 500));

  // Paused, the guest prints nothing more: whatever is in the pipe now is all it printed
  // (possibly nothing since "tick 5", when the pause came within one tick).
  BOOST_REQUIRE(control(socket, {{"cmd", "pause"}})["ok"]);
  std::string last = drainUntilQuiet(*original, "tick ", 300ms, *seen);
  auto snap = control(socket, {{"cmd", "snapshot"}, {"to", tmp / "snap"}});
  BOOST_REQUIRE_MESSAGE(snap["ok"], snap.dump());
  original->kill(SIGKILL);
  original->wait(10s);

  auto restored = startRestore(tmp / "snap");
  restored->continueConsoleOf(*original);  // paused in the middle of a line, it finishes it here
  expectTicksFrom(*restored, tickNumber(last) + 1, 20);
}

BOOST_AUTO_TEST_CASE(snapshot_of_a_running_guest_at_a_random_moment_continues_consecutively) {
  TempDir tmp("snaprun");
  std::string socket = tmp / "control.sock";
  auto original = startTandemRun({"--control", socket, "--append", "job=counter rate=100"});
  BOOST_REQUIRE(original->waitForLine("tick 1", 20s));
  std::mt19937 random(std::random_device{}());
  std::this_thread::sleep_for(std::chrono::milliseconds(200 + random() % 800));
  BOOST_REQUIRE(control(socket, {{"cmd", "snapshot"}, {"to", tmp / "snap"}})["ok"]);
  original->kill(SIGKILL);
  original->wait(10s);
  drainUntilQuiet(*original, "tick ", 100ms);
  std::set<uint64_t> printedBefore;
  for (const auto& l : original->lines())
    if (l.starts_with("tick ")) printedBefore.insert(tickNumber(l));

  auto restored = startRestore(tmp / "snap");
  auto first = restored->readLine(10s);
  // Taken in the middle of a line, the restored guest first finishes that line: skip the rest.
  if (first && !first->starts_with("tick ")) first = restored->readLine(10s);
  BOOST_REQUIRE(first && first->starts_with("tick "));
  uint64_t n = tickNumber(*first);
  // The tick before the first restored one was printed before the snapshot was taken.
  BOOST_TEST(printedBefore.count(n - 1) == 1u);
  expectTicksFrom(*restored, n + 1, 20);
}

BOOST_AUTO_TEST_CASE(a_command_typed_before_the_snapshot_is_answered_after_the_restore) {
  TempDir tmp("snapecho");
  std::string socket = tmp / "control.sock";
  auto original = startTandemRun({"--control", socket, "--append", "job=counter rate=20"});
  BOOST_REQUIRE(original->waitForLine("tick 2", 20s));
  BOOST_REQUIRE(control(socket, {{"cmd", "pause"}})["ok"]);
  original->send("echo typed while paused\n");
  std::this_thread::sleep_for(300ms);  // the console reader has put it in the UART's receive buffer
  BOOST_REQUIRE(control(socket, {{"cmd", "snapshot"}, {"to", tmp / "snap"}})["ok"]);
  original->kill(SIGKILL);
  original->wait(10s);
  BOOST_TEST(!original->waitForLine("echo typed", 200ms));  // the original never answered it

  auto restored = startRestore(tmp / "snap");
  auto answer = restored->waitForLine("echo ", 10s);
  BOOST_REQUIRE(answer);
  BOOST_TEST(*answer == "echo typed while paused");
}

BOOST_DATA_TEST_CASE(dirty_256_mib_under_load_restores_and_verifies, data::make({1, 2}), cpus) {
  TempDir tmp("snapdirty");
  std::string socket = tmp / "control.sock";
  auto original = startTandemRun({"--control", socket, "--cpus", std::to_string(cpus), "--memory", "512M", "--append",
                                  "job=dirty mib=256 rate=20000"});
  BOOST_REQUIRE(original->waitForLine("dirty: working set filled pages=65536", 60s));
  std::this_thread::sleep_for(1s);
  auto snap = control(socket, {{"cmd", "snapshot"}, {"to", tmp / "snap"}});
  BOOST_REQUIRE_MESSAGE(snap["ok"], snap.dump());
  BOOST_TEST_MESSAGE(cpus << " vCPUs: " << snap.dump());
  BOOST_TEST(snap["pages_written"].get<uint64_t>() >= 65536u);
  original->kill(SIGKILL);
  original->wait(10s);

  auto restored = startRestore(tmp / "snap");
  std::this_thread::sleep_for(500ms);  // still dirtying after the restore
  restored->send("verify\n");
  auto verdict = restored->waitForLine("verify", 60s);
  BOOST_REQUIRE(verdict);
  BOOST_TEST(*verdict == "verify ok pages=65536");
}

BOOST_AUTO_TEST_CASE(fifty_snapshot_restore_cycles_lose_no_tick_and_repeat_none) {
  TempDir tmp("snapchain");
  auto current = startTandemRun({"--control", tmp / "c0.sock", "--memory", "64M", "--append", "job=counter rate=100"});
  BOOST_REQUIRE(current->waitForLine("tick 1", 20s));
  uint64_t expected = 2;
  for (int cycle = 0; cycle < 50; ++cycle) {
    std::string socket = tmp / ("c" + std::to_string(cycle) + ".sock");
    // Ticks keep coming, in order, in this process.
    for (int i = 0; i < 3; ++i) {
      auto line = current->readLine(10s);
      BOOST_REQUIRE_MESSAGE(line, "cycle " << cycle << ": no tick " << expected);
      BOOST_REQUIRE_EQUAL(*line, "tick " + std::to_string(expected));
      ++expected;
    }
    BOOST_REQUIRE(control(socket, {{"cmd", "pause"}})["ok"]);
    std::string last = drainUntilQuiet(*current, "tick ", 150ms, "tick " + std::to_string(expected - 1));
    expected = tickNumber(last) + 1;
    std::string dir = tmp / ("s" + std::to_string(cycle % 2));
    auto snap = control(socket, {{"cmd", "snapshot"}, {"to", dir}});
    BOOST_REQUIRE_MESSAGE(snap["ok"], "cycle " << cycle << ": " << snap.dump());
    current->kill(SIGKILL);
    current->wait(10s);
    auto next = startRestore(dir, {"--control", tmp / ("c" + std::to_string(cycle + 1) + ".sock")});
    next->continueConsoleOf(*current);
    current = std::move(next);
  }
  expectTicksFrom(*current, expected, 10);
}

BOOST_AUTO_TEST_CASE(bad_snapshots_are_refused_with_exit_code_2_and_left_as_they_were) {
  TempDir tmp("snapbad");
  std::string socket = tmp / "control.sock";
  {
    auto original = startTandemRun({"--control", socket, "--memory", "64M", "--append", "job=counter rate=10"});
    BOOST_REQUIRE(original->waitForLine("tick 1", 20s));
    BOOST_REQUIRE(control(socket, {{"cmd", "snapshot"}, {"to", tmp / "good"}})["ok"]);
  }
  std::string good = tmp / "good/snapshot.tandem";
  const auto goodBytes = fileBytes(good);

  auto refused = [&](const std::string& dir, std::vector<std::string> extra, const std::string& words) {
    auto before = fileBytes(dir + "/snapshot.tandem");
    auto restore = startRestore(dir, extra);
    int status = restore->wait(20s);
    std::string err = restore->stderrText();
    BOOST_TEST_CONTEXT(dir << " " << words << ": " << err) {
      BOOST_TEST(status == 2);
      BOOST_TEST(err.find(words) != std::string::npos);
      BOOST_TEST(std::count(err.begin(), err.end(), '\n') == 1);
      BOOST_TEST(restore->lines().empty());  // no VM ran
      BOOST_TEST((fileBytes(dir + "/snapshot.tandem") == before));
    }
  };
  auto variant = [&](const std::string& name, auto change) {
    std::filesystem::create_directories(tmp / name);
    auto bytes = goodBytes;
    change(bytes);
    std::ofstream(tmp / (name + "/snapshot.tandem"), std::ios::binary).write(bytes.data(), static_cast<long>(bytes.size()));
    return tmp / name;
  };

  refused(tmp / "missing", {}, "cannot read snapshot");
  refused(variant("truncated", [](auto& b) { b.resize(b.size() * 2 / 3); }), {}, "truncated");
  refused(variant("corrupted", [](auto& b) { b[b.size() / 2] ^= 0x10; }), {}, "corrupted");
  refused(variant("version", [](auto& b) { b[8] = 9; }), {}, "version");
  refused(tmp / "good", {"--memory", "128M"}, "64 MiB");
  refused(tmp / "good", {"--cpus", "2"}, "1 vCPUs");
  BOOST_TEST((fileBytes(good) == goodBytes));
}

BOOST_AUTO_TEST_CASE(status_pause_resume_and_snapshot_commands_speak_to_a_running_tandem) {
  TempDir tmp("snapcli");
  std::string socket = tmp / "control.sock";
  auto vm = startTandemRun({"--control", socket, "--cpus", "2", "--memory", "96M", "--append", "job=counter rate=20"});
  BOOST_REQUIRE(vm->waitForLine("tick 1", 20s));
  auto cli = [&](std::vector<std::string> args) {
    auto p = startTandem(args);
    int status = p->wait(30s);
    std::string out;
    while (auto line = p->readLine(1s)) out += *line + "\n";
    return std::make_pair(status, out);
  };
  auto [statusCode, status] = cli({"status", "--control", socket, "--json"});
  BOOST_TEST(statusCode == 0);
  auto json = nlohmann::json::parse(status);
  BOOST_TEST(json["state"] == "running");
  BOOST_TEST(json["vcpus"] == 2);
  BOOST_TEST(json["memory_mb"] == 96);
  BOOST_TEST(json["console"] == "stdio");
  BOOST_TEST(json["uptime_s"].get<double>() > 0);
  // The test guest runs its jobs at CPL 3: what tandem saw at the guest's exits.
  BOOST_TEST(json["guest_privilege"]["mode"] == "user");
  BOOST_TEST(json["guest_privilege"]["user_exits"].get<uint64_t>() > 0u);
  // (vCPU 1 has no job: it halts in its CPL 0 idle path, which KVM serves without an exit)
  BOOST_TEST(json["guest_privilege"]["last_cpl"][0] == 3);

  BOOST_TEST(cli({"pause", "--control", socket}).first == 0);
  auto [personCode, person] = cli({"status", "--control", socket});
  BOOST_TEST(personCode == 0);
  BOOST_TEST(person.find("state:    paused") != std::string::npos, person);
  BOOST_TEST(person.find("guest:    user mode (CPL 3, native)") != std::string::npos, person);
  BOOST_TEST(cli({"resume", "--control", socket}).first == 0);

  auto [snapCode, snap] = cli({"snapshot", "--control", socket, "--to", tmp / "snap"});
  BOOST_TEST(snapCode == 0);
  BOOST_TEST(snap.find("wrote " + (tmp / "snap/snapshot.tandem")) != std::string::npos, snap);
  BOOST_TEST(snap.find("guest paused") != std::string::npos, snap);

  auto [badCode, bad] = cli({"status", "--control", tmp / "nobody.sock"});
  BOOST_TEST(badCode == 2);
  BOOST_TEST(cli({"snapshot", "--control", socket}).first == 2);  // no --to
  BOOST_TEST(control(socket, {{"cmd", "quit"}})["ok"]);
  BOOST_TEST(vm->wait(10s) == 0);
  BOOST_TEST(!std::filesystem::exists(socket));  // the socket goes with the process
}

BOOST_AUTO_TEST_SUITE_END()
