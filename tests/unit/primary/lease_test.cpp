#include "primary/lease.hpp"

#include <boost/test/unit_test.hpp>

using namespace tandem;
using namespace std::chrono_literals;

namespace {

const Lease::Clock::time_point t0 = Lease::Clock::time_point(1000s);

}  // namespace

BOOST_AUTO_TEST_SUITE(lease)

BOOST_AUTO_TEST_CASE(nothing_holds_before_an_echo) {
  Lease lease(200ms, 50ms);
  lease.sent(1, t0);
  BOOST_TEST(!lease.holds(t0));
}

BOOST_AUTO_TEST_CASE(an_echo_holds_until_its_beats_time_plus_the_failover_time_less_the_margin) {
  Lease lease(200ms, 50ms);
  lease.sent(1, t0);
  lease.echoed(1);
  BOOST_TEST(lease.holds(t0 + 10ms));
  BOOST_TEST(lease.holds(t0 + 150ms));
  BOOST_TEST(!lease.holds(t0 + 151ms));
  BOOST_TEST(!lease.holds(t0 + 300ms));
  BOOST_TEST((lease.left(t0 + 120ms) == 80ms));
}

BOOST_AUTO_TEST_CASE(it_counts_from_when_the_beat_was_made_not_when_its_echo_came) {
  Lease lease(200ms, 50ms);
  lease.sent(1, t0);
  // The echo arrives 140 ms later: only 60 ms of the lease are left, 10 ms of them usable.
  lease.echoed(1);
  BOOST_TEST(lease.holds(t0 + 140ms));
  BOOST_TEST(!lease.holds(t0 + 160ms));
}

BOOST_AUTO_TEST_CASE(an_older_echo_never_shortens_it) {
  Lease lease(200ms, 50ms);
  lease.sent(1, t0);
  lease.sent(2, t0 + 100ms);
  lease.echoed(2);
  lease.echoed(1);  // late, out of order
  BOOST_TEST(lease.holds(t0 + 250ms));
}

BOOST_AUTO_TEST_CASE(an_echo_of_a_beat_it_did_not_send_or_forgot_renews_nothing) {
  Lease lease(200ms, 50ms);
  lease.echoed(7);  // never sent (another session's, or forged)
  BOOST_TEST(!lease.holds(t0));
  lease.sent(1, t0);
  lease.forget();  // a new session
  lease.echoed(1);
  BOOST_TEST(!lease.holds(t0));
  for (uint64_t seq = 10; seq < 10 + Lease::kRemembered + 1; ++seq) lease.sent(seq, t0);
  lease.echoed(10);  // pushed out by the newer ones
  BOOST_TEST(!lease.holds(t0));
  lease.echoed(11);
  BOOST_TEST(lease.holds(t0));
}

BOOST_AUTO_TEST_CASE(expire_ends_it_until_the_next_echo) {
  Lease lease(200ms, 50ms);
  lease.sent(1, t0);
  lease.echoed(1);
  lease.expire();
  BOOST_TEST(!lease.holds(t0));
  lease.sent(2, t0 + 10ms);
  lease.echoed(2);
  BOOST_TEST(lease.holds(t0 + 20ms));
}

BOOST_AUTO_TEST_SUITE_END()
