// Pausing and resuming every vCPU from another thread: the Machine's first-class operation.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "devices/console.hpp"
#include "machine/machine.hpp"
#include "support/paths.hpp"

using namespace tandem;
using namespace std::chrono_literals;

namespace {

// A Machine whose console is a pair of pipes, and a thread that collects its output lines.
class PipedMachine {
public:
  explicit PipedMachine(MachineConfig config) {
    BOOST_REQUIRE(::pipe2(input_, O_CLOEXEC) == 0);
    BOOST_REQUIRE(::pipe2(output_, O_CLOEXEC) == 0);
    console_ = dev::fdConsole(input_[0], output_[1], "test pipes");
    config.kernel = test::kTestGuest;
    machine_ = std::make_unique<Machine>(config, *console_);
    reader_ = std::thread([this] { collect(); });
  }
  ~PipedMachine() {
    machine_->stop();
    machine_->wait();
    machine_.reset();
    console_.reset();  // (it writes through an opening of the pipe of its own)
    ::close(output_[1]);
    reader_.join();
    for (int fd : {input_[0], input_[1], output_[0]}) ::close(fd);
  }

  Machine& machine() { return *machine_; }
  std::vector<std::string> lines() {
    std::lock_guard lock(mutex_);
    return lines_;
  }
  size_t lineCount() {
    std::lock_guard lock(mutex_);
    return lines_.size();
  }
  bool waitForLines(size_t count, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (lineCount() < count)
      if (std::chrono::steady_clock::now() > deadline) return false;
      else std::this_thread::sleep_for(5ms);
    return true;
  }

private:
  void collect() {
    std::string partial;
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(output_[0], buf, sizeof buf);
      if (n <= 0) return;
      for (ssize_t i = 0; i < n; ++i) {
        if (buf[i] == '\r') continue;
        if (buf[i] != '\n') {
          partial.push_back(buf[i]);
          continue;
        }
        std::lock_guard lock(mutex_);
        lines_.push_back(partial);
        partial.clear();
      }
    }
  }

  int input_[2]{-1, -1}, output_[2]{-1, -1};
  std::unique_ptr<dev::Console> console_;
  std::unique_ptr<Machine> machine_;
  std::mutex mutex_;
  std::vector<std::string> lines_;
  std::thread reader_;
};

// Checks that the lines after the ready line are "tick 1", "tick 2", ... with nothing missing or repeated.
void checkTicksConsecutive(const std::vector<std::string>& lines, size_t& ticks) {
  BOOST_REQUIRE(!lines.empty());
  BOOST_TEST(lines[0].starts_with("tandem-guest: ready"));
  ticks = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    BOOST_REQUIRE_MESSAGE(lines[i] == "tick " + std::to_string(ticks + 1),
                          "line " << i << " is '" << lines[i] << "', expected tick " << ticks + 1);
    ++ticks;
  }
}

// Two vCPUs counting 200 ticks a second.
MachineConfig twoVcpuCounter() {
  MachineConfig config;
  config.cpus = 2;
  config.memory = 64 * kMiB;
  config.cmdline = "job=counter rate=200";
  return config;
}

// The guest still ticks after what the test did, and every tick so far came once and in order;
// returns how many there were.
size_t checkStillTickingInOrder(PipedMachine& vm) {
  size_t before = vm.lineCount();
  BOOST_REQUIRE(vm.waitForLines(before + 20, 10s));
  vm.machine().pause();
  size_t ticks = 0;
  checkTicksConsecutive(vm.lines(), ticks);
  vm.machine().resume();
  return ticks;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(pause_resume)

BOOST_AUTO_TEST_CASE(a_hundred_pauses_lose_no_tick_and_repeat_none) {
  PipedMachine vm(twoVcpuCounter());
  vm.machine().start();
  BOOST_REQUIRE(vm.waitForLines(3, 20s));

  std::mt19937 random(12345);
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2 + random() % 15));
    vm.machine().pause();
    BOOST_REQUIRE(vm.machine().paused());
    std::this_thread::sleep_for(std::chrono::milliseconds(random() % 5));
    vm.machine().resume();
  }
  size_t ticks = checkStillTickingInOrder(vm);
  BOOST_TEST_MESSAGE("ticks seen across 100 pauses: " << ticks);
  BOOST_TEST(ticks >= 50u);
}

// A pause whose vCPU threads save their own state can come right after a resume, before they have
// even woken from the last pause: each capture still comes back, with the guest where it is.
BOOST_AUTO_TEST_CASE(captures_in_pauses_right_after_a_resume_come_back) {
  PipedMachine vm(twoVcpuCounter());
  vm.machine().start();
  BOOST_REQUIRE(vm.waitForLines(3, 20s));

  for (int i = 0; i < 300; ++i) {
    vm.machine().pause(Machine::PauseFor::Capture);
    auto capture = std::async(std::launch::async, [&] { return vm.machine().capture(); });
    if (capture.wait_for(5s) != std::future_status::ready) {
      vm.machine().stop();  // its vCPU threads end, and the capture with them
      BOOST_FAIL("the capture in pause " << i << " never came back");
    }
    MachineState state = capture.get();
    BOOST_REQUIRE_EQUAL(state.vcpus.size(), 2u);
    BOOST_TEST(state.vcpus[0].regs.rip >= 0x100000u);  // in the guest
    vm.machine().resume();
    if (i % 4 == 0) std::this_thread::sleep_for(1ms);  // now and then the guest runs in between
  }
  checkStillTickingInOrder(vm);
}

BOOST_AUTO_TEST_CASE(a_paused_guest_prints_nothing_until_resumed) {
  MachineConfig config;
  config.cmdline = "job=counter rate=100";
  PipedMachine vm(config);
  vm.machine().start();
  BOOST_REQUIRE(vm.waitForLines(5, 20s));
  vm.machine().pause();
  size_t frozen = vm.lineCount();
  std::this_thread::sleep_for(300ms);
  BOOST_TEST(vm.lineCount() == frozen);
  vm.machine().resume();
  BOOST_TEST(vm.waitForLines(frozen + 5, 10s));
}

BOOST_AUTO_TEST_CASE(pause_is_idempotent_and_stop_ends_a_paused_machine) {
  MachineConfig config;
  config.cpus = 2;
  config.memory = 64 * kMiB;
  config.cmdline = "job=dirty mib=16 rate=0";
  PipedMachine vm(config);
  vm.machine().start();
  BOOST_REQUIRE(vm.waitForLines(2, 30s));  // ready, working set filled
  vm.machine().pause();
  vm.machine().pause();
  BOOST_TEST(vm.machine().paused());
  vm.machine().stop();
  auto exit = vm.machine().wait();
  BOOST_TEST(static_cast<int>(exit.kind) == static_cast<int>(MachineExit::Kind::Stopped));
}

BOOST_AUTO_TEST_SUITE_END()
