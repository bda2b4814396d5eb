// Chaos tests kill, freeze and cut real tandem processes running the test guest under /dev/kvm.
#define BOOST_TEST_MODULE tandem_chaos
#include <boost/test/unit_test.hpp>

#include "support/require_kvm.hpp"

using tandem::test::RequireKvm;
BOOST_TEST_GLOBAL_FIXTURE(RequireKvm);
