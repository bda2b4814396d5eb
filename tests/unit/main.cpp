#define BOOST_TEST_MODULE tandem_unit
#include <boost/test/unit_test.hpp>
