// OutputGate: what the guest writes in an epoch is shown only when that epoch is released, in
// order, once; frames stay whole.
#include "output/output_gate.hpp"

#include <boost/test/unit_test.hpp>

#include <stdexcept>
#include <string>
#include <vector>

using namespace tandem;

namespace {

struct Recorder final : OutputSink {
  explicit Recorder(uint32_t channel) : OutputSink(channel) {}
  void emit(std::span<const uint8_t> bytes) override { shown.emplace_back(bytes.begin(), bytes.end()); }
  std::string all() const {
    std::string s;
    for (const auto& piece : shown) s += piece;
    return s;
  }
  std::vector<std::string> shown;
};

std::span<const uint8_t> bytes(const std::string& s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

}  // namespace

BOOST_AUTO_TEST_SUITE(output_gate)

BOOST_AUTO_TEST_CASE(open_passes_output_straight_through) {
  OutputGate gate;
  Recorder console(0);
  gate.write(console, bytes("tick 1\n"));
  BOOST_TEST(console.all() == "tick 1\n");
}

BOOST_AUTO_TEST_CASE(held_output_shows_epoch_by_epoch_on_release_and_only_once) {
  OutputGate gate;
  Recorder console(0);
  gate.hold();
  gate.write(console, bytes("tick 1\n"));
  gate.write(console, bytes("tick "));
  auto first = gate.closeEpoch(1);
  gate.write(console, bytes("2\n"));
  gate.closeEpoch(2);
  gate.write(console, bytes("tick 3\n"));  // epoch 3, still open
  BOOST_TEST(console.all().empty());
  BOOST_REQUIRE_EQUAL(first.size(), 1u);  // the standby's copy, joined
  BOOST_TEST(std::string(first[0].bytes.begin(), first[0].bytes.end()) == "tick 1\ntick ");
  BOOST_TEST(gate.stats().heldBytes == 21u);

  gate.release(1);
  BOOST_TEST(console.all() == "tick 1\ntick ");
  gate.release(1);  // again: nothing twice
  gate.release(2);
  BOOST_TEST(console.all() == "tick 1\ntick 2\n");
  BOOST_TEST(gate.stats().heldBytes == 7u);
  BOOST_TEST(gate.stats().lastReleasedEpoch == 2u);
}

BOOST_AUTO_TEST_CASE(the_announcement_comes_before_any_byte_and_a_failed_one_shows_nothing) {
  OutputGate gate;
  Recorder console(0);
  gate.hold();
  gate.write(console, bytes("tick 1\n"));
  gate.closeEpoch(1);
  gate.write(console, bytes("tick 2\n"));
  gate.closeEpoch(2);
  BOOST_CHECK_THROW(gate.release(2, [] { throw std::runtime_error("the release record did not go"); }), std::runtime_error);
  BOOST_TEST(console.all().empty());
  BOOST_TEST(gate.stats().heldBytes == 14u);
  BOOST_TEST(gate.stats().lastReleasedEpoch == 0u);
  BOOST_TEST(gate.sealedOutput().size() == 2u);  // still held, for the next standby
  std::string seenBefore = "-";
  gate.release(1, [&] { seenBefore = console.all(); });
  BOOST_TEST(seenBefore == "");
  BOOST_TEST(console.all() == "tick 1\n");
  gate.release(2);
  BOOST_TEST(console.all() == "tick 1\ntick 2\n");
}

BOOST_AUTO_TEST_CASE(a_later_release_shows_every_earlier_epoch_in_order) {
  OutputGate gate;
  Recorder console(0);
  gate.hold();
  for (int epoch = 1; epoch <= 3; ++epoch) {
    gate.write(console, bytes(std::to_string(epoch)));
    gate.closeEpoch(static_cast<uint64_t>(epoch));
  }
  auto held = gate.sealedOutput();
  BOOST_TEST(held.size() == 3u);
  gate.release(3);
  BOOST_TEST(console.all() == "123");
}

BOOST_AUTO_TEST_CASE(frames_stay_whole_and_sinks_apart) {
  OutputGate gate;
  Recorder console(0), nic(1);
  gate.hold();
  gate.write(nic, bytes("frame-a"), true);
  gate.write(nic, bytes("frame-b"), true);
  gate.write(console, bytes("x"));
  auto copy = gate.closeEpoch(1);
  BOOST_REQUIRE_EQUAL(copy.size(), 3u);
  BOOST_TEST(copy[0].channel == 1u);
  BOOST_TEST(copy[2].channel == 0u);
  gate.release(1);
  BOOST_TEST((nic.shown == std::vector<std::string>{"frame-a", "frame-b"}));
  BOOST_TEST(console.all() == "x");
}

BOOST_AUTO_TEST_CASE(opening_a_held_gate_shows_everything_held_first) {
  OutputGate gate(10);
  Recorder console(0);
  gate.hold();
  gate.write(console, bytes("0123456789ab"));
  BOOST_TEST(gate.overLimit());
  gate.closeEpoch(1);
  gate.write(console, bytes("c"));
  gate.open();
  gate.write(console, bytes("d"));
  BOOST_TEST(console.all() == "0123456789abcd");
  BOOST_TEST(!gate.overLimit());
}

BOOST_AUTO_TEST_SUITE_END()
