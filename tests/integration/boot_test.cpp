// tandem run boots the test guest: ready line, console both ways, poweroff, faults, signals.
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <unistd.h>

#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "support/tandem_run.hpp"
#include "support/tiny_elf.hpp"

using namespace tandem::test;
namespace data = boost::unit_test::data;

BOOST_AUTO_TEST_SUITE(boot)

BOOST_DATA_TEST_CASE(ready_line_shows_requested_cpus_and_memory,
                     data::make({1, 2}) * data::make({std::string("64M"), std::string("2G")}), cpus, memory) {
  auto tandem = startTandemRun({"--cpus", std::to_string(cpus), "--memory", memory, "--append", "job=counter rate=1"});
  auto line = tandem->waitForLine("tandem-guest: ready", 20s);
  BOOST_REQUIRE(line);
  // ... and that its jobs run at CPL 3 (native on kvm_pvm), woken by interrupts, at native speed.
  std::string expected = "tandem-guest: ready cpus=" + std::to_string(cpus) + " mem_mb=" + (memory == "64M" ? "64" : "2048") +
                         " cpl=3 irq=1 mips=";
  BOOST_TEST(line->starts_with(expected), *line);
  BOOST_TEST(std::stoull(line->substr(line->find("mips=") + 5)) > 50u, *line);  // emulated: about 1
  tandem->send("poweroff\n");
  BOOST_TEST(tandem->wait(20s) == 0);
  int ready = 0;
  for (const auto& l : tandem->lines()) ready += l.find("tandem-guest: ready") != std::string::npos;
  BOOST_TEST(ready == 1);
}

BOOST_AUTO_TEST_CASE(console_command_reaches_the_guest_and_its_answer_comes_back) {
  auto tandem = startTandemRun({"--append", "job=counter rate=2"});
  BOOST_REQUIRE(tandem->waitForLine("tandem-guest: ready", 20s));
  tandem->send("echo over and out 42\n");
  auto answer = tandem->waitForLine("echo ", 10s);
  BOOST_REQUIRE(answer);
  BOOST_TEST(*answer == "echo over and out 42");
}

BOOST_AUTO_TEST_CASE(an_exception_in_the_guest_prints_one_line_and_ends_it_with_a_failure) {
  auto tandem = startTandemRun({"--append", "job=counter rate=5"});
  BOOST_REQUIRE(tandem->waitForLine("tick 1", 20s));
  tandem->send("fault\n");  // an invalid instruction at CPL 3
  auto line = tandem->waitForLine("tandem-guest: exception", 10s);
  BOOST_REQUIRE(line);
  BOOST_TEST(line->starts_with("tandem-guest: exception vector=6 error=0x0 rip=0x"), *line);
  BOOST_TEST(line->ends_with(" cpl=3"), *line);
  BOOST_TEST(tandem->wait(10s) == 1);
}

BOOST_AUTO_TEST_CASE(the_guest_can_poll_instead_of_taking_interrupts) {
  auto tandem = startTandemRun({"--append", "job=counter rate=20 irq=0"});
  auto line = tandem->waitForLine("tandem-guest: ready", 20s);
  BOOST_REQUIRE(line);
  BOOST_TEST(line->find(" cpl=3 irq=0 ") != std::string::npos, *line);
  BOOST_REQUIRE(tandem->waitForLine("tick 3", 20s));
  tandem->send("stats\n");
  auto stats = tandem->waitForLine("stats interrupts", 10s);
  BOOST_REQUIRE(stats);
  BOOST_TEST(stats->starts_with("stats interrupts mode=poll taken=0 "), *stats);
  tandem->send("poweroff\n");
  BOOST_TEST(tandem->wait(10s) == 0);
}

BOOST_AUTO_TEST_CASE(poweroff_ends_tandem_run_with_exit_code_zero) {
  auto tandem = startTandemRun({"--append", "job=counter rate=10"});
  BOOST_REQUIRE(tandem->waitForLine("tick 3", 20s));
  tandem->send("poweroff\n");
  BOOST_TEST(tandem->wait(10s) == 0);
  BOOST_TEST(tandem->stderrText() == "");
}

BOOST_DATA_TEST_CASE(dirty_then_verify_answers_ok, data::make({1, 2}), cpus) {
  auto tandem = startTandemRun({"--cpus", std::to_string(cpus), "--memory", "256M", "--append",
                                "job=dirty mib=64 rate=20000"});
  BOOST_REQUIRE(tandem->waitForLine("dirty: working set filled pages=16384", 60s));
  std::this_thread::sleep_for(1s);  // let it dirty pages for a while
  tandem->send("stats\n");
  auto stats = tandem->waitForLine("stats job=dirty", 10s);
  BOOST_REQUIRE(stats);
  auto written = std::stoull(stats->substr(stats->find("written=") + 8));
  BOOST_TEST(written > 1000u);
  tandem->send("verify\n");
  auto verdict = tandem->waitForLine("verify", 60s);
  BOOST_REQUIRE(verdict);
  BOOST_TEST(*verdict == "verify ok pages=16384");
  tandem->send("poweroff\n");
  BOOST_TEST(tandem->wait(10s) == 0);
}

