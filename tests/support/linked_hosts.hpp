// LinkedHosts: the two hosts of an HA pair as two private network namespaces joined by one veth
// link (10.77.1.1 on the primary's side, 10.77.1.2 on the standby's). cut() takes the link down
// as a pulled cable would (nothing is reset: packets just stop), heal() brings it back. Both
// namespaces are deleted when the test ends, failed or not.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/test_network.hpp"

namespace tandem::test {

class LinkedHosts {
public:
  static constexpr const char* kPrimaryIp = "10.77.1.1";
  static constexpr const char* kStandbyIp = "10.77.1.2";

  LinkedHosts() {
    static std::atomic<int> counter{0};
    std::string name = std::to_string(::getpid()) + "-" + std::to_string(counter++);
    primary_ = "tandem-p" + name;
    standby_ = "tandem-s" + name;
    try {
      run("netns add " + primary_);
      run("netns add " + standby_);
      run("-n " + primary_ + " link set lo up");
      run("-n " + standby_ + " link set lo up");
      run("-n " + primary_ + " link add link0 type veth peer name link0 netns " + standby_);
      run("-n " + primary_ + " addr add " + kPrimaryIp + "/24 dev link0");
      run("-n " + standby_ + " addr add " + kStandbyIp + "/24 dev link0");
      heal();
      run("-n " + standby_ + " link set link0 up");
    } catch (...) {
      remove();
      throw;
    }
  }
  ~LinkedHosts() { remove(); }
  LinkedHosts(const LinkedHosts&) = delete;
  LinkedHosts& operator=(const LinkedHosts&) = delete;

  std::vector<std::string> onPrimary(const std::vector<std::string>& args) const { return inside(primary_, args); }
  std::vector<std::string> onStandby(const std::vector<std::string>& args) const { return inside(standby_, args); }
  void cut() { run("-n " + primary_ + " link set link0 down"); }
  void heal() { run("-n " + primary_ + " link set link0 up"); }

private:
  static void run(const std::string& args) {
    std::string command = TestNetwork::ipBinary() + " " + args;
    if (std::system(command.c_str()) != 0) throw std::runtime_error("failed: " + command);
  }
  static std::vector<std::string> inside(const std::string& ns, const std::vector<std::string>& args) {
    std::vector<std::string> argv{TestNetwork::ipBinary(), "netns", "exec", ns};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  void remove() {
    for (const auto& ns : {primary_, standby_})
      if (!ns.empty()) [[maybe_unused]] int rc = std::system((TestNetwork::ipBinary() + " netns delete " + ns + " 2>/dev/null").c_str());
  }

  std::string primary_, standby_;
};

}  // namespace tandem::test
