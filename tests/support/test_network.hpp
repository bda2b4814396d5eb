// TestNetwork: a private network namespace made with ops/netns/create for one test and deleted
// when the test ends, failed or not. Commands and client threads run inside it.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace tandem::test {

class TestNetwork {
public:
  static constexpr const char* kGuestIp = "10.77.0.2";
  static constexpr const char* kHostIp = "10.77.0.1";

  explicit TestNetwork(int taps = 1) {
    static std::atomic<int> counter{0};
    name_ = "t" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    if (std::system((script("create") + " " + name_ + " " + std::to_string(taps) + " >/dev/null").c_str()) != 0)
      throw std::runtime_error("ops/netns/create failed (needs root and iproute2)");
  }
  ~TestNetwork() { [[maybe_unused]] int rc = std::system((script("delete") + " " + name_).c_str()); }
  TestNetwork(const TestNetwork&) = delete;
  TestNetwork& operator=(const TestNetwork&) = delete;

  std::string ns() const { return "tandem-" + name_; }
  // argv that runs args inside the namespace (exec, so the pid is the command's own).
  std::vector<std::string> inside(const std::vector<std::string>& args) const {
    std::vector<std::string> argv{ipBinary(), "netns", "exec", ns()};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  // Moves the calling thread into the namespace (for client sockets made afterwards).
  void enter() const {
    int fd = ::open(("/var/run/netns/" + ns()).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) throw std::runtime_error("setns into " + ns() + " failed");
    ::close(fd);
  }

  static std::string ipBinary() {
    for (const char* p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"})
      if (std::filesystem::exists(p)) return p;
    throw std::runtime_error("iproute2's ip is not installed (ops/setup installs it)");
  }

private:
  static std::string script(const std::string& what) { return std::string(TANDEM_SOURCE_DIR) + "/ops/netns/" + what; }
  std::string name_;
};

}  // namespace tandem::test
