// A protected guest survives SIGKILL of its primary, again and again: each standby takes over
// from the last committed epoch and protects the guest onward to the next one. What the outside
// saw goes on as if nothing happened: every console tick and every disk record exactly once and in
// order, every acknowledged kv SET still there, the disk intact, and the guest answering again
// within a second.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include <deque>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "support/kv_workload.hpp"
#include "support/linked_hosts.hpp"
#include "support/protected_pair.hpp"
#include "support/snapshot_helpers.hpp"

using namespace tandem::test;

namespace {

// Endpoints for a chain of standbys in this suite: 30000-32399 (see support/protected_pair.hpp).
struct Endpoints : ChainEndpoints {
  Endpoints() : ChainEndpoints(30000) {}
};
using ProtectedPair = ProtectedPairOn<30000>;

// `kills` SIGKILLs of the primary under load; every failover (kill to the next kv answer, polled
// every millisecond) within mostMs, and a ping (one echo every 100 ms) answered within mostMs + 100.
void killsUnderLoad(int kills, double mostMs) {
  // The guest serves kv, prints ticks and appends disk records at once; a kv client writes all
  // the time. Three taps in a private namespace, used in turn: the runner's, its standby's, and
  // the one the standby after that opens before the kill. The guest keeps one MAC; each takeover
  // announces it. Every process has a disk of its own, which replication keeps equal.
  TestNetwork net(3);
  TempDir tmp("chaos");
  Endpoints at;
  std::mt19937 random(std::random_device{}());
  TickStream console;
  const std::string mac = "52:54:00:77:00:02";
  auto makeDisk = [&](int i) {
    std::string path = tmp / ("disk" + std::to_string(i) + ".img");
    std::ofstream(path).close();
    std::filesystem::resize_file(path, 16 << 20);
    return path;
  };
  auto standbyOn = [&](int i) {
    return std::make_unique<ChildProcess>(net.inside({kTandemBinary, "standby", "--listen", at[i], "--protect", at[i + 1],
                                                      "--net", "tap=tap" + std::to_string((i + 1) % 3) + ",mac=" + mac,
                                                      "--disk", makeDisk(i + 1), "--control", tmp / ("s" + std::to_string(i) + ".sock")}));
  };
  std::string runnerSocket = tmp / "p.sock";
  auto next = standbyOn(0);
  auto runner = std::make_unique<ChildProcess>(net.inside(
      {kTandemBinary, "run", "--kernel", kTestGuest, "--memory", "64M", "--net", "tap=tap0,mac=" + mac, "--disk", makeDisk(0),
       "--control", runnerSocket, "--protect", at[0], "--append", "job=kv+counter+disk ip=10.77.0.2/16 rate=50"}));
  BOOST_REQUIRE(waitProtected(runnerSocket, 30s));
  BackgroundWriter writer(net, "k", 1000000);
  std::vector<std::unique_ptr<ChildProcess>> dead;
  std::vector<double> kvMs, pingMs, tickMs;

  for (int kill = 0; kill < kills; ++kill) {
    if (!waitProtected(runnerSocket, 30s))  // (Boost builds a message even when the check passes)
      BOOST_FAIL("the guest was not protected before kill " << kill << "; the runner logged:\n"
                                                               << logOf(*runner) << "\nits standby:\n" << logOf(*next));
    // The standby after the next one waits already, so that the guest is protected again at once.
    auto afterNext = standbyOn(kill + 1);
    console.readFor(*runner, std::chrono::milliseconds(200 + random() % 400));  // under load
    int before = writer.done();
    auto killedAt = Clock::now();
    runner->kill(SIGKILL);
    auto since = [&] { return std::chrono::duration<double, std::milli>(Clock::now() - killedAt).count(); };
    // (d) kv and ping answer again, within the same second.
    while (writer.done() <= before && Clock::now() - killedAt < 10s) std::this_thread::sleep_for(1ms);
    kvMs.push_back(since());
    // An echo every 100 ms until one is answered (for at most 2 s).
    ChildProcess ping(net.inside({"/usr/bin/env", "ping", "-c", "1", "-i", "0.1", "-w", "2", TestNetwork::kGuestIp}));
    BOOST_TEST(ping.wait(5s) == 0, "ping after kill " << kill << "; the standby says " << replication(tmp / ("s" + std::to_string(kill) + ".sock")).dump());
    pingMs.push_back(since());

    // (b) the ticks and disk records go on where the dead runner's shown ones ended.
    console.readFor(*runner, 2s);  // what it had shown before it died
    auto shown = console.count;
    next->continueConsoleOf(*runner);
    dead.push_back(std::move(runner));
    runner = std::move(next);
    next = std::move(afterNext);
    runnerSocket = tmp / ("s" + std::to_string(kill) + ".sock");
    if (!console.readUntilTick(*runner, 10s))
      BOOST_FAIL("no tick after kill " << kill << " (" << shown << " ticks before); the new runner logged:\n"
                                       << logOf(*runner) << "\nthe killed one:\n" << dead.back()->stderrText()
                                       << "\nthe next standby:\n" << logOf(*next));
    tickMs.push_back(since());
    if (!console.problem.empty())
      BOOST_FAIL(console.problem << " at kill " << kill << "; the killed runner logged:\n"
                                 << dead.back()->stderrText() << "\nthe new one:\n" << logOf(*runner));
    // (c) every record on the new runner's disk is whole, as many as the guest wrote.
    std::string verdict = console.verify(*runner, 10s);
    if (!verdict.starts_with("verify ok records="))
      BOOST_ERROR("after kill " << kill << ": '" << verdict << "'; the new runner's replication: "
                                << replication(runnerSocket).dump() << "; it logged so far:\n" << runner->stderrText());
    if (verdict.starts_with("verify ok records=") && console.lastRecord)
      BOOST_TEST(std::stoull(verdict.substr(18)) >= *console.lastRecord);
    // (a) the SETs acknowledged just before the kill are there (all of them are read at the end).
    std::string lost = firstLostKey(net, writer.lastAcknowledged(10));
    BOOST_TEST(lost == "", "after kill " << kill << ": " << lost);
  }
  console.readFor(*runner, 300ms);
  writer.stop();
  const auto& acknowledged = writer.join();
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  BOOST_TEST_MESSAGE(kills << " kills: " << acknowledged.size() << " SETs acknowledged, " << console.count << " ticks, "
                            << console.lastRecord.value_or(0) << " disk records; kill to the next kv answer: median "
                            << median(kvMs) << " ms, max " << *std::max_element(kvMs.begin(), kvMs.end())
                            << "; to a ping answered: median " << median(pingMs) << " ms, max "
                            << *std::max_element(pingMs.begin(), pingMs.end()) << "; to the next tick: median " << median(tickMs)
                            << " ms");
  BOOST_TEST(acknowledged.size() > 100u);
  BOOST_TEST(console.count > 500u);
  BOOST_TEST(console.problem == "");
  BOOST_TEST(firstLostKey(net, acknowledged) == "");
  for (double ms : kvMs) BOOST_TEST(ms < mostMs);
  for (double ms : pingMs) BOOST_TEST(ms < mostMs + 100);  // (an echo goes every 100 ms)
}

}  // namespace

