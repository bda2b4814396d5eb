// A migration whose target took the machine state and then said nothing: the target may run the
// guest, so the source must not. The target here is the test itself, speaking the protocol by
// hand: it takes everything up to Done and never answers Running.
#include <signal.h>

#include <boost/test/unit_test.hpp>

#include <atomic>
#include <thread>

#include "support/protected_pair.hpp"
#include "transport/link.hpp"

using namespace tandem;
using namespace tandem::test;

namespace {

// Listens like a standby, welcomes the source, acknowledges its rounds, and falls silent at Done.
class SilentTarget {
public:
  explicit SilentTarget(const std::string& at) : link_(Link::listen(at)) {
    thread_ = std::thread([this] {
      while (!stop_) {
        Received r = link_.bulk->receive(std::chrono::milliseconds(20));
        if (r.kind != Received::Kind::Message) continue;
        auto envelope = r.message->envelope();
        capnp::MallocMessageBuilder answer;
        if (envelope.isHello()) {
          link_.setSession(envelope.getSession());
          link_.bulk->start(answer).setWelcome();
          link_.bulk->send(answer);
        } else if (envelope.isRoundEnd()) {
          link_.bulk->start(answer).setRoundAck(envelope.getRoundEnd());
          link_.bulk->send(answer);
        } else if (envelope.isDone()) {
          doneSeen_ = true;  // and nothing more: as if this host died right after receiving it
        }
      }
    });
  }
  ~SilentTarget() {
    stop_ = true;
    thread_.join();
  }
  bool doneSeen() const { return doneSeen_; }

private:
  Link link_;
  std::atomic<bool> stop_{false}, doneSeen_{false};
  std::thread thread_;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(silent_target)

// On main before this change: after 10 s without Running the source resumed its guest, which the
// target may have been running already (a forked guest).
BOOST_AUTO_TEST_CASE(a_source_that_sent_done_and_heard_nothing_keeps_the_guest_paused_until_an_operator_decides) {
  TempDir tmp("silenttarget");
  ChainEndpoints at(15000);
  std::string socket = tmp / "src.sock";
  SilentTarget target(at[0]);
  auto source = startTandemRun({"--append", "job=counter rate=50", "--memory", "64M", "--control", socket});
  BOOST_REQUIRE(source->waitForLine("tick 5", 20s));
  auto migrate = startTandem({"migrate", "--control", socket, "--to", at[0]});
  BOOST_TEST(migrate->wait(30s) == 1);
  BOOST_TEST(target.doneSeen());
  std::string said = migrate->stderrText();
  BOOST_TEST(said.find("stays paused here") != std::string::npos, said);

  // Paused, and says so: no tick for a second.
  auto status = control(socket, {{"cmd", "status"}});
  BOOST_TEST(status.value("state", "") == "paused", status.dump());
  BOOST_TEST(status["migration"].value("phase", "") == "undecided", status.dump());
  TickStream console;
  console.readFor(*source, 300ms);  // what it printed before the pause
  auto before = console.count;
  console.readFor(*source, 1s);
  BOOST_TEST(console.count == before);

  // The operator checked the target: it does not run the guest, so it resumes here.
  BOOST_TEST(control(socket, {{"cmd", "resume"}}).value("ok", false));
  BOOST_TEST(console.readUntilTick(*source, 5s).has_value());
  BOOST_TEST(console.problem == "");
}

BOOST_AUTO_TEST_SUITE_END()
