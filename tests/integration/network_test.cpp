// virtio-net on a tap inside a private namespace: ping, the kv job, a snapshot mid-traffic,
// and bad network options.
#include <linux/if_packet.h>
#include <net/if.h>
#include <signal.h>

#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "devices/virtio/net.hpp"
#include "support/kv_client.hpp"
#include "support/kv_workload.hpp"
#include "support/snapshot_helpers.hpp"
#include "support/test_network.hpp"

using namespace tandem::test;

namespace {

std::unique_ptr<ChildProcess> startKvGuest(const TestNetwork& net, std::vector<std::string> extra) {
  std::vector<std::string> args{kTandemBinary, "run", "--kernel", kTestGuest, "--net", "tap=tap0"};
  args.insert(args.end(), extra.begin(), extra.end());
  auto vm = std::make_unique<ChildProcess>(net.inside(args));
  BOOST_REQUIRE_MESSAGE(vm->waitForLine("kv: serving", 30s), "the kv guest did not come up: " << vm->stderrText());
  return vm;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(network)

BOOST_AUTO_TEST_CASE(ping_from_the_host_side_gets_answers) {
  TestNetwork net;
  auto vm = startKvGuest(net, {"--append", "job=kv ip=10.77.0.2/16"});
  ChildProcess ping(net.inside({"/usr/bin/env", "ping", "-c", "5", "-i", "0.2", "-W", "2", TestNetwork::kGuestIp}));
  BOOST_TEST(ping.wait(30s) == 0);
  BOOST_TEST(ping.waitForLine("5 received", 1s).has_value());
}

BOOST_AUTO_TEST_CASE(a_client_writes_2000_keys_and_reads_them_all_back) {
  TestNetwork net;
  auto vm = startKvGuest(net, {"--append", "job=kv ip=10.77.0.2/16 port=7777"});
  std::thread client([&] {
    net.enter();
    KvClient kv(TestNetwork::kGuestIp, 7777);
    for (int i = 0; i < 2000; ++i) {
      auto reply = kv.request("SET key" + std::to_string(i) + " value" + std::to_string(i * 7), 10s);
      BOOST_REQUIRE_MESSAGE(reply && *reply == "OK", "SET " << i << " got " << reply.value_or("no answer"));
    }
    for (int i = 0; i < 2000; ++i) {
      auto reply = kv.request("GET key" + std::to_string(i), 10s);
      BOOST_REQUIRE(reply);
      BOOST_REQUIRE_EQUAL(*reply, "VALUE value" + std::to_string(i * 7));
    }
    BOOST_TEST(*kv.request("GET missing", 10s) == "NOTFOUND");
    BOOST_TEST_MESSAGE("4001 requests, " << kv.sent() << " datagrams sent");
  });
  client.join();
}

// The store scales with the guest's memory: a million keys with values of 1000 bytes (preloaded by
// the guest itself: a million SETs over UDP would take the suite half a minute), then values up
// to 1 KiB over the network.
BOOST_AUTO_TEST_CASE(a_million_keys_of_a_kilobyte_fit_in_a_guest_of_2_gib_and_answer) {
  TestNetwork net;
  auto vm = startKvGuest(net, {"--memory", "2G", "--append", "job=kv ip=10.77.0.2/16 port=7777 preload=1000000 preload_bytes=1000"});
  auto expected = [](uint64_t i) {
    std::string v = "value" + std::to_string(i) + "-";
    while (v.size() < 1000) v += static_cast<char>('a' + (v.size() + i) % 26);
    return v;
  };
  std::thread client([&] {
    net.enter();
    KvClient kv(TestNetwork::kGuestIp, 7777);
    for (uint64_t i : {0ull, 1ull, 500000ull, 999999ull}) {
      auto reply = kv.request("GET key" + std::to_string(i), 10s);
      BOOST_REQUIRE(reply);
      BOOST_TEST(*reply == "VALUE " + expected(i), "key" << i);
    }
    BOOST_TEST(*kv.request("GET key1000000", 10s) == "NOTFOUND");
    std::string largest(1024, 'x'), tooLarge(1025, 'y');
    BOOST_TEST(*kv.request("SET big " + largest, 10s) == "OK");
    BOOST_TEST(*kv.request("GET big", 10s) == "VALUE " + largest);
    BOOST_TEST(kv.request("SET big " + tooLarge, 10s)->starts_with("ERROR"));
    BOOST_TEST(*kv.request("SET key7 short", 10s) == "OK");  // a value that shrinks stays in its place
    BOOST_TEST(*kv.request("GET key7", 10s) == "VALUE short");
  });
  client.join();
  vm->send("stats\n");
  auto stats = vm->waitForLine("stats job=kv", 10s);
  BOOST_REQUIRE(stats);
  BOOST_TEST(stats->starts_with("stats job=kv keys=1000001 "), *stats);
}

BOOST_AUTO_TEST_CASE(a_snapshot_and_restore_mid_traffic_loses_no_acknowledged_set) {
  TestNetwork net;
  TempDir tmp("netsnap");
  std::string socket = tmp / "control.sock";
  auto vm = startKvGuest(net, {"--control", socket, "--append", "job=kv ip=10.77.0.2/16"});

  // (the guest answers some 5,000 SETs a second: enough of them that the move comes mid-run)
  BackgroundWriter writer(net, "k", 3000);
  writer.waitUntilDone(150);
  // Move the guest to a new process mid-run: pause, snapshot, stop the old one, restore.
  BOOST_REQUIRE(control(socket, {{"cmd", "pause"}})["ok"]);
  auto snap = control(socket, {{"cmd", "snapshot"}, {"to", tmp / "snap"}});
  BOOST_REQUIRE_MESSAGE(snap["ok"], snap.dump());
  vm->kill(SIGKILL);
  vm->wait(10s);
  int at = writer.done();
  // Restoring onto a NIC with another MAC is refused: the guest would not know its own address.
  ChildProcess otherMac(net.inside({kTandemBinary, "restore", "--from", tmp / "snap", "--net", "tap=tap0,mac=52:54:00:00:00:99"}));
  BOOST_TEST(otherMac.wait(20s) == 2);
  BOOST_TEST(otherMac.stderrText().find("MAC") != std::string::npos);
  auto restored = std::make_unique<ChildProcess>(
      net.inside({kTandemBinary, "restore", "--from", tmp / "snap", "--net", "tap=tap0"}));
  const auto& acknowledged = writer.join();
  BOOST_TEST(at < 3000);
  BOOST_REQUIRE_EQUAL(acknowledged.size(), 3000u);  // every SET was answered, retries covered the move
  BOOST_TEST(firstLostKey(net, acknowledged) == "");
}

BOOST_AUTO_TEST_CASE(a_restored_guest_announces_its_mac_on_the_network) {
  TestNetwork net;
  TempDir tmp("netannounce");
  std::string socket = tmp / "control.sock";
  auto vm = startKvGuest(net, {"--control", socket, "--append", "job=kv ip=10.77.0.2/16"});
  BOOST_REQUIRE(control(socket, {{"cmd", "snapshot"}, {"to", tmp / "snap"}})["ok"]);
  vm->kill(SIGKILL);
  vm->wait(10s);

  // Listen on the bridge for RARP (ethertype 0x8035) while the snapshot is restored.
  std::atomic<bool> seen{false};
  std::atomic<bool> listening{false};
  std::thread listener([&] {
    net.enter();
    int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(0x8035));
    BOOST_REQUIRE(fd >= 0);
    sockaddr_ll where{};
    where.sll_family = AF_PACKET;
    where.sll_protocol = htons(0x8035);
    where.sll_ifindex = static_cast<int>(::if_nametoindex("br0"));
    BOOST_REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&where), sizeof where) == 0);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    listening = true;
    uint8_t frame[128];
    ssize_t n = ::recv(fd, frame, sizeof frame, 0);
    auto expected = tandem::dev::virtio::macFromName("tap0");
    seen = n >= 42 && std::equal(expected.begin(), expected.end(), frame + 6) && frame[21] == 3;  // RARP op 3
    ::close(fd);
  });
  while (!listening) std::this_thread::sleep_for(1ms);
  ChildProcess restored(net.inside({kTandemBinary, "restore", "--from", tmp / "snap", "--net", "tap=tap0"}));
  listener.join();
  BOOST_TEST(seen.load());
}

