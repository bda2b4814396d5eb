// A standby fed epochs that are replayed, out of order or do not match their Commit, and bytes that
// are no message at all, keeps the epoch it committed: when its primary falls silent, the guest
// goes on from exactly there. The primary here is the test itself, speaking the protocol by hand
// for a guest it runs in this process.
#include <xxhash.h>

#include <boost/test/unit_test.hpp>

#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "codec/page_codec.hpp"
#include "machine/machine.hpp"
#include "state/machine_shape_capnp.hpp"
#include "state/machine_state.hpp"
#include "support/snapshot_helpers.hpp"
#include "transport/heartbeat.hpp"
#include "transport/link.hpp"

using namespace tandem;
using namespace tandem::test;

namespace {

using Clock = std::chrono::steady_clock;

// The console file as lines end in the test: without the serial line's carriage returns.
std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  std::string text = s.str();
  std::erase(text, '\r');
  return text;
}

// A primary by hand: one guest, paused, whose memory and state it sends as the test says.
class HandmadePrimary {
public:
  HandmadePrimary(const std::string& to, const std::string& consolePath)
      : console_(dev::openConsole("file:" + consolePath)),
        machine_(MachineConfig{kTestGuest, "job=counter rate=50", 64 * kMiB, 1, {}, {}}, *console_),
        link_(Link::connect(to)) {
    machine_.start();
    for (auto until = Clock::now() + 20s; readFile(consolePath).find("tick 10\n") == std::string::npos;) {
      if (Clock::now() > until) BOOST_FAIL("the guest in the test did not tick; its console: " << readFile(consolePath));
      std::this_thread::sleep_for(20ms);
    }
    machine_.pause();
    state_ = encodeMachineState(machine_.capture());
    beats_ = std::thread([this] {
      Heartbeat heartbeat(*link_.urgent, 20ms);
      while (!silent_) {
        link_.urgent->setSession(session_);
        heartbeat.beatIfDue();
        link_.urgent->receive(5ms);
      }
    });
  }
  ~HandmadePrimary() {
    silent_ = true;
    beats_.join();
    machine_.stop();
    machine_.wait();
  }
  // From now on no heartbeat: the standby counts this primary dead after its failover time.
  void fallSilent() { silent_ = true; }

  // Hello for a new session, answered Welcome; then the initial sync of every page that is not zero.
  void openSession() {
    session_ = std::random_device{}() | 1;
    link_.bulk->setSession(session_);  // (the heartbeat thread sets the urgent channel's)
    capnp::MallocMessageBuilder message;
    auto hello = link_.bulk->start(message).initHello();
    hello.setMode(schema::Mode::REPLICATE);
    hello.setMemorySize(machine_.config().memory);
    hello.setCpus(1);
    hello.setGeneration(1);
    hello.setHeartbeatMs(20);
    hello.setFailoverAfterMs(1000);
    toCapnp(machine_.shape(), hello.initShape());
    BOOST_REQUIRE(link_.bulk->send(message));
    BOOST_REQUIRE(expect("welcome").isWelcome());
    std::vector<uint64_t> pages;
    GuestMemory& memory = machine_.memory();
    for (uint64_t p = 0; p < memory.pageCount(); ++p)
      if (!codec::isZeroPage(memory.hostBase() + p * kPageSize)) pages.push_back(p);
    for (size_t at = 0; at < pages.size(); at += 256)
      sendPages(0, std::span(pages).subspan(at, std::min<size_t>(256, pages.size() - at)), nullptr);
    capnp::MallocMessageBuilder end;
    link_.bulk->start(end).setRoundEnd(0);
    BOOST_REQUIRE(link_.bulk->send(end));
    BOOST_REQUIRE(expect("round ack").isRoundAck());
  }

  // Pages{epoch} with the given pages' bytes; `corrupt` (if given) replaces what one page says.
  XXH64_hash_t sendPages(uint64_t epoch, std::span<const uint64_t> pages, const uint8_t* corrupt) {
    capnp::MallocMessageBuilder message;
    auto out = link_.bulk->start(message).initPages();
    out.setEpoch(epoch);
    auto list = out.initPages(static_cast<unsigned>(pages.size()));
    std::vector<uint8_t> blob;
    XXH3_state_t* digest = XXH3_createState();
    XXH3_64bits_reset(digest);
    for (unsigned i = 0; i < pages.size(); ++i) {
      const uint8_t* bytes = corrupt ? corrupt : machine_.memory().hostBase() + pages[i] * kPageSize;
      uint64_t frame = machine_.memory().gpaOfPage(pages[i]).value / kPageSize;
      XXH3_64bits_update(digest, &frame, sizeof frame);
      XXH3_64bits_update(digest, bytes, kPageSize);
      list[i].setFrame(frame);
      list[i].setEncoding(schema::Encoding::RAW);
      list[i].setOffset(static_cast<uint32_t>(blob.size()));
      list[i].setLength(kPageSize);
      blob.insert(blob.end(), bytes, bytes + kPageSize);
    }
    out.setBlob(capnp::Data::Reader(blob.data(), blob.size()));
    BOOST_REQUIRE(link_.bulk->send(message));
    auto value = XXH3_64bits_digest(digest);
    XXH3_freeState(digest);
    return value;
  }

