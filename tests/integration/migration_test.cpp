// Live migration (precopy, postcopy, hybrid) between two tandem processes on 127.0.0.1.
#include <signal.h>

#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <thread>
#include <vector>

#include "support/snapshot_helpers.hpp"
#include "transport/channel.hpp"

using namespace tandem::test;
namespace data = boost::unit_test::data;

namespace {

// A standby uses PORT to PORT + 2: ports 4 apart, so that two endpoints never overlap (20000-28000;
// other suites use other ranges).
std::string freeEndpoint() {
  static int next = 0;
  return "tcp://127.0.0.1:" + std::to_string(20000 + 4 * ((::getpid() * 7 + next++ * 13) % 2000));
}

const auto kModes = data::make({"precopy", "postcopy", "hybrid"});

std::unique_ptr<ChildProcess> startStandby(const std::string& endpoint, std::vector<std::string> extra = {}) {
  extra.insert(extra.begin(), {"standby", "--listen", endpoint});
  return startTandem(extra);
}

// tandem migrate, run to its end; returns exit code and stdout.
std::pair<int, std::string> migrate(const std::string& socket, const std::string& to, std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"migrate", "--control", socket, "--to", to, "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  auto p = startTandem(args);
  int status = p->wait(120s);
  std::string out;
  while (auto line = p->readLine(1s)) out += *line;
  if (status != 0) out += p->stderrText();
  return {status, out};
}

// The process's resident memory (VmRSS), in MiB.
uint64_t residentMiB(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  uint64_t kib = 0;
  while (status >> key)
    if (key == "VmRSS:" && status >> kib) return kib / 1024;
  return 0;
}

// Asks the guest to check its working set: "verify ok pages=N" is the only good answer.
void expectVerified(ChildProcess& guest, uint64_t pages) {
  guest.send("verify\n");
  auto verdict = guest.waitForLine("verify", 60s);
  BOOST_REQUIRE(verdict);
  BOOST_TEST(*verdict == "verify ok pages=" + std::to_string(pages));
}

// The last "disk: wrote record K" a source showed, all of its output read (it has stopped).
uint64_t lastRecordShown(ChildProcess& source) {
  while (source.readLine(2s)) {
  }
  uint64_t last = 0;
  for (const auto& line : source.lines())
    if (line.starts_with("disk: wrote record ")) last = std::stoull(line.substr(19));
  return last;
}

// Info-level logs for the tandems started while it lives.
struct InfoLogs {
  InfoLogs() { ::setenv("TANDEM_LOG", "info", 1); }
  ~InfoLogs() { ::unsetenv("TANDEM_LOG"); }
};

// Seconds since the epoch of tandem's "2026-11-23T13:28:48.123456Z".
double utcSeconds(const std::string& text) {
  std::tm t{};
  long micros = 0;
  BOOST_REQUIRE_MESSAGE(std::sscanf(text.c_str(), "%d-%d-%dT%d:%d:%d.%ldZ", &t.tm_year, &t.tm_mon, &t.tm_mday, &t.tm_hour,
                                    &t.tm_min, &t.tm_sec, &micros) == 7,
                        "not a tandem timestamp: " << text);
  t.tm_year -= 1900;
  t.tm_mon -= 1;
  return static_cast<double>(::timegm(&t)) + static_cast<double>(micros) / 1e6;
}

// What follows `marker` on its line in the child's stderr, once it has appeared (or "").
std::string stderrAfter(ChildProcess& child, const std::string& marker, std::chrono::seconds timeout) {
  std::string text;
  for (auto until = std::chrono::steady_clock::now() + timeout; std::chrono::steady_clock::now() < until;
       std::this_thread::sleep_for(20ms)) {
    text += child.stderrText();
    if (auto at = text.find(marker); at != std::string::npos && text.find('\n', at) != std::string::npos) {
      at += marker.size();
      return text.substr(at, text.find('\n', at) - at);
    }
  }
  return "";
}

// A standby (given standby's options), and a source running with run's options until it printed `ready`.
struct Pair {
  TempDir tmp;
  std::string endpoint = freeEndpoint();
  std::string socket = tmp / "src.sock";
  std::unique_ptr<ChildProcess> target;
  std::unique_ptr<ChildProcess> source;

