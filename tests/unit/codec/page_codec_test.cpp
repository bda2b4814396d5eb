#include "codec/page_codec.hpp"

#include <boost/test/unit_test.hpp>

#include <cstring>
#include <vector>

#include "memory/dirty_tracker.hpp"

using namespace tandem;
using namespace tandem::codec;

BOOST_AUTO_TEST_SUITE(page_codec)

BOOST_AUTO_TEST_CASE(each_kind_of_page_takes_its_smallest_encoding_and_comes_back) {
  std::vector<uint8_t> zero(4096, 0), sparse(4096, 0), noise(4096), out, back(4096);
  sparse[100] = 7;
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (auto& b : noise) x ^= x << 13, x ^= x >> 7, x ^= x << 17, b = static_cast<uint8_t>(x);

  BOOST_TEST((encodePage(zero.data(), out) == Encoding::Zero));
  BOOST_TEST(out.empty());
  BOOST_TEST(decodePage(Encoding::Zero, out, back.data()));
  BOOST_TEST(back == zero);

  BOOST_TEST((encodePage(sparse.data(), out) == Encoding::Lz4));
  BOOST_TEST(out.size() < 100u);
  BOOST_TEST(decodePage(Encoding::Lz4, out, back.data()));
  BOOST_TEST(back == sparse);

  BOOST_TEST((encodePage(noise.data(), out) == Encoding::Raw));
  BOOST_TEST(decodePage(Encoding::Raw, out, back.data()));
  BOOST_TEST(back == noise);
}

BOOST_AUTO_TEST_CASE(bytes_that_are_not_a_page_do_not_decode) {
  std::vector<uint8_t> page(4096), junk(50, 0xab);
  BOOST_TEST(!decodePage(Encoding::Raw, junk, page.data()));
  BOOST_TEST(!decodePage(Encoding::Zero, junk, page.data()));
  BOOST_TEST(!decodePage(Encoding::Lz4, junk, page.data()));
}

BOOST_AUTO_TEST_CASE(blocks_of_any_size_round_trip_and_lying_lengths_are_refused) {
  std::vector<uint8_t> block(65536 - 512, 0), out(block.size()), encoded;
  BOOST_TEST((encodeBlock(block, encoded) == Encoding::Zero));
  for (size_t i = 0; i < block.size(); i += 7) block[i] = static_cast<uint8_t>(i);
  auto encoding = encodeBlock(block, encoded);
  BOOST_TEST((encoding == Encoding::Lz4));
  BOOST_TEST(decodeBlock(encoding, encoded, out));
  BOOST_TEST((out == block));
  std::vector<uint8_t> shorter(block.size() - 1);
  BOOST_TEST(!decodeBlock(encoding, encoded, shorter));
  BOOST_TEST(!decodeBlock(Encoding::Raw, encoded, out));
  BOOST_TEST(!decodeBlock(Encoding::Xbzrle, encoded, out));
}

BOOST_AUTO_TEST_CASE(page_sets_count_and_merge) {
  PageSet a(200), b(200);
  a.set(0);
  a.set(63);
  b.set(64);
  b.set(199);
  b.set(0);
  a |= b;
  BOOST_TEST(a.count() == 4u);
  BOOST_TEST(a.test(199));
  BOOST_TEST(!a.test(100));
}

BOOST_AUTO_TEST_CASE(host_writes_are_marked_dirty_and_taken_once) {
  GuestMemory memory(16 * kMiB);
  std::vector<uint8_t> bytes(5000, 1);
  memory.write(Gpa{0x10ff0}, bytes);  // spans pages 0x10 and 0x11 and 0x12
  PageSet taken(memory.pageCount());
  memory.takeHostDirty(taken.words);
  BOOST_TEST(taken.count() == 3u);
  BOOST_TEST(taken.test(0x10));
  BOOST_TEST(taken.test(0x12));
  PageSet again(memory.pageCount());
  memory.takeHostDirty(again.words);
  BOOST_TEST(again.count() == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