BOOST_AUTO_TEST_CASE(sigterm_stops_the_guest_in_order) {
  auto tandem = startTandemRun({"--append", "job=counter rate=10"});
  BOOST_REQUIRE(tandem->waitForLine("tick 1", 20s));
  tandem->kill(SIGTERM);
  BOOST_TEST(tandem->wait(10s) == 0);
}

BOOST_AUTO_TEST_CASE(file_console_receives_the_output) {
  std::string path = "/tmp/tandem-test-console-" + std::to_string(::getpid()) + ".log";
  std::filesystem::remove(path);
  {
    auto tandem = startTandemRun({"--console", "file:" + path, "--append", "job=counter rate=20"});
    std::this_thread::sleep_for(3s);
    tandem->kill(SIGTERM);
    BOOST_TEST(tandem->wait(10s) == 0);
  }
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::filesystem::remove(path);
  BOOST_TEST(text.str().find("tandem-guest: ready cpus=1 mem_mb=256") != std::string::npos);
  BOOST_TEST(text.str().find("tick 5\r\n") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(tcp_console_serves_a_client_both_ways) {
  int port = 19000 + ::getpid() % 1000;  // below the ranges of the migration, network and chaos suites
  auto tandem = startTandemRun({"--console", "tcp:127.0.0.1:" + std::to_string(port), "--append", "job=counter rate=5"});
  int fd = -1;
  for (int attempt = 0; attempt < 200 && fd < 0; ++attempt) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
      ::close(fd);
      fd = -1;
      std::this_thread::sleep_for(50ms);
    }
  }
  BOOST_REQUIRE(fd >= 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string received;
  auto readUntil = [&](const std::string& needle) {
    char buf[512];
    while (received.find(needle) == std::string::npos) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return false;
      received.append(buf, static_cast<size_t>(n));
    }
    return true;
  };
  BOOST_TEST(readUntil("tandem-guest: ready"));  // output from before the client came is kept
  const char command[] = "echo via tcp\n";
  BOOST_REQUIRE(::send(fd, command, sizeof command - 1, 0) == static_cast<ssize_t>(sizeof command - 1));
  BOOST_TEST(readUntil("echo via tcp\r\n"));
  ::close(fd);
  tandem->kill(SIGTERM);
  BOOST_TEST(tandem->wait(10s) == 0);
}

BOOST_AUTO_TEST_CASE(a_guest_that_runs_an_unemulatable_instruction_is_reported_with_its_rip) {
  TinyElfOptions o;
  o.code = {0x90, 0x90, 0xcc};  // nop, nop, int3: kvm_pvm cannot emulate int3
  std::string path = writeTempFile(tinyElf(o), "int3");
  auto tandem = startTandem({"run", "--kernel", path});
  auto status = tandem->wait(30s);
  std::filesystem::remove(path);
  BOOST_TEST(status == 1);
  std::string err = tandem->stderrText();
  BOOST_TEST_MESSAGE("stderr: " << err);
  BOOST_TEST(err.find("rip=0x10000") != std::string::npos);
  BOOST_TEST(std::count(err.begin(), err.end(), '\n') == 1);
}

BOOST_AUTO_TEST_CASE(a_guest_that_triple_faults_is_reported_with_its_rip) {
  TinyElfOptions o;
  o.code = {0x0f, 0x0b};  // ud2 with no IDT: #UD, #DF, shutdown
  std::string path = writeTempFile(tinyElf(o), "ud2");
  auto tandem = startTandem({"run", "--kernel", path});
  auto status = tandem->wait(30s);
  std::filesystem::remove(path);
  BOOST_TEST(status == 1);
  std::string err = tandem->stderrText();
  BOOST_TEST_MESSAGE("stderr: " << err);
  BOOST_TEST(err.find("rip=0x") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_kernel_with_only_a_pvh_note_starts_in_protected_mode_with_its_start_info) {
  TinyElfOptions o;
  o.entry64Note = false;
  o.pvhNote = true;
  o.code = {
      0x81, 0x3b, 0x78, 0xc5, 0x6e, 0x33,  // cmp dword [ebx], PVH start info magic
      0x75, 0x04,                          // jne bad
      0xb0, 0x00,                          // mov al, 0
      0xeb, 0x02,                          // jmp out
      0xb0, 0x07,                          // bad: mov al, 7
      0x66, 0xba, 0x01, 0x05,              // out: mov dx, 0x501 (exit port)
      0xee,                                // out dx, al
      0xeb, 0xfe,                          // jmp $
  };
  std::string path = writeTempFile(tinyElf(o), "pvh");
  auto tandem = startTandem({"run", "--kernel", path, "--memory", "16M"});
  auto status = tandem->wait(30s);
  std::filesystem::remove(path);
  BOOST_TEST(status == 0, "exit " << status << ", stderr: " << tandem->stderrText());
}

BOOST_AUTO_TEST_CASE(a_guest_powering_off_with_a_failure_status_makes_run_fail) {
  TinyElfOptions o;
  o.code = {0x66, 0xba, 0x01, 0x05, 0xb0, 0x03, 0xee, 0xeb, 0xfe};  // mov dx, 0x501; mov al, 3; out dx, al
  std::string path = writeTempFile(tinyElf(o), "status3");
  auto tandem = startTandem({"run", "--kernel", path});
  auto status = tandem->wait(30s);
  std::filesystem::remove(path);
  BOOST_TEST(status == 1);
  BOOST_TEST(tandem->stderrText().find("status 3") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
