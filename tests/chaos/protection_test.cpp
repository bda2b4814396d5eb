// "Protected" means a failover would work, and only silence makes one: the situations of an HA
// pair outside the kill script. A standby that could not run the guest is refused when the
// session starts (not at the takeover); a standby with a NIC and a disk serves session after
// session; a standby that was itself frozen does not take over from a live primary; a guest its
// operator stopped does not come back on the standby.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "base/fd.hpp"
#include "support/protected_pair.hpp"
#include "support/test_network.hpp"

using namespace tandem::test;

namespace {

constexpr int kFirstPort = 12000;
using Pair = ProtectedPairOn<kFirstPort>;

std::string makeDisk(const TempDir& tmp, const std::string& name) {
  std::string path = tmp / name;
  std::ofstream(path).close();
  std::filesystem::resize_file(path, 8 << 20);
  return path;
}

// Waits until the tandem behind socket has begun `sessions` replication sessions and is protected.
bool waitProtectedInSession(const std::string& socket, uint64_t sessions, std::chrono::milliseconds timeout) {
  nlohmann::json r;
  for (auto until = Clock::now() + timeout; Clock::now() < until; std::this_thread::sleep_for(10ms)) {
    r = replication(socket);
    if (r.is_object() && r.value("sessions", uint64_t{0}) >= sessions && r.value("state", "") == "protected") return true;
  }
  BOOST_TEST_MESSAGE("not protected in session " << sessions << ": " << r.dump());
  return false;
}

// Whether child shows a tick within `within` (a standby shows the guest's console only once it runs it).
bool showsTick(ChildProcess& child, std::chrono::milliseconds within) {
  for (auto until = Clock::now() + within; Clock::now() < until;) {
    auto line = child.readLine(std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()) + 1ms);
    if (!line) return false;
    if (line->starts_with("tick ")) return true;
  }
  return false;
}

