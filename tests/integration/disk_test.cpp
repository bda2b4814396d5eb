// virtio-blk on a file: records survive a power-off and a snapshot; bad disk options are refused.
#include <signal.h>

#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <thread>

#include "support/snapshot_helpers.hpp"

using namespace tandem::test;

namespace {

std::string makeDisk(const TempDir& tmp, const std::string& name, uint64_t bytes) {
  std::string path = tmp / name;
  std::ofstream(path, std::ios::binary).close();
  std::filesystem::resize_file(path, bytes);
  return path;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(disk)

BOOST_AUTO_TEST_CASE(records_written_before_poweroff_are_all_verified_by_the_next_run) {
  TempDir tmp("disk");
  std::string image = makeDisk(tmp, "vm.img", 4 * 1024 * 1024);
  uint64_t written = 0;
  {
    auto vm = startTandemRun({"--disk", image, "--append", "job=disk rate=0"});
    auto first = vm->waitForLine("disk: verified ", 20s);
    BOOST_REQUIRE(first);
    BOOST_TEST(*first == "disk: verified 0 records");
    BOOST_REQUIRE(vm->waitForLine("disk: wrote record 300", 30s));
    vm->send("poweroff\n");
    std::string last = drainUntilQuiet(*vm, "disk: wrote record ", 500ms, "disk: wrote record 300");
    written = std::stoull(last.substr(last.rfind(' ') + 1));
    BOOST_TEST(vm->wait(10s) == 0);
  }
  auto again = startTandemRun({"--disk", image, "--append", "job=disk rate=10"});
  auto verified = again->waitForLine("disk: verified ", 60s);
  BOOST_REQUIRE(verified);
  BOOST_TEST(*verified == "disk: verified " + std::to_string(written) + " records");
  auto next = again->readLine(10s);
  BOOST_REQUIRE(next);
  BOOST_TEST(*next == "disk: wrote record " + std::to_string(written + 1));
}

BOOST_AUTO_TEST_CASE(a_snapshot_in_the_middle_of_disk_writes_restores_consistently) {
  TempDir tmp("disksnap");
  std::string image = makeDisk(tmp, "vm.img", 4 * 1024 * 1024);
  std::string socket = tmp / "control.sock";
  auto vm = startTandemRun({"--disk", image, "--control", socket, "--append", "job=disk rate=200"});
  BOOST_REQUIRE(vm->waitForLine("disk: wrote record 50", 30s));
  BOOST_REQUIRE(control(socket, {{"cmd", "pause"}})["ok"]);
  std::string last = drainUntilQuiet(*vm, "disk: wrote record ", 300ms, "disk: wrote record 50");
  uint64_t before = std::stoull(last.substr(last.rfind(' ') + 1));
  auto snap = control(socket, {{"cmd", "snapshot"}, {"to", tmp / "snap"}});
  BOOST_REQUIRE_MESSAGE(snap["ok"], snap.dump());
  vm->kill(SIGKILL);
  vm->wait(10s);

  // The disk holds what the guest wrote up to the snapshot (and nothing it did not ack).
  auto restored = startTandem({"restore", "--from", tmp / "snap", "--disk", image});
  restored->continueConsoleOf(*vm);
  auto next = restored->readLine(10s);
  BOOST_REQUIRE(next);
  BOOST_TEST(*next == "disk: wrote record " + std::to_string(before + 1));
  BOOST_REQUIRE(restored->waitForLine("disk: wrote record " + std::to_string(before + 20), 20s));
  restored->send("verify\n");
  auto verdict = restored->waitForLine("verify", 30s);
  BOOST_REQUIRE(verdict);
  BOOST_TEST(verdict->starts_with("verify ok records="));
}

BOOST_AUTO_TEST_CASE(bad_disk_options_are_refused_with_exit_code_2) {
  TempDir tmp("diskbad");
  auto refused = [&](std::vector<std::string> args, const std::string& words) {
    auto p = startTandem(args);
    int status = p->wait(20s);
    std::string err = p->stderrText();
    BOOST_TEST_CONTEXT(err) {
      BOOST_TEST(status == 2);
      BOOST_TEST(err.find(words) != std::string::npos);
      BOOST_TEST(std::count(err.begin(), err.end(), '\n') == 1);
    }
  };
  refused({"run", "--kernel", kTestGuest, "--disk", tmp / "missing.img"}, "cannot open disk");
  refused({"run", "--kernel", kTestGuest, "--disk", tmp.path.string()}, "cannot open disk");
  refused({"run", "--kernel", kTestGuest, "--disk", (tmp / "x.img") + ",fast"}, "readonly");
  std::string image = makeDisk(tmp, "vm.img", 1024 * 1024);
  auto ro = startTandemRun({"--disk", image + ",readonly", "--append", "job=counter rate=5"});
  BOOST_TEST(ro->waitForLine("tick 1", 20s).has_value());
}

BOOST_AUTO_TEST_SUITE_END()