BOOST_AUTO_TEST_SUITE(failover)

BOOST_AUTO_TEST_CASE(a_primary_whose_standby_died_holds_its_output_until_a_new_standby_joins) {
  ProtectedPair pair;
  auto& [tmp, at, console, socket, first, primary] = pair;
  first->kill(SIGKILL);

  // Unprotected: it says so, and shows nothing more while its output piles up.
  nlohmann::json r;
  for (auto until = Clock::now() + 5s; Clock::now() < until; std::this_thread::sleep_for(20ms)) {
    r = replication(socket);
    if (r.is_object() && r.value("state", "") != "protected") break;
  }
  BOOST_REQUIRE(r.is_object());
  BOOST_TEST(r["protected"] == false);
  console.readFor(*primary, 500ms);  // what was acknowledged before the standby died
  auto before = console.count;
  console.readFor(*primary, 700ms);
  BOOST_TEST(console.count == before);  // held
  r = replication(socket);
  BOOST_TEST(r["held_output_bytes"].get<uint64_t>() > 0u);

  auto second = startTandem({"standby", "--listen", at[0]});
  BOOST_REQUIRE(waitProtected(socket, 30s));
  console.readFor(*primary, 500ms);  // the held ticks come out, in order, then the new ones
  BOOST_TEST(console.count > before + 50);  // 1.2 s of ticks at 50 a second
  BOOST_TEST(console.problem == "");
}

BOOST_AUTO_TEST_CASE(a_primary_cut_off_shows_nothing_twice_and_stops_once_superseded) {
  ProtectedPair pair;
  auto& [tmp, at, console, socket, backup, primary] = pair;

  // Cut off: the primary is frozen past the failover time, so the standby takes over and goes on
  // from its last committed epoch, where the primary's shown output ended.
  primary->kill(SIGSTOP);
  console.readFor(*primary, 200ms);  // whatever it wrote just before
  backup->continueConsoleOf(*primary);
  BOOST_REQUIRE(console.readUntilTick(*backup, 10s));
  console.readFor(*backup, 300ms);

  // Back: the old primary learns it was superseded and stops for good, having shown nothing more
  // that the standby shows too.
  primary->kill(SIGCONT);
  int status = primary->wait(10s);
  BOOST_TEST(status != ChildProcess::kTimedOut);
  std::vector<std::string> shownByPrimaryLater;
  while (auto line = primary->readLine(100ms)) shownByPrimaryLater.push_back(*line);
  for (const auto& line : shownByPrimaryLater)
    BOOST_TEST(!line.starts_with("tick "), "the old primary showed '" << line << "' after the takeover");
  BOOST_TEST(primary->stderrText().find("superseded") != std::string::npos);
  console.readFor(*backup, 200ms);
  BOOST_TEST(console.problem == "");
}

