// MachineState <-> Cap'n Proto, and the Serial's own save/restore, without KVM.
#include "state/machine_state.hpp"

#include <boost/test/unit_test.hpp>

#include <random>

#include "base/error.hpp"

using namespace tandem;

namespace {

template <typename T>
void scramble(T& value, std::mt19937& random) {
  auto* bytes = reinterpret_cast<uint8_t*>(&value);
  for (size_t i = 0; i < sizeof(T); ++i) bytes[i] = static_cast<uint8_t>(random());
}

// A state with every field set to something other than its default.
MachineState arbitraryState(uint32_t cpus) {
  std::mt19937 random(7);
  MachineState s;
  s.memorySize = 256 * kMiB;
  s.regions = GuestMemory::layout(s.memorySize);
  s.cmdline = "job=counter rate=10";
  for (uint32_t i = 0; i < cpus; ++i) {
    kvm::VcpuState v;
    v.mpState = 1;
    scramble(v.regs, random);
    scramble(v.sregs, random);
    scramble(v.xsave, random);
    scramble(v.xcrs, random);
    scramble(v.debugRegs, random);
    scramble(v.lapic, random);
    scramble(v.events, random);
    for (uint32_t m = 0; m < 40; ++m) v.msrs.push_back(kvm_msr_entry{0xc0000000 + m, 0, random() * 977ull});
    s.vcpus.push_back(v);
  }
  scramble(s.vm.picMaster, random);
  scramble(s.vm.picSlave, random);
  scramble(s.vm.ioapic, random);
  scramble(s.vm.pit, random);
  s.vm.clockNs = 123456789;
  s.serial.ier = 0x05;
  s.serial.lcr = 0x03;
  s.serial.mcr = 0x0b;
  s.serial.scr = 0x5a;
  s.serial.fcr = 0xc1;
  s.serial.dll = 0x01;
  s.serial.thrEmptyInterrupt = true;
  s.serial.rx = {'e', 'c', 'h', 'o', '\n'};
  return s;
}

bool isBadInput(const Error& e) { return e.kind() == ErrorKind::BadInput; }

}  // namespace

BOOST_AUTO_TEST_SUITE(machine_state)

BOOST_AUTO_TEST_CASE(every_field_survives_encode_and_decode) {
  for (uint32_t cpus : {1u, 2u, 8u}) {
    MachineState before = arbitraryState(cpus);
    MachineState after = decodeMachineState(encodeMachineState(before));
    BOOST_TEST((after == before));
    BOOST_TEST(after.vcpus.size() == cpus);
  }
}

BOOST_AUTO_TEST_CASE(a_changed_field_is_noticed_by_the_comparison) {
  MachineState a = arbitraryState(2);
  MachineState b = a;
  b.vcpus[1].msrs[3].data ^= 1;
  BOOST_TEST(!(a == b));
  b = a;
  b.serial.rx.push_back('x');
  BOOST_TEST(!(a == b));
}

BOOST_AUTO_TEST_CASE(garbage_is_refused_as_bad_input) {
  std::vector<uint8_t> garbage(256, 0xab);
  BOOST_CHECK_EXCEPTION(decodeMachineState(garbage), Error, isBadInput);
  auto encoded = encodeMachineState(arbitraryState(1));
  encoded.resize(encoded.size() / 2);
  BOOST_CHECK_EXCEPTION(decodeMachineState(encoded), Error, isBadInput);
  std::vector<uint8_t> odd(13, 0);
  BOOST_CHECK_EXCEPTION(decodeMachineState(odd), Error, isBadInput);
}

BOOST_AUTO_TEST_CASE(serial_state_round_trips_through_a_fresh_device) {
  struct Discard : dev::ConsoleOutput {
    void write(std::span<const uint8_t>) override {}
  } output;
  std::vector<bool> irq;
  dev::Serial first(output, [&](bool level) { irq.push_back(level); }, [] {});
  auto write = [&](dev::Serial& s, uint16_t offset, uint8_t value) { s.write(offset, std::span(&value, 1)); };
  write(first, 3, 0x83);
  write(first, 0, 0x03);
  write(first, 3, 0x03);
  write(first, 1, 0x01);
  write(first, 7, 0x42);
  const uint8_t typed[] = {'h', 'i', '\n'};
  first.receive(typed);
  auto saved = decodeMachineState(encodeMachineState([&] {
                                    MachineState m = arbitraryState(1);
                                    m.serial = first.save();
                                    return m;
                                  }()))
                   .serial;

  std::vector<bool> restoredIrq;
  dev::Serial second(output, [&](bool level) { restoredIrq.push_back(level); }, [] {});
  second.restore(saved);
  BOOST_TEST((second.save() == first.save()));
  // The interrupt line is recomputed: data is waiting and its interrupt is enabled.
  BOOST_REQUIRE(!restoredIrq.empty());
  BOOST_TEST(restoredIrq.back() == true);
  uint8_t byte = 0;
  second.read(0, std::span(&byte, 1));
  BOOST_TEST(byte == 'h');
}

BOOST_AUTO_TEST_SUITE_END()
