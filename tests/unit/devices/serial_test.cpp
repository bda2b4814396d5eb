#include "devices/serial.hpp"

#include <boost/test/unit_test.hpp>

#include <vector>

using namespace tandem::dev;

namespace {

// Collects what the guest transmits: the serial's output side, seen from the host.
struct CollectedOutput : ConsoleOutput {
  std::vector<uint8_t> bytes;
  void write(std::span<const uint8_t> b) override { bytes.insert(bytes.end(), b.begin(), b.end()); }
};

struct SerialFixture {
  CollectedOutput output;
  std::vector<bool> irqLevels;
  int inputs = 0;
  Serial serial{output, [this](bool level) { irqLevels.push_back(level); }, [this] { ++inputs; }};

  uint8_t in(uint16_t offset) {
    uint8_t v = 0;
    serial.read(offset, std::span(&v, 1));
    return v;
  }
  void out(uint16_t offset, uint8_t v) { serial.write(offset, std::span(&v, 1)); }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(serial)

BOOST_FIXTURE_TEST_CASE(transmitted_bytes_reach_the_console_at_once, SerialFixture) {
  BOOST_TEST((in(5) & 0x60) == 0x60);  // THR empty, transmitter empty
  out(0, 'h');
  out(0, 'i');
  BOOST_TEST(std::string(output.bytes.begin(), output.bytes.end()) == "hi");
  BOOST_TEST((in(5) & 0x20) == 0x20);
}

BOOST_FIXTURE_TEST_CASE(received_bytes_are_read_in_order_and_set_data_ready, SerialFixture) {
  BOOST_TEST((in(5) & 1) == 0);
  const uint8_t text[] = {'o', 'k', '\n'};
  BOOST_TEST(serial.receive(text) == 3u);
  BOOST_TEST(inputs == 1);
  BOOST_TEST((in(5) & 1) == 1);
  BOOST_TEST(in(0) == 'o');
  BOOST_TEST(in(0) == 'k');
  BOOST_TEST(in(0) == '\n');
  BOOST_TEST((in(5) & 1) == 0);
}

BOOST_FIXTURE_TEST_CASE(receive_takes_no_more_than_the_buffer_holds, SerialFixture) {
  std::vector<uint8_t> lots(Serial::kRxCapacity + 10, 'x');
  BOOST_TEST(serial.receive(lots) == Serial::kRxCapacity);
  BOOST_TEST(serial.receive(lots) == 0u);
  in(0);
  BOOST_TEST(serial.receive(lots) == 1u);
}

BOOST_FIXTURE_TEST_CASE(divisor_latch_hides_data_and_ier, SerialFixture) {
  out(3, 0x80);  // DLAB
  out(0, 0x01);
  out(1, 0x02);
  BOOST_TEST(in(0) == 0x01);
  BOOST_TEST(in(1) == 0x02);
  out(3, 0x03);
  BOOST_TEST(in(1) == 0x00);
  BOOST_TEST(output.bytes.empty());
}

BOOST_FIXTURE_TEST_CASE(interrupt_line_follows_enabled_conditions, SerialFixture) {
  const uint8_t byte[] = {'a'};
  serial.receive(byte);
  BOOST_TEST(irqLevels.empty());  // IER off: no interrupt
  out(1, 0x01);                    // receive-data interrupt on
  BOOST_REQUIRE(!irqLevels.empty());
  BOOST_TEST(irqLevels.back() == true);
  BOOST_TEST((in(2) & 0x0f) == 0x04);
  in(0);
  BOOST_TEST(irqLevels.back() == false);
  BOOST_TEST((in(2) & 0x01) == 0x01);
}

BOOST_FIXTURE_TEST_CASE(loopback_turns_transmit_into_receive, SerialFixture) {
  out(4, 0x10);
  out(0, 'z');
  BOOST_TEST(output.bytes.empty());
  BOOST_TEST(in(0) == 'z');
}

BOOST_AUTO_TEST_SUITE_END()
