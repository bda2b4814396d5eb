// Every component's state under KVM: save, encode, decode, restore into a fresh machine, save
// again, compare. Then the restored machine runs on from where the first one stopped.
#include <boost/test/unit_test.hpp>

#include <cstring>
#include <thread>

#include "devices/console.hpp"
#include "machine/machine.hpp"
#include "support/console_pipes.hpp"
#include "support/paths.hpp"

using namespace tandem;
using namespace std::chrono_literals;

namespace {

constexpr uint32_t kMsrTsc = 0x10;

// Fields that move with wall-clock time on their own: the TSC, kvmclock, and the host time at
// which the PIT last loaded a count. Checked separately; blanked here so the rest compares exactly.
MachineState withoutClocks(MachineState s) {
  for (auto& v : s.vcpus)
    for (auto& m : v.msrs)
      if (m.index == kMsrTsc) m.data = 0;
  s.vm.clockNs = 0;
  for (auto& c : s.vm.pit.channels) c.count_load_time = 0;
  return s;
}

uint64_t tscOf(const kvm::VcpuState& v) {
  for (const auto& m : v.msrs)
    if (m.index == kMsrTsc) return m.data;
  BOOST_FAIL("the saved MSRs have no TSC");
  return 0;
}

// How the state is taken and put back: read by the thread that pauses the machine, or by each
// vCPU's own thread as it parks (REGS, SREGS and VCPU_EVENTS from the run page); written in full
// into a fresh machine, or only where it differs from a prepared machine's vCPUs.
struct Way {
  Machine::PauseFor pause;
  bool preparedTarget;
};

void roundTrip(Way way) {
  MachineConfig config;
  config.kernel = test::kTestGuest;
  config.cpus = 2;
  config.memory = 64 * kMiB;
  config.cmdline = "job=counter rate=50";

  test::ConsolePipes firstPipes;
  auto firstConsole = dev::fdConsole(firstPipes.in[0], firstPipes.out[1], "first");
  Machine first(config, *firstConsole);
  first.start();
  std::this_thread::sleep_for(500ms);
  first.pause(way.pause);
  MachineState saved = first.capture();
  if (way.pause == Machine::PauseFor::Capture) {
    // A second capture in the same pause reads the vCPUs with their own ioctls: what the vCPU
    // threads saved as they parked (registers from the run page) is the same.
    MachineState read = first.capture();
    auto a = withoutClocks(read), b = withoutClocks(saved);
    for (size_t i = 0; i < saved.vcpus.size(); ++i) {
      const auto &x = a.vcpus[i], &y = b.vcpus[i];
      if (x == y) continue;
      std::string differs;
      for (size_t m = 0; m < std::min(x.msrs.size(), y.msrs.size()); ++m)
        if (x.msrs[m].index != y.msrs[m].index || x.msrs[m].data != y.msrs[m].data) differs += " msr " + std::to_string(x.msrs[m].index);
      BOOST_ERROR("vcpu " << i << " differs:" << (x.mpState == y.mpState ? "" : " mp") << (kvm::sameBytes(x.regs, y.regs) ? "" : " regs")
                          << (kvm::sameBytes(x.sregs, y.sregs) ? "" : " sregs") << (x.xsave == y.xsave ? "" : " xsave")
                          << (kvm::sameBytes(x.xcrs, y.xcrs) ? "" : " xcrs") << (kvm::sameBytes(x.debugRegs, y.debugRegs) ? "" : " debug")
                          << (kvm::sameBytes(x.lapic, y.lapic) ? "" : " lapic") << (kvm::sameBytes(x.events, y.events) ? "" : " events")
                          << (x.msrs.size() == y.msrs.size() ? "" : " msr count") << differs);
    }
  }
  std::string printed = firstPipes.drain();
  BOOST_REQUIRE(printed.find("tick 5\r\n") != std::string::npos);
  BOOST_REQUIRE_EQUAL(saved.vcpus.size(), 2u);
  BOOST_TEST(saved.vcpus[0].msrs.size() > 10u);
  BOOST_TEST(saved.vcpus[0].regs.rip >= 0x100000u);  // in the guest, not at a boot stub

  MachineState decoded = decodeMachineState(encodeMachineState(saved));
  BOOST_REQUIRE((decoded == saved));

  test::ConsolePipes secondPipes;
  auto secondConsole = dev::fdConsole(secondPipes.in[0], secondPipes.out[1], "second");
  Machine second(config, *secondConsole, Machine::ForRestore{});
  if (way.preparedTarget) second.prepareStart();
  std::memcpy(second.memory().hostBase(), first.memory().hostBase(), first.memory().size());
  second.restore(decoded);
  MachineState again = second.capture();

  BOOST_TEST((withoutClocks(again).serial == withoutClocks(saved).serial));
  BOOST_TEST((withoutClocks(again).vm == withoutClocks(saved).vm));
  for (size_t i = 0; i < saved.vcpus.size(); ++i) {
    BOOST_TEST_CONTEXT("vcpu " << i) {
      auto a = withoutClocks(again).vcpus[i], b = withoutClocks(saved).vcpus[i];
      BOOST_TEST(a.mpState == b.mpState);
      BOOST_TEST(kvm::sameBytes(a.regs, b.regs));
      BOOST_TEST(kvm::sameBytes(a.sregs, b.sregs));
      BOOST_TEST((a.xsave == b.xsave));
      BOOST_TEST(kvm::sameBytes(a.xcrs, b.xcrs));
      BOOST_TEST(kvm::sameBytes(a.debugRegs, b.debugRegs));
      BOOST_TEST(kvm::sameBytes(a.lapic, b.lapic));
      BOOST_TEST(kvm::sameBytes(a.events, b.events));
      BOOST_REQUIRE_EQUAL(a.msrs.size(), b.msrs.size());
      for (size_t m = 0; m < a.msrs.size(); ++m)
        BOOST_TEST(a.msrs[m].data == b.msrs[m].data, "MSR 0x" << std::hex << a.msrs[m].index);
      // The TSC goes on from where it was, not from zero and not from the host's.
      uint64_t advanced = tscOf(again.vcpus[i]) - tscOf(saved.vcpus[i]);
      BOOST_TEST(advanced < 10'000'000'000ull);
    }
  }
  BOOST_TEST((withoutClocks(again) == withoutClocks(saved)));

  // And the restored machine continues the count where the first one stopped.
  // (the last whole line: the pause may have come in the middle of the next one)
  size_t lineEnd = printed.rfind("\r\n");
  size_t lastTick = printed.rfind("tick ", lineEnd);
  BOOST_REQUIRE(lineEnd != std::string::npos && lastTick != std::string::npos);
  uint64_t last = std::stoull(printed.substr(lastTick + 5, lineEnd - lastTick - 5));
  second.start();
  std::this_thread::sleep_for(300ms);
  second.pause();
  std::string continued = secondPipes.drain();
  // (the pause may have come in the middle of a line: its rest comes from the restored machine)
  std::string partial = printed.substr(printed.rfind('\n') + 1);
  BOOST_TEST((partial + continued).starts_with("tick " + std::to_string(last + 1) + "\r\n"), "restored output: " << partial << continued);
  second.stop();
  second.wait();
  first.stop();
  first.wait();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(state_roundtrip)

BOOST_AUTO_TEST_CASE(every_component_saves_restores_and_saves_the_same) {
  roundTrip({Machine::PauseFor::Holding, false});
}

BOOST_AUTO_TEST_CASE(the_vcpu_threads_save_as_they_park_and_a_prepared_machine_takes_what_differs) {
  roundTrip({Machine::PauseFor::Capture, true});
}

BOOST_AUTO_TEST_SUITE_END()
