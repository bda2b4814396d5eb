#include "cli/arguments.hpp"

#include <boost/test/unit_test.hpp>

#include "base/error.hpp"
#include "base/units.hpp"

using namespace tandem;
using namespace tandem::cli;

namespace {
bool isBadInput(const Error& e) { return e.kind() == ErrorKind::BadInput; }
}  // namespace

BOOST_AUTO_TEST_SUITE(arguments)

BOOST_AUTO_TEST_CASE(sizes_accept_units_and_plain_bytes) {
  BOOST_TEST(parseSize("512M", "memory") == 512 * kMiB);
  BOOST_TEST(parseSize("2G", "memory") == 2 * kGiB);
  BOOST_TEST(parseSize("64MiB", "memory") == 64 * kMiB);
  BOOST_TEST(parseSize("4096", "memory") == 4096u);
  BOOST_TEST(parseSize("1k", "memory") == kKiB);
}

BOOST_AUTO_TEST_CASE(sizes_refuse_what_is_not_a_size) {
  for (const char* bad : {"", "M", "lots", "12X", "-5M", "99999999999999999999G"})
    BOOST_CHECK_EXCEPTION(parseSize(bad, "memory"), Error, isBadInput);
}

BOOST_AUTO_TEST_CASE(numbers_are_checked_against_their_range) {
  BOOST_TEST(parseNumber("3", "cpus", 1, 8) == 3u);
  BOOST_CHECK_EXCEPTION(parseNumber("9", "cpus", 1, 8), Error, isBadInput);
  BOOST_CHECK_EXCEPTION(parseNumber("2x", "cpus", 1, 8), Error, isBadInput);
}

BOOST_AUTO_TEST_CASE(options_take_values_both_ways) {
  Arguments a({"--memory", "64M", "--cpus=2", "--json"}, "run", {"memory", "cpus"}, {"json"});
  BOOST_TEST(*a.value("memory") == "64M");
  BOOST_TEST(*a.value("cpus") == "2");
  BOOST_TEST(a.flag("json"));
  BOOST_TEST(!a.value("kernel").has_value());
}

BOOST_AUTO_TEST_CASE(unknown_options_and_missing_values_are_refused) {
  BOOST_CHECK_EXCEPTION(Arguments({"--bogus", "1"}, "run", {"memory"}), Error, isBadInput);
  BOOST_CHECK_EXCEPTION(Arguments({"--memory"}, "run", {"memory"}), Error, isBadInput);
  BOOST_CHECK_EXCEPTION(Arguments({"stray"}, "run", {"memory"}), Error, isBadInput);
}

BOOST_AUTO_TEST_SUITE_END()