BOOST_AUTO_TEST_CASE(a_cut_link_shows_nothing_twice_and_the_old_primary_stops_once_it_learns_it_was_superseded) {
  // Primary and standby on two hosts (namespaces) joined by one link; the link goes down.
  LinkedHosts hosts;
  TempDir tmp("chaoscut");
  std::string at = std::string("tcp://") + LinkedHosts::kStandbyIp + ":" + std::to_string(Endpoints().base);
  std::string socket = tmp / "p.sock";
  ChildProcess backup(hosts.onStandby({kTandemBinary, "standby", "--listen", at}));
  ChildProcess primary(hosts.onPrimary({kTandemBinary, "run", "--kernel", kTestGuest, "--memory", "64M", "--append",
                                        "job=counter rate=50", "--control", socket, "--protect", at}));
  BOOST_REQUIRE(waitProtected(socket, 30s));
  TickStream console;
  console.readFor(primary, 500ms);

  hosts.cut();
  // The primary hears nothing more: it holds its output and says it is unprotected. Everything it
  // shows from now on must be what the standby does not show: nothing, once the standby took over.
  nlohmann::json r;
  for (auto until = Clock::now() + 5s; Clock::now() < until; std::this_thread::sleep_for(20ms)) {
    r = replication(socket);
    if (r.is_object() && r.value("protected", true) == false) break;
  }
  BOOST_TEST(r.value("protected", true) == false, "the cut-off primary says " << r.dump());
  console.readFor(primary, 1s);
  // The standby took over from its last committed epoch: the ticks go on where the primary's ended.
  backup.continueConsoleOf(primary);
  BOOST_REQUIRE(console.readUntilTick(backup, 10s));
  console.readFor(backup, 500ms);

  // The link comes back: the old primary learns it was superseded and stops for good, having shown
  // nothing more (the ticks it did show and the standby's are one unbroken sequence above).
  hosts.heal();
  int status = primary.wait(20s);
  BOOST_TEST(status != ChildProcess::kTimedOut);
  std::vector<std::string> later;
  while (auto line = primary.readLine(100ms)) later.push_back(*line);
  for (const auto& line : later) BOOST_TEST(!line.starts_with("tick "), "the old primary showed '" << line << "' after the cut");
  BOOST_TEST(primary.stderrText().find("superseded") != std::string::npos);
  console.readFor(backup, 200ms);
  BOOST_TEST(console.problem == "");
}

BOOST_AUTO_TEST_CASE(a_planned_failover_hands_the_guest_over_with_every_tick_once) {
  ProtectedPair pair;
  auto& [tmp, at, console, socket, backup, primary] = pair;
  auto failover = startTandem({"failover", "--control", socket});
  BOOST_TEST(failover->wait(20s) == 0);
  BOOST_TEST(primary->wait(10s) == 0);  // it stops once the standby runs the guest
  console.readFor(*primary, 1s);
  backup->continueConsoleOf(*primary);
  BOOST_REQUIRE(console.readUntilTick(*backup, 5s));
  console.readFor(*backup, 300ms);
  BOOST_TEST(primary->stderrText().find("switchover") != std::string::npos);
  BOOST_TEST(console.problem == "");
}

BOOST_AUTO_TEST_CASE(garbage_on_the_standbys_ports_leaves_its_committed_state_as_it_was) {
  ProtectedPair pair;
  auto& [tmp, at, console, socket, backup, primary] = pair;

  // Bytes that are no protocol at all, on the bulk, urgent and release ports.
  int port = std::stoi(at[0].substr(at[0].rfind(':') + 1));
  std::mt19937 random(42);
  for (int offset = 0; offset < 3; ++offset) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port + offset));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    BOOST_REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    std::vector<uint8_t> junk(64 * 1024);
    for (auto& b : junk) b = static_cast<uint8_t>(random());
    [[maybe_unused]] auto sent = ::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL);
    ::close(fd);
  }
  console.readFor(*primary, 300ms);
  BOOST_TEST(replication(socket).value("state", "") == "protected");

  // The standby still takes over from an intact committed epoch: every tick once, in order.
  primary->kill(SIGKILL);
  console.readFor(*primary, 2s);
  backup->continueConsoleOf(*primary);
  BOOST_REQUIRE(console.readUntilTick(*backup, 10s));
  console.readFor(*backup, 300ms);
  BOOST_TEST(console.problem == "");
}


BOOST_AUTO_TEST_CASE(twenty_kills_of_the_primary_under_load_lose_nothing_and_the_guest_answers_within_a_second) {
  killsUnderLoad(20, 1000.0);
}

BOOST_AUTO_TEST_SUITE_END()

// Not in the default suite (about ten minutes): tandem_chaos --run_test=soak. The figures it prints
// are in the README.
BOOST_AUTO_TEST_SUITE(soak, *boost::unit_test::disabled())

BOOST_AUTO_TEST_CASE(a_hundred_kills_of_the_primary_under_load_lose_nothing_and_each_failover_takes_under_400_ms) {
  killsUnderLoad(100, 400.0);
}

BOOST_AUTO_TEST_SUITE_END()