// A console client on 127.0.0.1:port inside net's namespace, with a small receive buffer (so that
// it falls behind soon). The socket is made by a thread of its own that enters the namespace.
tandem::Fd connectConsole(const TestNetwork& net, int port) {
  tandem::Fd fd;
  std::thread([&] {
    net.enter();
    for (auto until = Clock::now() + 10s; Clock::now() < until && !fd; std::this_thread::sleep_for(20ms)) {
      tandem::Fd attempt(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      int small = 2048;
      ::setsockopt(attempt.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_port = htons(static_cast<uint16_t>(port));
      sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::connect(attempt.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) fd = std::move(attempt);
    }
  }).join();
  if (!fd) throw std::runtime_error("cannot connect to the console on port " + std::to_string(port));
  return fd;
}

// Reads from fd until the end of the stream or `within`; the bytes read, and whether it ended.
std::pair<std::string, bool> readConsole(int fd, std::chrono::milliseconds within, size_t enough = SIZE_MAX) {
  std::string text;
  char chunk[65536];
  for (auto until = Clock::now() + within; Clock::now() < until && text.size() < enough;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return {text, true};
    text.append(chunk, static_cast<size_t>(n));
  }
  return {text, false};
}

// Kills the primary; the standby takes over and goes on with the ticks where the primary's ended
// (its log says why not, if it does not).
void killPrimaryAndTakeOver(TickStream& console, ChildProcess& primary, ChildProcess& standby) {
  primary.kill(SIGKILL);
  primary.wait(5s);
  console.readFor(primary, 100ms);
  standby.continueConsoleOf(primary);
  if (!console.readUntilTick(standby, 10s)) BOOST_FAIL("no takeover; the standby logged:\n" << logOf(standby));
  console.readFor(standby, 300ms);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(protection)

// On main before this change: replicated for ever as "protected", then refused the takeover
// ("a virtio device differs from the snapshotted one") and the guest was gone.
BOOST_AUTO_TEST_CASE(a_standby_whose_nic_has_another_mac_is_refused_when_the_session_starts) {
  TestNetwork net(2);
  TempDir tmp("protmac");
  ChainEndpoints at(kFirstPort);
  std::string ps = tmp / "p.sock", ss = tmp / "s.sock";
  ChildProcess standby(net.inside({kTandemBinary, "standby", "--listen", at[0], "--net", "tap=tap1,mac=02:00:00:00:00:99",
                                   "--control", ss}));
  ChildProcess primary(net.inside({kTandemBinary, "run", "--kernel", kTestGuest, "--memory", "64M", "--append",
                                   "job=counter rate=50", "--net", "tap=tap0", "--control", ps, "--protect", at[0]}));
  nlohmann::json r;
  for (auto until = Clock::now() + 20s; Clock::now() < until; std::this_thread::sleep_for(20ms)) {
    r = replication(ps);
    if (r.is_object() && r.value("unprotected_reason", "").find("MAC") != std::string::npos) break;
  }
  BOOST_REQUIRE_MESSAGE(r.is_object(), "no status from the primary");
  BOOST_TEST(r["protected"] == false);
  BOOST_TEST(r.value("state", "") == "unprotected");
  BOOST_TEST(r.value("unprotected_reason", "").find("MAC") != std::string::npos, "the primary says " << r.dump());
  // The standby says the same, committed nothing, and waits on for a primary it can hold.
  auto s = replication(ss);
  BOOST_REQUIRE(s.is_object());
  BOOST_TEST(s.value("committed_epoch", uint64_t{1}) == 0u);
  BOOST_TEST(s.value("last_refusal", "").find("MAC") != std::string::npos, "the standby says " << s.dump());
  BOOST_TEST(standby.wait(100ms) == ChildProcess::kTimedOut);
  // The primary's metrics-facing status counts the refusal.
  BOOST_TEST(r.value("refusals", uint64_t{0}) >= 1u);
}

// On main before this change: the standby derived another MAC from its own tap's name, and the
// takeover refused to restore the guest's NIC onto it.
BOOST_AUTO_TEST_CASE(a_standby_given_no_mac_takes_the_guests_and_can_take_over) {
  TestNetwork net(2);
  TempDir tmp("protnomac");
  ChainEndpoints at(kFirstPort);
  std::string ps = tmp / "p.sock";
  ChildProcess standby(net.inside({kTandemBinary, "standby", "--listen", at[0], "--net", "tap=tap1"}));
  ChildProcess primary(net.inside({kTandemBinary, "run", "--kernel", kTestGuest, "--memory", "64M", "--append",
                                   "job=counter rate=50", "--net", "tap=tap0", "--control", ps, "--protect", at[0]}));
  BOOST_REQUIRE(waitProtected(ps, 30s));
  TickStream console;
  console.readFor(primary, 300ms);
  killPrimaryAndTakeOver(console, primary, standby);
  BOOST_TEST(console.problem == "");
}

// On main before this change: the thawed standby judged the primary silent before reading the
// beats waiting for it and took over from a live primary (which then stopped, superseded), or,
// with a NIC, died building the next session's machine (its tap busy).
BOOST_AUTO_TEST_CASE(a_frozen_standby_with_a_nic_and_a_disk_serves_three_sessions_and_takes_over_only_when_the_primary_dies) {
  TestNetwork net(2);
  TempDir tmp("protsessions");
  ChainEndpoints at(kFirstPort);
  std::string ps = tmp / "p.sock", ss = tmp / "s.sock";
  ChildProcess standby(net.inside({kTandemBinary, "standby", "--listen", at[0], "--net", "tap=tap1", "--disk",
                                   makeDisk(tmp, "s.img"), "--control", ss}));
  ChildProcess primary(net.inside({kTandemBinary, "run", "--kernel", kTestGuest, "--memory", "64M", "--append",
                                   "job=counter+disk rate=50", "--net", "tap=tap0", "--disk", makeDisk(tmp, "p.img"),
                                   "--control", ps, "--protect", at[0]}));
  BOOST_REQUIRE(waitProtectedInSession(ps, 1, 30s));
  TickStream console;
  console.readFor(primary, 300ms);
  for (uint64_t session = 2; session <= 4; ++session) {
    // Frozen for twice the failover time: the primary drops the session and begins another.
    standby.kill(SIGSTOP);
    console.readFor(primary, 400ms);
    standby.kill(SIGCONT);
    // (Boost builds a message even when the check passes: logs are read only on failure.)
    if (!waitProtectedInSession(ps, session, 30s)) BOOST_FAIL("not protected again; the standby logged:\n" << logOf(standby));
    if (standby.wait(10ms) != ChildProcess::kTimedOut) BOOST_FAIL("the standby ended:\n" << standby.stderrText());
    BOOST_TEST(!showsTick(standby, 10ms), "the standby ran the guest of a live primary");
    console.readFor(primary, 200ms);
  }
  if (primary.wait(10ms) != ChildProcess::kTimedOut) BOOST_FAIL("the primary stopped:\n" << primary.stderrText());
  BOOST_TEST(replication(ss).value("sessions", uint64_t{0}) == 4u);

  // Now the primary dies for real: the standby goes on from its last epoch, with its disk.
  killPrimaryAndTakeOver(console, primary, standby);
  BOOST_TEST(console.verify(standby, 10s).starts_with("verify ok"));
  BOOST_TEST(console.problem == "");
}

// On main before this change: each of these looked like a dead primary, and the standby started
// the guest again from its last epoch.
BOOST_AUTO_TEST_CASE(a_guest_its_operator_stopped_does_not_come_back_on_the_standby) {
  for (std::string how : {"quit", "SIGTERM", "poweroff"}) {
    BOOST_TEST_CONTEXT(how) {
      Pair pair;
      auto& [tmp, at, console, socket, standby, primary] = pair;
      if (how == "quit") control(socket, {{"cmd", "quit"}});
      if (how == "SIGTERM") primary->kill(SIGTERM);
      if (how == "poweroff") primary->send("poweroff\n");
      BOOST_TEST(primary->wait(10s) == 0);
      std::string primaryLog = primary->stderrText();
      BOOST_TEST(primaryLog.find("confirmed that the guest ended") != std::string::npos, primaryLog);
      BOOST_TEST(!showsTick(*standby, 1500ms), "the standby ran a guest that was stopped on purpose");
      BOOST_TEST(standby->wait(10ms) == ChildProcess::kTimedOut);
      standby->kill(SIGTERM);
      standby->wait(10s);
      std::string standbyLog = standby->stderrText();
      BOOST_TEST(standbyLog.find("the primary ended the guest") != std::string::npos, standbyLog);
    }
  }
}

BOOST_AUTO_TEST_CASE(protected_is_said_only_once_the_standby_has_committed_an_epoch) {
  TempDir tmp("protfirst");
  ChainEndpoints at(kFirstPort);
  std::string socket = tmp / "p.sock";
  auto standby = startTandem({"standby", "--listen", at[0]});
  auto primary = startTandemRun({"--append", "job=counter rate=50", "--memory", "64M", "--control", socket, "--protect", at[0]});
  // Each status is one moment: protected there means an acknowledged epoch there.
  int seen = 0;
  for (auto until = Clock::now() + 30s; Clock::now() < until && seen < 20;) {
    auto r = replication(socket);
    if (!r.is_object() || r.value("state", "") != "protected") continue;
    ++seen;
    BOOST_TEST(r.value("last_acked_epoch", uint64_t{0}) >= 1u, "protected without a committed epoch: " << r.dump());
  }
  BOOST_TEST(seen == 20);
}

// On main before this change: released output went into the console socket with a blocking send;
// once the buffers of a reader that stopped reading were full, the replicator waited in send, no
// epoch was acknowledged again and the guest paused for its held output, until the reader read.
// (The namespace's TCP send buffers are kept at 64 KiB so that they fill within seconds; with the
// default of up to 4 MiB main held out for minutes.) On main: no epoch acknowledged for 18.9 s.
BOOST_AUTO_TEST_CASE(a_console_client_that_stops_reading_loses_its_connection_not_the_guest_its_protection) {
  TestNetwork net(1);
  BOOST_REQUIRE(std::system((TestNetwork::ipBinary() + " netns exec " + net.ns() +
                             " sysctl -q -w net.ipv4.tcp_wmem='4096 16384 65536'").c_str()) == 0);
  TempDir tmp("protconsole");
  ChainEndpoints at(kFirstPort);
  int consolePort = at.base + 3;  // at[0] takes base .. base + 2
  std::string socket = tmp / "p.sock";
  ChildProcess standby(net.inside({kTandemBinary, "standby", "--listen", at[0]}));
  ChildProcess primary(net.inside({kTandemBinary, "run", "--kernel", kTestGuest, "--memory", "64M", "--append",
                                   "job=counter rate=20000", "--control", socket, "--console",
                                   "tcp:127.0.0.1:" + std::to_string(consolePort), "--protect", at[0]}));
  BOOST_REQUIRE(waitProtected(socket, 30s));
  auto stalled = connectConsole(net, consolePort);
  // The client reads nothing while the guest writes 1 MiB (some 35 KB/s: far more than the buffers
  // on the way hold): epochs go on being acknowledged all along.
  uint64_t lastAcked = 0, releasedAtConnect = replication(socket).value("released_output_bytes", uint64_t{0});
  double longestGapMs = 0;
  auto lastProgress = Clock::now();
  for (auto until = Clock::now() + 90s; Clock::now() < until && longestGapMs < 5000; std::this_thread::sleep_for(50ms)) {
    auto r = replication(socket);
    uint64_t acked = r.is_object() ? r.value("last_acked_epoch", uint64_t{0}) : 0;
    auto now = Clock::now();
    longestGapMs = std::max(longestGapMs, std::chrono::duration<double, std::milli>(now - lastProgress).count());
    if (acked > lastAcked) lastAcked = acked, lastProgress = now;
    if (r.is_object() && r.value("released_output_bytes", uint64_t{0}) > releasedAtConnect + (1u << 20)) break;
  }
  BOOST_TEST(longestGapMs < 2000.0, "no epoch was acknowledged for " << longestGapMs << " ms");
  BOOST_TEST(replication(socket).value("state", "") == "protected");
  // The client that fell behind was disconnected: it reads what its buffers held, then the end.
  auto [held, ended] = readConsole(stalled.get(), 20s);
  BOOST_TEST(ended, "the stalled client is still connected after reading " << held.size() << " bytes");
  // The next client gets the console.
  auto next = connectConsole(net, consolePort);
  auto [fresh, _] = readConsole(next.get(), 5s, 4096);
  BOOST_TEST(fresh.find("tick ") != std::string::npos, "the next client read: " << fresh.substr(0, 200));
}

// On main before this change there was no way out: with the standby gone for good, the guest's
// output stayed held (and the guest paused at 64 MiB of it) until a standby came back.
BOOST_AUTO_TEST_CASE(an_operator_runs_a_guest_whose_standby_died_unprotected_then_protects_it_again) {
  Pair pair;
  auto& [tmp, at, console, socket, standby, primary] = pair;
  standby->kill(SIGKILL);
  standby->wait(5s);
  console.readFor(*primary, 1s);  // what was acknowledged before the standby died
  uint64_t shownBefore = console.count;
  console.readFor(*primary, 1s);
  BOOST_TEST(console.count == shownBefore, "output was shown that no standby acknowledged");
  BOOST_TEST(replication(socket).value("state", "") == "unprotected");

  // Not without confirmation: exit code 2, nothing changes.
  auto refused = startTandem({"unprotect", "--control", socket});
  BOOST_TEST(refused->wait(10s) == 2);
  BOOST_TEST(refused->stderrText().find("--confirm") != std::string::npos);
  console.readFor(*primary, 300ms);
  BOOST_TEST(console.count == shownBefore);

  auto unprotect = startTandem({"unprotect", "--control", socket, "--confirm", "--why", "the standby host burned"});
  BOOST_TEST(unprotect->wait(10s) == 0);
  // What was held comes out, then the guest's output at once: every tick once, in order.
  console.readFor(*primary, 1s);
  BOOST_TEST(console.count > shownBefore + 50, "only " << console.count - shownBefore << " ticks after unprotect");
  auto r = replication(socket);
  BOOST_TEST(r.value("state", "") == "unprotected");
  BOOST_TEST(r.value("operator_unprotects", uint64_t{0}) == 1u);
  BOOST_TEST(r.value("unprotected_reason", "").find("the standby host burned") != std::string::npos, r.dump());
  BOOST_TEST(control(socket, {{"cmd", "status"}}).value("state", "") == "running");

  // A new standby, and the guest is protected again; then its primary dies, and nothing is lost.
  auto next = startTandem({"standby", "--listen", at[1]});
  auto protect = startTandem({"protect", "--control", socket, "--to", at[1]});
  BOOST_TEST(protect->wait(10s) == 0);
  BOOST_REQUIRE(waitProtected(socket, 30s));
  console.readFor(*primary, 500ms);
  killPrimaryAndTakeOver(console, *primary, *next);
  BOOST_TEST(console.problem == "");
}

// On main before this change: the standby applied every epoch's disk writes into its page cache
// and acknowledged; a record the guest flushed and showed was on the standby's disk only once the
// kernel got round to writing it back (disk_syncs did not exist).
BOOST_AUTO_TEST_CASE(an_epoch_with_a_guest_flush_is_durable_on_the_standby_before_it_is_acknowledged) {
  TempDir tmp("protflush");
  ChainEndpoints at(kFirstPort);
  std::string ps = tmp / "p.sock", ss = tmp / "s.sock";
  auto standby = startTandem({"standby", "--listen", at[0], "--disk", makeDisk(tmp, "s.img"), "--control", ss});
  auto primary = startTandemRun({"--append", "job=disk rate=20", "--memory", "64M", "--disk", makeDisk(tmp, "p.img"),
                                 "--control", ps, "--protect", at[0]});
  BOOST_REQUIRE(waitProtected(ps, 30s));
  TickStream console;
  console.readFor(*primary, 2s);
  uint64_t first = console.lastRecord.value_or(0);
  console.readFor(*primary, 2s);
  uint64_t records = console.lastRecord.value_or(0) - first;
  BOOST_TEST(records >= 20u);
  // Each record is written and flushed, then shown: each of its epochs was made durable there.
  auto s = replication(ss);
  BOOST_REQUIRE(s.is_object());
  BOOST_TEST(s.value("disk_syncs", uint64_t{0}) >= records, s.dump());
  // A takeover makes the disk durable before the guest runs, and says so.
  primary->kill(SIGKILL);
  primary->wait(5s);
  console.readFor(*primary, 100ms);
  standby->continueConsoleOf(*primary);
  if (!console.verify(*standby, 15s).starts_with("verify ok")) BOOST_FAIL("no takeover; the standby logged:\n" << logOf(*standby));
  console.readFor(*standby, 500ms);
  BOOST_TEST(console.problem == "");
  standby->kill(SIGTERM);
  standby->wait(10s);
  std::string log = standby->stderrText();
  BOOST_TEST(log.find("disks made durable") != std::string::npos, log);
}

// On main before this change: every session's sync sent the whole disk (and the standby saved an
// undo copy of all of it while its committed epoch stood), whatever the standby's disk held.
BOOST_AUTO_TEST_CASE(a_resync_sends_only_the_disk_chunks_that_differ_from_the_standbys) {
  TempDir tmp("protresync");
  ChainEndpoints at(kFirstPort);
  std::string ps = tmp / "p.sock", ss = tmp / "s.sock";
  // The standby's disk differs in its first MiB (16 chunks of 64 KiB): those, and only those, go.
  std::string standbyDisk = makeDisk(tmp, "s.img");
  {
    std::ofstream garbage(standbyDisk, std::ios::in | std::ios::out | std::ios::binary);
    std::string bytes(1 << 20, '\0');
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 2654435761u >> 13);
    garbage.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  auto standby = startTandem({"standby", "--listen", at[0], "--disk", standbyDisk, "--control", ss});
  auto primary = startTandemRun({"--append", "job=counter+disk rate=20", "--memory", "64M", "--disk", makeDisk(tmp, "p.img"),
                                 "--control", ps, "--protect", at[0]});
  BOOST_REQUIRE(waitProtectedInSession(ps, 1, 30s));
  auto r = replication(ps);
  BOOST_TEST(r.value("sync_disk_chunks_sent", uint64_t{0}) >= 16u, r.dump());
  BOOST_TEST(r.value("sync_disk_chunks_sent", uint64_t{999}) <= 18u, r.dump());
  BOOST_TEST(r.value("sync_disk_chunks_skipped", uint64_t{0}) >= 110u, r.dump());
  TickStream console;
  console.readFor(*primary, 1s);

  // A second session (the standby frozen past the failover time) with a committed epoch standing:
  // only what the guest wrote since differs.
  standby->kill(SIGSTOP);
  console.readFor(*primary, 400ms);
  standby->kill(SIGCONT);
  if (!waitProtectedInSession(ps, 2, 30s)) BOOST_FAIL("not protected again; the standby logged:\n" << logOf(*standby));
  r = replication(ps);
  BOOST_TEST(r.value("sync_disk_chunks_sent", uint64_t{999}) <= 2u, r.dump());
  BOOST_TEST(r.value("sync_disk_chunks_skipped", uint64_t{0}) >= 126u, r.dump());
  console.readFor(*primary, 500ms);

  // What the standby holds is the guest's disk: it takes over and every record checks.
  killPrimaryAndTakeOver(console, *primary, *standby);
  BOOST_TEST(console.verify(*standby, 10s).starts_with("verify ok"));
  BOOST_TEST(console.problem == "");
}

BOOST_AUTO_TEST_SUITE_END()
