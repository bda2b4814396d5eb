// Bad input to tandem run: one sentence on stderr, exit code 2, nothing left behind.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <filesystem>

#include "support/tandem_run.hpp"
#include "support/tiny_elf.hpp"

using namespace tandem::test;

namespace {

// Runs tandem with args; checks exit code 2 and a single stderr line containing every word.
void expectRefused(const std::vector<std::string>& args, const std::vector<std::string>& words) {
  auto tandem = startTandem(args);
  auto status = tandem->wait(20s);
  std::string err = tandem->stderrText();
  BOOST_TEST_CONTEXT("tandem " << args[0] << " ... stderr: " << err) {
    BOOST_TEST(status == 2);
    BOOST_TEST(std::count(err.begin(), err.end(), '\n') == 1);
    for (const auto& w : words) BOOST_TEST(err.find(w) != std::string::npos, "stderr names '" << w << "'");
    BOOST_TEST(tandem->lines().empty());
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(bad_input)

BOOST_AUTO_TEST_CASE(missing_kernel) {
  expectRefused({"run", "--kernel", "/nonexistent/guest.elf"}, {"/nonexistent/guest.elf", "No such file"});
}

BOOST_AUTO_TEST_CASE(unreadable_kernel) { expectRefused({"run", "--kernel", "/tmp"}, {"/tmp"}); }

BOOST_AUTO_TEST_CASE(kernel_that_is_not_elf64) {
  std::string path = writeTempFile({'#', '!', '/', 'b', 'i', 'n'}, "notelf");
  expectRefused({"run", "--kernel", path}, {path, "not a usable guest kernel"});
  std::filesystem::remove(path);
}

BOOST_AUTO_TEST_CASE(elf_without_an_entry_note) {
  TinyElfOptions o;
  o.code = {0xf4};
  o.entry64Note = false;
  std::string path = writeTempFile(tinyElf(o), "nonote");
  expectRefused({"run", "--kernel", path}, {path, "entry note"});
  std::filesystem::remove(path);
}

BOOST_AUTO_TEST_CASE(memory_below_16_mib) { expectRefused({"run", "--kernel", kTestGuest, "--memory", "8M"}, {"--memory", "16M"}); }

BOOST_AUTO_TEST_CASE(memory_beyond_the_host) {
  expectRefused({"run", "--kernel", kTestGuest, "--memory", "100000G"}, {"--memory", "more than this host can give"});
}

BOOST_AUTO_TEST_CASE(zero_cpus) { expectRefused({"run", "--kernel", kTestGuest, "--cpus", "0"}, {"--cpus 0"}); }

BOOST_AUTO_TEST_CASE(more_cpus_than_kvm_allows) {
  expectRefused({"run", "--kernel", kTestGuest, "--cpus", "100000"}, {"--cpus 100000", "at most"});
}

BOOST_AUTO_TEST_CASE(unknown_option) { expectRefused({"run", "--frobnicate", "yes"}, {"--frobnicate"}); }

BOOST_AUTO_TEST_CASE(unknown_command) { expectRefused({"fly"}, {"fly"}); }

BOOST_AUTO_TEST_CASE(protection_knobs_without_protect) {
  expectRefused({"run", "--kernel", kTestGuest, "--epoch-ms", "10"}, {"--epoch-ms", "--protect"});
}

BOOST_AUTO_TEST_CASE(protect_to_something_that_is_no_address) {
  expectRefused({"run", "--kernel", kTestGuest, "--protect", "standby:7000"}, {"standby:7000"});
}

BOOST_AUTO_TEST_CASE(failover_sooner_than_a_heartbeat) {
  expectRefused({"run", "--kernel", kTestGuest, "--protect", "tcp://127.0.0.1:7000", "--heartbeat-ms", "50",
                 "--failover-after-ms", "40"},
                {"--failover-after-ms", "--heartbeat-ms"});
}

BOOST_AUTO_TEST_CASE(standby_preallocating_no_guest_size) {
  expectRefused({"standby", "--listen", "tcp://127.0.0.1:7000", "--prealloc", "3M"}, {"--prealloc 3M", "multiple of 2M"});
}

BOOST_AUTO_TEST_CASE(protect_with_a_missing_disk) {
  expectRefused({"run", "--kernel", kTestGuest, "--protect", "tcp://127.0.0.1:7000", "--disk", "/nonexistent/vm.img"},
                {"/nonexistent/vm.img", "No such file"});
}

BOOST_AUTO_TEST_CASE(console_address_already_taken) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  BOOST_REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  BOOST_REQUIRE(::listen(fd, 1) == 0);
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  std::string address = "tcp:127.0.0.1:" + std::to_string(ntohs(sa.sin_port));
  expectRefused({"run", "--kernel", kTestGuest, "--console", address}, {"already in use"});
  ::close(fd);
}

BOOST_AUTO_TEST_CASE(bad_input_leaves_no_console_file_behind) {
  std::string path = "/tmp/tandem-test-refused-" + std::to_string(::getpid()) + ".log";
  std::filesystem::remove(path);
  expectRefused({"run", "--kernel", kTestGuest, "--memory", "8M", "--console", "file:" + path}, {"--memory"});
  BOOST_TEST(!std::filesystem::exists(path));
}

BOOST_AUTO_TEST_SUITE_END()
