// The operator's requests to a postcopy under way: taken once, and a give-up is never undone by a
// reconnect posted after it.
#include <boost/test/unit_test.hpp>

#include "primary/migration_requests.hpp"

using namespace tandem;

BOOST_AUTO_TEST_SUITE(migration_requests)

BOOST_AUTO_TEST_CASE(a_request_is_taken_once) {
  MigrationRequests requests;
  BOOST_TEST(!requests.take().has_value());
  requests.post({MigrationRequest::Kind::Reconnect, "tcp://10.0.0.2:7000", ""});
  auto taken = requests.take();
  BOOST_REQUIRE(taken.has_value());
  BOOST_TEST(taken->to == "tcp://10.0.0.2:7000");
  BOOST_TEST(!requests.take().has_value());
}

BOOST_AUTO_TEST_CASE(a_give_up_stands_against_a_later_reconnect) {
  MigrationRequests requests;
  requests.post({MigrationRequest::Kind::GiveUp, "", "the target burned"});
  requests.post({MigrationRequest::Kind::Reconnect, "", ""});
  auto taken = requests.take();
  BOOST_REQUIRE(taken.has_value());
  BOOST_TEST((taken->kind == MigrationRequest::Kind::GiveUp));
  BOOST_TEST(taken->why == "the target burned");
}

BOOST_AUTO_TEST_CASE(a_later_reconnect_replaces_an_earlier_one) {
  MigrationRequests requests;
  requests.post({MigrationRequest::Kind::Reconnect, "tcp://10.0.0.2:7000", ""});
  requests.post({MigrationRequest::Kind::Reconnect, "tcp://10.0.0.3:7000", ""});
  BOOST_TEST(requests.take()->to == "tcp://10.0.0.3:7000");
}

BOOST_AUTO_TEST_SUITE_END()
