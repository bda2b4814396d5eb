#include "machine/machine_shape.hpp"

#include <boost/test/unit_test.hpp>

using namespace tandem;

namespace {

dev::virtio::Transport::Identity disk(uint64_t sectors) {
  dev::virtio::Transport::Identity d{kVirtioBlockDevice, 1ull << 32, 1, std::vector<uint8_t>(8)};
  for (size_t i = 0; i < 8; ++i) d.config[i] = static_cast<uint8_t>(sectors >> (8 * i));
  return d;
}

dev::virtio::Transport::Identity nic(uint8_t last) {
  return {kVirtioNetDevice, 1ull << 32 | 1 << 5, 2, {0x02, 0, 0, 0, 0, last, 0, 0}};
}

MachineShape shape() { return {{disk(2048), nic(1)}, {1, 2, 3, 4}, {0x10, 0x174, 0xc0000080}}; }

}  // namespace

BOOST_AUTO_TEST_SUITE(machine_shape)

BOOST_AUTO_TEST_CASE(the_same_shape_can_be_restored) { BOOST_TEST(!whyNotRestorable(shape(), shape())); }

BOOST_AUTO_TEST_CASE(a_host_that_knows_more_msrs_can_restore) {
  auto here = shape();
  here.msrs.insert(here.msrs.begin(), 0x3b);
  BOOST_TEST(!whyNotRestorable(shape(), here));
}

BOOST_AUTO_TEST_CASE(another_mac_is_named_with_both_macs_and_what_to_do) {
  auto here = shape();
  here.devices[1] = nic(9);
  auto why = whyNotRestorable(shape(), here);
  BOOST_REQUIRE(why);
  BOOST_TEST(why->find("NIC 0") != std::string::npos, *why);
  BOOST_TEST(why->find("02:00:00:00:00:01") != std::string::npos, *why);
  BOOST_TEST(why->find("02:00:00:00:00:09") != std::string::npos, *why);
  BOOST_TEST(why->find("mac=") != std::string::npos, *why);
}

BOOST_AUTO_TEST_CASE(another_disk_size_is_named_in_bytes) {
  auto here = shape();
  here.devices[0] = disk(4096);
  auto why = whyNotRestorable(shape(), here);
  BOOST_REQUIRE(why);
  BOOST_TEST(why->find("disk 0") != std::string::npos, *why);
  BOOST_TEST(why->find("1048576 bytes") != std::string::npos, *why);
  BOOST_TEST(why->find("2097152 bytes") != std::string::npos, *why);
}

BOOST_AUTO_TEST_CASE(devices_in_another_order_or_number_are_refused) {
  auto swapped = shape();
  std::swap(swapped.devices[0], swapped.devices[1]);
  BOOST_TEST(whyNotRestorable(shape(), swapped).value_or("").find("order") != std::string::npos);
  auto fewer = shape();
  fewer.devices.pop_back();
  BOOST_TEST(whyNotRestorable(shape(), fewer).value_or("").find("same number") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(another_cpuid_or_a_missing_msr_is_refused) {
  auto here = shape();
  here.cpuid[2] = 7;
  BOOST_TEST(whyNotRestorable(shape(), here).value_or("").find("CPUID") != std::string::npos);
  here = shape();
  here.msrs.pop_back();
  BOOST_TEST(whyNotRestorable(shape(), here).value_or("").find("0xc0000080") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(other_features_or_queues_are_refused) {
  auto here = shape();
  here.devices[1].queues = 3;
  BOOST_TEST(whyNotRestorable(shape(), here).value_or("").find("queues") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