  void sendCommit(uint64_t epoch, uint64_t pageCount, XXH64_hash_t digest) {
    capnp::MallocMessageBuilder message;
    auto commit = link_.bulk->start(message).initCommit();
    commit.setEpoch(epoch);
    commit.setPageCount(pageCount);
    commit.setDigest(digest);
    commit.setState(capnp::Data::Reader(state_.data(), state_.size()));
    BOOST_REQUIRE(link_.bulk->send(message));
  }

  // The standby's next answer on the bulk channel (BOOST_REQUIRE'd within 10 s).
  schema::Envelope::Reader expect(const char* what) {
    for (auto until = Clock::now() + 10s; Clock::now() < until;) {
      Received r = link_.bulk->receive(100ms);
      if (r.kind != Received::Kind::Message) continue;
      last_ = std::move(r.message);
      return last_->envelope();
    }
    BOOST_FAIL("the standby sent no " << what);
    throw;  // (not reached)
  }
  // Whether the standby says anything on the bulk channel within `wait`.
  bool quietFor(std::chrono::milliseconds wait) { return link_.bulk->receive(wait).kind != Received::Kind::Message; }

  GuestMemory& memory() { return machine_.memory(); }

private:
  std::unique_ptr<dev::Console> console_;
  Machine machine_;
  Link link_;
  std::vector<uint8_t> state_;
  std::atomic<uint64_t> session_{0};
  std::unique_ptr<Incoming> last_;
  std::atomic<bool> silent_{false};
  std::thread beats_;
};

uint64_t counterOf(const nlohmann::json& status, const char* key) { return status["replication"].value(key, uint64_t{0}); }

}  // namespace

BOOST_AUTO_TEST_SUITE(hostile_primary)

BOOST_AUTO_TEST_CASE(replayed_out_of_order_and_forged_epochs_leave_the_committed_one_as_it_was) {
  TempDir tmp("hostile");
  std::string at = "tcp://127.0.0.1:" + std::to_string(32400 + 4 * (::getpid() % 25));  // (failover uses 30000-32399)
  std::string socket = tmp / "s.sock";
  auto standby = startTandem({"standby", "--listen", at, "--control", socket});
  HandmadePrimary primary(at, tmp / "guest.log");

  // Session 1: the sync, then epoch 1 (no pages changed) is committed and acknowledged.
  primary.openSession();
  primary.sendCommit(1, 0, XXH3_64bits(nullptr, 0));
  auto ack = primary.expect("ack");
  BOOST_REQUIRE(ack.isAck());
  BOOST_TEST(ack.getAck() == 1u);

  // Every page of the guest's memory overwritten with 0xee: applied, the guest could not go on.
  std::vector<uint8_t> garbage(kPageSize, 0xee);
  std::vector<uint64_t> all(primary.memory().pageCount());
  for (uint64_t p = 0; p < all.size(); ++p) all[p] = p;

  // A replay of epoch 1: ignored, the session goes on.
  primary.sendCommit(1, 0, XXH3_64bits(nullptr, 0));
  BOOST_TEST(primary.quietFor(300ms));
  // Epoch 3 where 2 is due (its pages and digest in order): refused, the session ends.
  primary.sendPages(3, std::span(all).subspan(0, 1), garbage.data());
  primary.sendCommit(3, 1, 0);
  auto refusal = primary.expect("refusal");
  BOOST_REQUIRE(refusal.isRefusal());
  BOOST_TEST((refusal.getRefusal().getReason() == schema::RefusalReason::BAD_EPOCH));

  // Session 2: a whole epoch of garbage whose Commit's digest is not that of its pages: refused.
  primary.openSession();
  for (size_t i = 0; i < all.size(); i += 256) primary.sendPages(1, std::span(all).subspan(i, 256), garbage.data());
  primary.sendCommit(1, all.size(), 42);
  BOOST_TEST(primary.expect("refusal").isRefusal());

  auto status = control(socket, {{"cmd", "status"}});
  BOOST_TEST(counterOf(status, "committed_epoch") == 1u);
  BOOST_TEST(counterOf(status, "ignored_replays") == 1u);
  BOOST_TEST(counterOf(status, "discarded_epochs") == 2u);

  // The primary falls silent: the standby runs the guest from epoch 1, where the guest in this
  // process stood (its ticks go on from the last one it printed), not from anything sent since.
  primary.fallSilent();
  std::string shown = readFile(tmp / "guest.log");
  std::istringstream lines(shown.substr(0, shown.rfind('\n') + 1));
  uint64_t lastTick = 0;
  for (std::string line; std::getline(lines, line);)
    if (line.starts_with("tick ")) lastTick = tickNumber(line);
  std::string partial = shown.substr(shown.rfind('\n') + 1);  // a line the guest had begun
  auto first = standby->readLine(10s);
  BOOST_REQUIRE_MESSAGE(first.has_value(), "the standby did not take over");
  BOOST_TEST(partial + *first == "tick " + std::to_string(lastTick + 1));
  auto second = standby->readLine(5s);
  BOOST_REQUIRE(second.has_value());
  BOOST_TEST(*second == "tick " + std::to_string(lastTick + 2));
}

BOOST_AUTO_TEST_SUITE_END()