BOOST_AUTO_TEST_CASE(sync_sets_survive_a_power_off_on_the_disk) {
  TestNetwork net;
  TempDir tmp("netsync");
  std::string image = tmp / "kv.img";
  std::ofstream(image).close();
  std::filesystem::resize_file(image, 4 * 1024 * 1024);
  auto run = [&](auto body) {
    auto vm = startKvGuest(net, {"--disk", image, "--append", "job=kv ip=10.77.0.2/16 sync=1"});
    std::thread client([&] {
      net.enter();
      KvClient kv(TestNetwork::kGuestIp, 7777);
      body(kv);
    });
    client.join();
    vm->send("poweroff\n");
    BOOST_TEST(vm->wait(10s) == 0);
  };
  run([](KvClient& kv) {
    for (int i = 0; i < 100; ++i) BOOST_REQUIRE(*kv.request("SET d" + std::to_string(i) + " x" + std::to_string(i), 10s) == "OK");
  });
  run([](KvClient& kv) {
    for (int i = 0; i < 100; ++i)
      BOOST_REQUIRE_EQUAL(*kv.request("GET d" + std::to_string(i), 10s), "VALUE x" + std::to_string(i));
  });
}

BOOST_AUTO_TEST_CASE(bad_network_options_are_refused_with_exit_code_2) {
  TestNetwork net;
  auto refused = [&](std::vector<std::string> args, const std::string& words) {
    ChildProcess p(net.inside(args));
    int status = p.wait(20s);
    std::string err = p.stderrText();
    BOOST_TEST_CONTEXT(err) {
      BOOST_TEST(status == 2);
      BOOST_TEST(err.find(words) != std::string::npos);
      BOOST_TEST(std::count(err.begin(), err.end(), '\n') == 1);
    }
  };
  refused({kTandemBinary, "run", "--kernel", kTestGuest, "--net", "tap=tap9"}, "tap device tap9 does not exist");
  refused({kTandemBinary, "run", "--kernel", kTestGuest, "--net", "tap=tap0,mac=52:54:00:zz:00:01"}, "malformed");
  refused({kTandemBinary, "run", "--kernel", kTestGuest, "--net", "tap=tap0,mac=01:00:00:00:00:01"}, "multicast");
  refused({kTandemBinary, "run", "--kernel", kTestGuest, "--net", "tap0"}, "tap=NAME");
  // A tap that another tandem holds cannot be attached twice.
  auto vm = startKvGuest(net, {"--append", "job=kv ip=10.77.0.2/16"});
  refused({kTandemBinary, "run", "--kernel", kTestGuest, "--net", "tap=tap0"}, "cannot attach");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(network_migration)

BOOST_AUTO_TEST_CASE(kv_keeps_serving_its_client_across_a_migration_to_another_tap) {
  TestNetwork net(2);
  TempDir tmp("netmig");
  std::string socket = tmp / "src.sock", endpoint = "tcp://127.0.0.1:" + std::to_string(28000 + 4 * (::getpid() % 500));
  const std::string mac = "52:54:00:77:00:02";
  ChildProcess target(net.inside({kTandemBinary, "standby", "--listen", endpoint, "--net", "tap=tap1,mac=" + mac}));
  ChildProcess source(net.inside({kTandemBinary, "run", "--kernel", kTestGuest, "--net", "tap=tap0,mac=" + mac,
                                  "--control", socket, "--append", "job=kv ip=10.77.0.2/16"}));
  BOOST_REQUIRE(source.waitForLine("kv: serving", 30s));

  BackgroundWriter writer(net, "m", 8000);  // some 5,000 SETs a second: the migration comes mid-run
  writer.waitUntilDone(200);
  auto stats = control(socket, {{"cmd", "migrate"}, {"to", endpoint}});
  int at = writer.done();
  const auto& acknowledged = writer.join();
  BOOST_REQUIRE_MESSAGE(stats["ok"], stats.dump());
  BOOST_TEST_MESSAGE("migrated after " << at << " SETs: " << stats.dump());
  BOOST_TEST(at < 8000);
  BOOST_TEST(source.wait(10s) == 0);  // the source ended; the guest serves from tap1 now
  BOOST_REQUIRE_EQUAL(acknowledged.size(), 8000u);
  BOOST_TEST(firstLostKey(net, acknowledged) == "");
}

// kv with sync=1 writes each SET to its disk before it answers: a migration that takes the disk
// along (issue 15) leaves every acknowledged SET in memory on the target and on the target's disk,
// where a guest booted afresh from that disk alone finds it again.
BOOST_DATA_TEST_CASE(kv_with_sync_keeps_every_acknowledged_set_on_the_target_disk_across_a_migration,
                     boost::unit_test::data::make({"precopy", "postcopy", "hybrid"}), mode) {
  TestNetwork net(2);
  TempDir tmp("netmigsync");
  auto image = [&](const std::string& name) {
    std::string path = tmp / name;
    std::ofstream(path).close();
    std::filesystem::resize_file(path, 4 * 1024 * 1024);
    return path;
  };
  std::string socket = tmp / "src.sock", sourceImage = image("source.img"), targetImage = image("target.img");
  std::string endpoint = "tcp://127.0.0.1:" + std::to_string(28000 + 4 * ((::getpid() + 7 * std::string(mode).size()) % 500));
  const std::string mac = "52:54:00:77:00:03";
  ChildProcess target(net.inside({kTandemBinary, "standby", "--listen", endpoint, "--net", "tap=tap1,mac=" + mac, "--disk", targetImage}));
  ChildProcess source(net.inside({kTandemBinary, "run", "--kernel", kTestGuest, "--net", "tap=tap0,mac=" + mac, "--disk",
                                  sourceImage, "--control", socket, "--append", "job=kv ip=10.77.0.2/16 sync=1"}));
  BOOST_REQUIRE(source.waitForLine("kv: serving", 30s));

  BackgroundWriter writer(net, "s", 400);
  writer.waitUntilDone(100);
  auto stats = control(socket, {{"cmd", "migrate"}, {"to", endpoint}, {"mode", mode}, {"storage", "copy"}});
  int at = writer.done();
  const auto& acknowledged = writer.join();
  BOOST_REQUIRE_MESSAGE(stats["ok"], stats.dump());
  BOOST_TEST_MESSAGE(mode << ": migrated after " << at << " SETs: " << stats.dump());
  BOOST_TEST(at < 400);
  BOOST_TEST(source.wait(10s) == 0);
  BOOST_REQUIRE_EQUAL(acknowledged.size(), 400u);
  BOOST_TEST(firstLostKey(net, acknowledged) == "");

  // The target's disk alone: a guest booted from it replays every SET.
  target.send("poweroff\n");
  BOOST_TEST(target.wait(20s) == 0);
  ChildProcess fresh(net.inside({kTandemBinary, "run", "--kernel", kTestGuest, "--net", "tap=tap1,mac=" + mac, "--disk",
                                 targetImage, "--append", "job=kv ip=10.77.0.2/16 sync=1"}));
  BOOST_REQUIRE(fresh.waitForLine("kv: serving", 30s));
  BOOST_TEST(firstLostKey(net, acknowledged) == "");
  fresh.send("poweroff\n");
  BOOST_TEST(fresh.wait(20s) == 0);
}

BOOST_AUTO_TEST_SUITE_END()
