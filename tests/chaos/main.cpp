// Chaos tests kill and cut real tandem processes running the test guest under /dev/kvm. Like the
// integration tests they fail rather than skip without KVM.
#define BOOST_TEST_MODULE tandem_chaos
#include <boost/test/unit_test.hpp>

#include "kvm/system.hpp"

namespace {

struct RequireKvm {
  RequireKvm() {
    if (!tandem::kvm::kvmAvailable())
      throw std::runtime_error("/dev/kvm is not usable here; chaos tests need it (ops/test.sh skips them loudly)");
  }
};

}  // namespace

BOOST_TEST_GLOBAL_FIXTURE(RequireKvm);