  Pair(const std::string& name, std::vector<std::string> run, const std::string& ready,
       std::vector<std::string> standby = {})
      : tmp(name), target(startStandby(endpoint, std::move(standby))) {
    run.insert(run.begin(), {"--control", socket});
    source = startTandemRun(run);
    BOOST_REQUIRE(source->waitForLine(ready, 60s));
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(migration)

BOOST_DATA_TEST_CASE(counter_moves_with_every_tick_once_and_in_order, kModes, mode) {
  InfoLogs infoLogs;
  Pair pair("mig", {"--append", "job=counter rate=50"}, "tick 10");
  auto& [tmp, endpoint, socket, target, source] = pair;
  auto [status, out] = migrate(socket, endpoint, {"--mode", mode});
  BOOST_REQUIRE_MESSAGE(status == 0, out);
  BOOST_TEST_MESSAGE(mode << ": " << out);
  nlohmann::json stats = nlohmann::json::parse(out);
  BOOST_TEST(stats["status"] == "completed");
  BOOST_TEST(stats["mode"] == std::string(mode));
  BOOST_TEST(stats["postcopy"] == (std::string(mode) != "precopy"));
  BOOST_TEST(stats["downtime_ms"].template get<double>() < 300);
  // Both ends mark, by this host's clock, when the vCPUs stopped here and started there (what the
  // benchmark compares with QEMU's trace): in that order, and within the downtime the source saw.
  std::string since = stderrAfter(*target, "vCPUs run here since ", 10s);
  BOOST_REQUIRE_MESSAGE(!since.empty(), "the standby did not log when the guest's vCPUs started");
  double stopToRunMs = (utcSeconds(since) - utcSeconds(stats["paused_at"].template get<std::string>())) * 1000;
  BOOST_TEST_MESSAGE(mode << ": vCPUs stopped here to running there " << stopToRunMs << " ms");
  BOOST_TEST(stopToRunMs > 0);
  BOOST_TEST(stopToRunMs < stats["downtime_ms"].template get<double>());
  BOOST_TEST(source->wait(10s) == 0);  // the source ends once the target runs the guest
  std::string last = drainUntilQuiet(*source, "tick ", 200ms, "tick 10");
  target->continueConsoleOf(*source);  // paused in the middle of a line, it finishes it there
  for (uint64_t n = tickNumber(last) + 1, i = 0; i < 20; ++i, ++n) {
    auto line = target->readLine(10s);
    BOOST_REQUIRE_MESSAGE(line, "no tick " << n << " on the target");
    BOOST_REQUIRE_EQUAL(*line, "tick " + std::to_string(n));
  }
}

BOOST_DATA_TEST_CASE(dirty_256_mib_at_20000_pages_per_second_arrives_intact, kModes * data::make({1, 2}), mode, cpus) {
  Pair pair("migdirty", {"--cpus", std::to_string(cpus), "--memory", "512M", "--append",
                                "job=dirty mib=256 rate=20000"}, "dirty: working set filled");
  auto& [tmp, endpoint, socket, target, source] = pair;
  std::this_thread::sleep_for(500ms);
  auto [status, out] = migrate(socket, endpoint, {"--mode", mode});
  BOOST_REQUIRE_MESSAGE(status == 0, out);
  BOOST_TEST_MESSAGE(mode << ", " << cpus << " vCPUs: " << out);
  if (std::string(mode) != "precopy") BOOST_TEST(nlohmann::json::parse(out)["postcopy"] == true);
  // Postcopy owes every page at the switch; hybrid only what the last round left (which a guest
  // starved of CPU on a busy machine may leave at zero).
  if (std::string(mode) == "postcopy")
    BOOST_TEST(nlohmann::json::parse(out)["postcopy_stats"]["pages"].template get<uint64_t>() > 0u);
  BOOST_TEST(source->wait(10s) == 0);
  std::this_thread::sleep_for(300ms);  // still dirtying on the target
  expectVerified(*target, 65536);
}

// Memory prepared before the source came holds zeros in pages the host backed: precopy writes over
// them, postcopy must drop the owed ones first (else the guest reads zeros where its data was).
BOOST_DATA_TEST_CASE(a_preallocated_standby_receives_the_guest_intact, kModes, mode) {
  Pair pair("migprealloc", {"--memory", "256M", "--append", "job=dirty mib=64 rate=20000"}, "dirty: working set filled",
            {"--prealloc", "256M"});
  auto& [tmp, endpoint, socket, target, source] = pair;
  auto [status, out] = migrate(socket, endpoint, {"--mode", mode});
  BOOST_REQUIRE_MESSAGE(status == 0, out);
  BOOST_TEST(source->wait(10s) == 0);
  expectVerified(*target, 16384);
  std::string log = target->stderrText();
  BOOST_TEST(log.find("prepared (--prealloc)") == std::string::npos, log);  // no "another size" warning
  // Received into the prepared 256 MiB, not beside them (new memory would add the 64 MiB written).
  BOOST_TEST(residentMiB(target->pid()) < 256u + 48u);
}

// systemctl stop: a standby that runs no guest yet ends at SIGTERM, at once and cleanly.
BOOST_AUTO_TEST_CASE(a_waiting_standby_stops_at_sigterm) {
  TempDir tmp("migstop");
  std::string socket = tmp / "standby.sock";
  auto standby = startStandby(freeEndpoint(), {"--control", socket});
  for (int i = 0; i < 100 && !std::filesystem::exists(socket); ++i) std::this_thread::sleep_for(50ms);
  BOOST_REQUIRE(std::filesystem::exists(socket));
  auto sent = std::chrono::steady_clock::now();
  standby->kill(SIGTERM);
  BOOST_TEST(standby->wait(5s) == 0);
  BOOST_TEST((std::chrono::steady_clock::now() - sent < 2s));
}

BOOST_AUTO_TEST_CASE(a_guest_of_another_size_than_the_standby_prepared_arrives_in_new_memory) {
  Pair pair("migprealloc2", {"--memory", "128M", "--append", "job=dirty mib=32 rate=20000"}, "dirty: working set filled",
            {"--prealloc", "64M"});
  auto& [tmp, endpoint, socket, target, source] = pair;
  auto [status, out] = migrate(socket, endpoint);
  BOOST_REQUIRE_MESSAGE(status == 0, out);
  BOOST_TEST(source->wait(10s) == 0);
  expectVerified(*target, 8192);
  std::string log = target->stderrText();
  BOOST_TEST(log.find("not the 64 MiB prepared (--prealloc)") != std::string::npos, log);
}

BOOST_AUTO_TEST_CASE(pages_sent_again_go_as_xbzrle_differences_and_arrive_intact) {
  // fill=zero: each new generation of a page differs from the last in its two stamp words only.
  Pair pair("migxbzrle", {"--memory", "128M", "--append", "job=dirty mib=32 rate=20000 fill=zero"}, "dirty: working set filled");
  auto& [tmp, endpoint, socket, target, source] = pair;
  // At 1 MiB/s a round takes long enough for most of the working set to be dirty again, and a
  // budget no round meets: five rounds, each resending pages the cache holds.
  auto [status, out] = migrate(socket, endpoint, {"--max-downtime-ms", "1", "--max-rounds", "5", "--xbzrle-cache", "64M",
                                                  "--max-bandwidth", "1M"});
  BOOST_REQUIRE_MESSAGE(status == 0, out);
  BOOST_TEST_MESSAGE(out);
  auto stats = nlohmann::json::parse(out);
  BOOST_TEST(stats["rounds"].get<int>() == 6);  // five, and the final one
  BOOST_TEST(stats["pages"]["xbzrle"].get<uint64_t>() > 1000u);
  BOOST_TEST(source->wait(10s) == 0);
  expectVerified(*target, 8192);
}

BOOST_AUTO_TEST_CASE(the_source_killed_during_postcopy_stops_the_guest_on_the_target_after_its_wait_with_a_reason) {
  Pair pair("migpostkill", {"--memory", "512M", "--append", "job=dirty mib=256 rate=1000"}, "dirty: working set filled",
            {"--postcopy-wait", "4"});
  auto& [tmp, endpoint, socket, target, source] = pair;
  // Its pages compress to about 5 MiB: at 1 MiB/s that takes far longer than the second the source has left.
  auto migration = startTandem({"migrate", "--control", socket, "--to", endpoint, "--mode", "postcopy",
                                "--max-bandwidth", "1M", "--json"});
  std::this_thread::sleep_for(1s);
  source->kill(SIGKILL);
  source->wait(10s);
  BOOST_TEST(target->wait(20s) == 1);
  std::string err = target->stderrText();
  BOOST_TEST(err.find("postcopy paused: the source has been silent for 3 s") != std::string::npos, err);
  BOOST_TEST(err.find("postcopy failed: the source stayed silent for 4 s (--postcopy-wait)") != std::string::npos, err);
  BOOST_TEST(err.find("the guest is stopped") != std::string::npos, err);
  BOOST_TEST(migration->wait(20s) != 0);
}

BOOST_AUTO_TEST_CASE(a_dirty_rate_that_cannot_converge_aborts_and_the_guest_runs_on_at_the_source) {
  Pair pair("migabort", {"--memory", "128M", "--append", "job=dirty mib=32 rate=20000 fill=zero"}, "dirty: working set filled");
  auto& [tmp, endpoint, socket, target, source] = pair;
  // The whole working set (8192 pages, about 30 bytes each with fill=zero) is dirty again within
  // half a second; at 256 KiB/s a round of it takes a second: no round can catch up.
  auto [status, out] = migrate(socket, endpoint, {"--max-bandwidth", "256K", "--max-rounds", "3", "--max-downtime-ms",
                                                  "50", "--on-no-converge", "abort"});
  BOOST_TEST(status == 1);
  BOOST_TEST(out.find("did not converge") != std::string::npos, out);
  BOOST_TEST(out.find("the guest runs on here") != std::string::npos, out);
  expectVerified(*source, 8192);

  // The source said Bye: the standby dropped what it had and takes the next attempt.
  auto [again, out2] = migrate(socket, endpoint);
  BOOST_REQUIRE_MESSAGE(again == 0, out2);
  BOOST_TEST(source->wait(10s) == 0);
  expectVerified(*target, 8192);
}

BOOST_AUTO_TEST_CASE(status_shows_a_running_migration_and_other_commands_wait) {
  Pair pair("migstatus", {"--memory", "128M", "--append", "job=dirty mib=32 rate=1 fill=zero"}, "dirty: working set filled");
  auto& [tmp, endpoint, socket, target, source] = pair;
  // 8192 pages, a few dozen bytes each on the wire (fill=zero), at 64 KiB/s: seconds in round 0.
  auto migration = startTandem({"migrate", "--control", socket, "--to", endpoint, "--max-bandwidth", "64K", "--json"});
  std::this_thread::sleep_for(1s);
  auto status = control(socket, {{"cmd", "status"}});
  BOOST_REQUIRE_MESSAGE(status["migration"].is_object(), status.dump());
  auto progress = status["migration"];
  BOOST_TEST(progress["phase"] == "precopy");
  BOOST_TEST(progress["round"] == 0);
  BOOST_TEST(progress["percent_sent"].get<double>() > 0);
  BOOST_TEST(progress["percent_sent"].get<double>() < 100);
  auto pause = control(socket, {{"cmd", "pause"}});
  BOOST_TEST(pause["ok"] == false);
  BOOST_TEST(pause["error"].get<std::string>().find("migration is under way") != std::string::npos);
  BOOST_TEST(migration->wait(60s) == 0);
  BOOST_TEST(source->wait(10s) == 0);
  expectVerified(*target, 8192);
}

BOOST_AUTO_TEST_CASE(auto_converge_throttles_a_guest_that_dirties_faster_than_the_link_until_it_converges) {
  Pair pair("migthrottle", {"--memory", "64M", "--append", "job=dirty mib=8 rate=0 fill=zero"}, "dirty: working set filled");
  auto& [tmp, endpoint, socket, target, source] = pair;
  // As fast as it can, the guest rewrites its 2048 pages many times during any round at 512 KiB/s:
  // without throttling no round gets smaller (the abort test shows where that ends).
  auto [status, out] = migrate(socket, endpoint, {"--max-bandwidth", "512K", "--max-downtime-ms", "50", "--max-rounds",
                                                  "15", "--on-no-converge", "abort", "--auto-converge"});
  BOOST_REQUIRE_MESSAGE(status == 0, out);
  BOOST_TEST_MESSAGE(out);
  auto stats = nlohmann::json::parse(out);
  BOOST_TEST(stats["throttle_percent"].get<unsigned>() >= 20u);
  BOOST_TEST(stats["downtime_ms"].get<double>() < 300);  // 50 ms of pages, plus the target's start
  BOOST_TEST(source->wait(10s) == 0);
  expectVerified(*target, 2048);  // and it runs at full speed there
}

BOOST_AUTO_TEST_CASE(a_target_speaking_another_protocol_version_is_refused_and_the_guest_stays) {
  TempDir tmp("migver");
  std::string endpoint = freeEndpoint(), socket = tmp / "src.sock";
  auto fake = tandem::Channel::listen(endpoint);
  auto source = startTandemRun({"--control", socket, "--append", "job=counter rate=20"});
  BOOST_REQUIRE(source->waitForLine("tick 2", 20s));
  std::thread peer([&] {
    auto hello = fake->receive(30s);
    BOOST_REQUIRE(hello.kind == tandem::Received::Kind::Message);
    fake->setSession(hello.message->envelope().getSession());
    capnp::MallocMessageBuilder message;
    auto envelope = fake->start(message);
    envelope.setVersion(99);  // a tandem from the future
    envelope.setWelcome();
    fake->send(message);
  });
  auto [status, out] = migrate(socket, endpoint);
  peer.join();
  BOOST_TEST(status == 1);
  BOOST_TEST(out.find("protocol version 99") != std::string::npos, out);
  BOOST_TEST(out.find("the guest runs on here") != std::string::npos, out);
  source->send("echo still here\n");  // the guest still runs and answers at the source
  BOOST_TEST(source->waitForLine("echo still here", 10s).has_value());
}

BOOST_AUTO_TEST_CASE(the_target_killed_during_precopy_leaves_the_source_running) {
  Pair pair("migkill", {"--cpus", "2", "--memory", "512M", "--append",
                                "job=dirty mib=256 rate=0 fill=zero"}, "dirty: working set filled");
  auto& [tmp, endpoint, socket, target, source] = pair;
  std::thread killer([&] {
    std::this_thread::sleep_for(300ms);
    target->kill(SIGKILL);
  });
  // A link capped far below what round 0 needs (about 5 MiB here) keeps it sending until the target is gone.
  auto [status, out] = migrate(socket, endpoint, {"--max-bandwidth", "1M", "--max-downtime-ms", "1", "--max-rounds", "1000"});
  killer.join();
  BOOST_TEST(status == 1);
  BOOST_TEST(out.find("the guest runs on here") != std::string::npos, out);
  expectVerified(*source, 65536);
}

// On main before this change the migration "completed" and the guest went on writing onto the
// target's disk, which had none of its records: nothing noticed (issue 15).
BOOST_DATA_TEST_CASE(a_guest_writing_its_disk_takes_the_disk_along, kModes, mode) {
  TempDir tmp("migdisk");
  std::string endpoint = freeEndpoint(), socket = tmp / "src.sock";
  auto image = [&](const std::string& name) {
    std::string path = tmp / name;
    std::ofstream(path).close();
    std::filesystem::resize_file(path, 8 << 20);
    return path;
  };
  std::string targetImage = image("target.img"), sourceImage = image("source.img"), targetSocket = tmp / "dst.sock";
  // Every kind of chunk: the records (lz4 shrinks them), holes (zeros), and from 1 MiB on runs of
  // random bytes (raw, sent in runs) broken by a hole and by a chunk of one repeated byte.
  {
    std::fstream file(sourceImage, std::ios::in | std::ios::out | std::ios::binary);
    std::mt19937_64 random(15);
    std::vector<char> chunk(64 << 10);
    for (int c = 16; c < 16 + 40; ++c) {
      if (c == 30) continue;  // a hole
      for (auto& b : chunk) b = static_cast<char>(random());
      if (c == 41) std::fill(chunk.begin(), chunk.end(), 'x');
      file.seekp(static_cast<std::streamoff>(c) << 16);
      file.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    }
  }
  auto target = startStandby(endpoint, {"--disk", targetImage, "--control", targetSocket});
  auto source = startTandemRun({"--control", socket, "--disk", sourceImage, "--append", "job=disk rate=50"});
  BOOST_REQUIRE(source->waitForLine("disk: wrote record 20", 20s));
  auto [status, out] = migrate(socket, endpoint, {"--mode", mode, "--storage", "copy"});
  BOOST_REQUIRE_MESSAGE(status == 0, out);
  nlohmann::json result = nlohmann::json::parse(out), chunks = result["disk_chunks"];
  uint64_t sent = chunks.value("sent", uint64_t{0}), skipped = chunks.value("skipped", uint64_t{0});
  BOOST_TEST(sent >= 1u, out);
  BOOST_TEST(sent + skipped >= 128u, out);  // every chunk of the 8 MiB disk, sent or found equal
  BOOST_TEST(chunks.value("wire_bytes", uint64_t{0}) > 0u, out);  // counted apart from memory
  BOOST_TEST(result.value("memory_bytes", uint64_t{0}) + chunks.value("wire_bytes", uint64_t{0}) == result.value("bytes", uint64_t{0}), out);
  uint64_t last = lastRecordShown(*source);
  // The guest goes on where it was, on the target's disk, and every record on it checks. (The
  // source may have stopped in the middle of a line: the target's output finishes it.)
  target->continueConsoleOf(*source);
  auto next = target->waitForLine("disk: wrote record " + std::to_string(last + 1), 20s);
  BOOST_TEST(next.has_value(), "the target did not go on after record " << last);

  // The source's disk file is the disk at the switch point. The target's is that too, but for the
  // records the guest wrote there since: paused, it is byte for byte the source's everywhere else.
  // (Record k sits in sector k - 1; each file's records are counted from the file itself.)
  control(targetSocket, {{"cmd", "pause"}});
  auto bytesOf = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::vector<char>(std::istreambuf_iterator<char>(in), {});
  };
  auto recordsIn = [](const std::vector<char>& disk) {
    uint64_t k = 0;
    for (uint64_t magic = 0, seq = 0; (k + 1) * 512 <= disk.size(); ++k) {
      std::memcpy(&magic, disk.data() + k * 512, 8);
      std::memcpy(&seq, disk.data() + k * 512 + 8, 8);
      if (magic != 0x314345524d444e54ull || seq != k + 1) break;  // "TNDMREC1", as ops/guest/jobs/disk.c writes
    }
    return k;
  };
  auto atSource = bytesOf(sourceImage), atTarget = bytesOf(targetImage);
  BOOST_REQUIRE(atSource.size() == atTarget.size());
  uint64_t onSource = recordsIn(atSource), onTarget = recordsIn(atTarget);
  BOOST_TEST(onSource >= last);
  BOOST_TEST(onTarget > onSource);
  uint64_t differing = 0, firstDiffering = 0;
  for (uint64_t sector = 0; sector < atSource.size() / 512; ++sector) {
    bool writtenThere = sector >= onSource && sector < onTarget;
    if (writtenThere || std::equal(atSource.begin() + sector * 512, atSource.begin() + (sector + 1) * 512, atTarget.begin() + sector * 512))
      continue;
    if (differing++ == 0) firstDiffering = sector;
  }
  BOOST_TEST(differing == 0u, differing << " sectors differ between the disk files, the first at sector " << firstDiffering
                                        << " (records 1 to " << onSource << " on the source, to " << onTarget << " on the target)");
  control(targetSocket, {{"cmd", "resume"}});
  target->send("verify\n");
  auto verdict = target->waitForLine("verify", 30s);
  BOOST_REQUIRE(verdict);
  BOOST_TEST(verdict->starts_with("verify ok records="), *verdict);
  if (verdict->starts_with("verify ok records=")) BOOST_TEST(std::stoull(verdict->substr(18)) > last);
}

BOOST_AUTO_TEST_CASE(a_standby_whose_disk_has_another_size_refuses_the_source_at_once) {
  TempDir tmp("migdisksize");
  std::string endpoint = freeEndpoint(), socket = tmp / "src.sock";
  std::string small = tmp / "small.img", big = tmp / "big.img";
  std::ofstream(small).close();
  std::filesystem::resize_file(small, 4 << 20);
  std::ofstream(big).close();
  std::filesystem::resize_file(big, 8 << 20);
  auto target = startStandby(endpoint, {"--disk", small});
  auto source = startTandemRun({"--control", socket, "--disk", big, "--append", "job=counter rate=20"});
  BOOST_REQUIRE(source->waitForLine("tick 1", 20s));
  auto [status, out] = migrate(socket, endpoint, {"--storage", "copy"});
  BOOST_TEST(status == 1);
  BOOST_TEST(out.find("truncate -s 8388608") != std::string::npos, out);
  source->send("echo still here\n");
  BOOST_TEST(source->waitForLine("echo still here", 10s).has_value());
}

// Shared storage is declared, never assumed: without --storage a guest with disks does not move;
// with --storage shared the standby must open the very same file; then no disk bytes move.
BOOST_AUTO_TEST_CASE(shared_storage_is_declared_and_proved_never_assumed) {
  TempDir tmp("migshared");
  std::string socket = tmp / "src.sock", image = tmp / "shared.img", other = tmp / "other.img";
  for (const auto& path : {image, other}) {
    std::ofstream(path).close();
    std::filesystem::resize_file(path, 8 << 20);
  }
  auto source = startTandemRun({"--control", socket, "--disk", image, "--append", "job=disk rate=50"});
  BOOST_REQUIRE(source->waitForLine("disk: wrote record 10", 20s));

  // Neither option: refused, with what to do; the guest runs on.
  std::string endpoint = freeEndpoint();
  auto target = startStandby(endpoint, {"--disk", image});
  auto [neither, neitherOut] = migrate(socket, endpoint);
  BOOST_TEST(neither == 1);
  BOOST_TEST(neitherOut.find("--storage copy") != std::string::npos, neitherOut);

  // Shared, onto another file of this host: refused at once (not the same device and inode).
  std::string otherEndpoint = freeEndpoint();
  auto wrong = startStandby(otherEndpoint, {"--disk", other});
  auto [refused, refusedOut] = migrate(socket, otherEndpoint, {"--storage", "shared"});
  BOOST_TEST(refused == 1);
  BOOST_TEST(refusedOut.find("another file") != std::string::npos, refusedOut);
  source->send("echo still here\n");
  BOOST_TEST(source->waitForLine("echo still here", 10s).has_value());

  // Shared, onto the very same file: nothing of the disk moves, and the guest goes on there.
  auto [status, out] = migrate(socket, endpoint, {"--shared-storage"});  // (the same as --storage shared)
  BOOST_REQUIRE_MESSAGE(status == 0, out);
  BOOST_TEST(nlohmann::json::parse(out)["disk_chunks"].value("sent", uint64_t{1}) == 0u, out);
  uint64_t last = lastRecordShown(*source);
  target->continueConsoleOf(*source);  // (the source may have stopped in the middle of a line)
  BOOST_TEST(target->waitForLine("disk: wrote record " + std::to_string(last + 1), 20s).has_value());
  target->send("verify\n");
  auto verdict = target->waitForLine("verify", 30s);
  BOOST_REQUIRE(verdict);
  BOOST_TEST(verdict->starts_with("verify ok records="), *verdict);
}

BOOST_AUTO_TEST_CASE(a_standby_with_other_devices_refuses_the_source) {
  TempDir tmp("migshape");
  std::string endpoint = freeEndpoint(), socket = tmp / "src.sock";
  std::string image = tmp / "d.img";
  std::ofstream(image).close();
  std::filesystem::resize_file(image, 1 << 20);
  auto target = startTandem({"standby", "--listen", endpoint, "--disk", image});
  auto source = startTandemRun({"--control", socket, "--append", "job=counter rate=20"});
  BOOST_REQUIRE(source->waitForLine("tick 1", 20s));
  auto [status, out] = migrate(socket, endpoint);
  BOOST_TEST(status == 1);
  BOOST_TEST(out.find("0 disks") != std::string::npos, out);
  source->send("echo still here\n");
  BOOST_TEST(source->waitForLine("echo still here", 10s).has_value());
  BOOST_TEST(target->wait(10s) == 2);  // its devices do not fit the source: bad input, it ends
}

BOOST_AUTO_TEST_SUITE_END()
