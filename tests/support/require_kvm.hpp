// The global fixture of the suites that run the test guest under /dev/kvm: without KVM they fail
// rather than skip (ops/test.sh leaves them out loudly on such a machine), so a skipped test never
// counts as passed.
#pragma once

#include <stdexcept>

#include "kvm/system.hpp"

namespace tandem::test {

struct RequireKvm {
  RequireKvm() {
    if (!tandem::kvm::kvmAvailable())
      throw std::runtime_error("/dev/kvm is not usable here; these tests need it (ops/test.sh skips them loudly)");
  }
};

}  // namespace tandem::test
