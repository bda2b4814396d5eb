// The owed-pages bitmap on the wire (Postcopy, PostcopyResume): what a peer sends is taken only
// when it is the size of this guest's set, and never names a page past its end.
#include <boost/test/unit_test.hpp>

#include <vector>

#include "transport/page_bitmap.hpp"

using namespace tandem;

BOOST_AUTO_TEST_SUITE(page_bitmap)

BOOST_AUTO_TEST_CASE(a_set_goes_through_its_bytes_unchanged) {
  PageSet pages(130);
  for (uint64_t p : {0, 63, 64, 129}) pages.set(p);
  auto back = bitmapOf(bitmapBytes(pages), 130);
  BOOST_REQUIRE(back.has_value());
  BOOST_TEST(back->words == pages.words);
  BOOST_TEST(back->count() == 4u);
}

BOOST_AUTO_TEST_CASE(bytes_of_another_length_are_refused) {
  std::vector<uint64_t> words(2, ~uint64_t{0});
  capnp::Data::Reader bytes(reinterpret_cast<const kj::byte*>(words.data()), words.size() * sizeof(uint64_t));
  BOOST_TEST(!bitmapOf(bytes, 200).has_value());  // 200 pages take 4 words
  BOOST_TEST(!bitmapOf(capnp::Data::Reader(bytes.begin(), 15), 128).has_value());
  BOOST_TEST(bitmapOf(bytes, 128).has_value());
}

BOOST_AUTO_TEST_CASE(bits_past_the_last_page_are_dropped) {
  std::vector<uint64_t> words(2, ~uint64_t{0});
  capnp::Data::Reader bytes(reinterpret_cast<const kj::byte*>(words.data()), words.size() * sizeof(uint64_t));
  auto pages = bitmapOf(bytes, 100);
  BOOST_REQUIRE(pages.has_value());
  BOOST_TEST(pages->count() == 100u);
}

BOOST_AUTO_TEST_SUITE_END()
