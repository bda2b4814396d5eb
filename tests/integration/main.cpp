// Integration tests boot the real test guest under /dev/kvm. Without KVM they fail rather than
// skip: ops/test.sh leaves them out loudly on such a machine, so a skipped test never counts as passed.
#define BOOST_TEST_MODULE tandem_integration
#include <boost/test/unit_test.hpp>

#include "kvm/system.hpp"

namespace {

struct RequireKvm {
  RequireKvm() {
    if (!tandem::kvm::kvmAvailable())
      throw std::runtime_error("/dev/kvm is not usable here; integration tests need it (ops/test.sh skips them loudly)");
  }
};

}  // namespace

BOOST_TEST_GLOBAL_FIXTURE(RequireKvm);
