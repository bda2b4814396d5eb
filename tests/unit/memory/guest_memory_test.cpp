#include "memory/guest_memory.hpp"

#include <boost/test/unit_test.hpp>

#include <array>

#include "base/error.hpp"

using namespace tandem;

BOOST_AUTO_TEST_SUITE(guest_memory)

BOOST_AUTO_TEST_CASE(small_guests_are_one_region_from_zero) {
  auto regions = GuestMemory::layout(256 * kMiB);
  BOOST_REQUIRE_EQUAL(regions.size(), 1u);
  BOOST_TEST(regions[0].start.value == 0u);
  BOOST_TEST(regions[0].size == 256 * kMiB);
}

BOOST_AUTO_TEST_CASE(large_guests_skip_the_hole_below_4_gib) {
  auto regions = GuestMemory::layout(5 * kGiB);
  BOOST_REQUIRE_EQUAL(regions.size(), 2u);
  BOOST_TEST(regions[0].size == 3 * kGiB);
  BOOST_TEST(regions[1].start.value == 4 * kGiB);
  BOOST_TEST(regions[1].size == 2 * kGiB);
  BOOST_TEST(regions[1].hostOffset == 3 * kGiB);
}

BOOST_AUTO_TEST_CASE(writes_land_where_reads_find_them_and_out_of_range_throws) {
  GuestMemory memory(16 * kMiB);
  std::array<uint8_t, 3> in{7, 8, 9}, out{};
  memory.write(Gpa{0x5000}, in);
  memory.read(Gpa{0x5000}, out);
  BOOST_TEST(out == in);
  BOOST_CHECK_THROW(memory.write(Gpa{16 * kMiB - 1}, in), Error);
  BOOST_CHECK_THROW(memory.hostAddress(Gpa{32 * kMiB}, 1), Error);
}

BOOST_AUTO_TEST_CASE(a_peer_naming_a_frame_gets_its_page_or_nothing_however_large_the_frame) {
  GuestMemory memory(4 * kGiB);  // RAM below 3 GiB and from 4 GiB on
  BOOST_TEST(*memory.pageOfFrame(1) == 1u);
  BOOST_TEST(*memory.pageOfFrame(4 * kGiB / kPageSize) == 3 * kGiB / kPageSize);  // first page above the hole
  BOOST_TEST(!memory.pageOfFrame(3 * kGiB / kPageSize).has_value());             // in the hole
  BOOST_TEST(!memory.pageOfFrame(5 * kGiB / kPageSize).has_value());             // past the end
  // frame * 4096 would wrap around to page 1: still nothing.
  BOOST_TEST(!memory.pageOfFrame((uint64_t{1} << 52) + 1).has_value());
}

BOOST_AUTO_TEST_SUITE_END()
