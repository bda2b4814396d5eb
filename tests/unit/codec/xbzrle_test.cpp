#include "codec/xbzrle.hpp"

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "codec/xbzrle_cache.hpp"

using namespace tandem;
using namespace tandem::codec;

namespace {

using Page = std::vector<uint8_t>;
constexpr size_t kNoLimit = std::numeric_limits<size_t>::max();

Page randomPage(std::mt19937& rng) {
  Page page(kPageSize);
  for (auto& b : page) b = static_cast<uint8_t>(rng());
  return page;
}

// A page with guard bytes on both sides, to catch a decoder writing outside it.
struct GuardedPage {
  static constexpr size_t kGuard = 64;
  static constexpr uint8_t kGuardByte = 0xa5;
  std::vector<uint8_t> buffer;

  explicit GuardedPage(const Page& content) : buffer(kGuard + kPageSize + kGuard, kGuardByte) {
    std::ranges::copy(content, page());
  }
  uint8_t* page() { return buffer.data() + kGuard; }
  Page content() const { return Page(buffer.begin() + kGuard, buffer.begin() + kGuard + kPageSize); }
  bool guardsIntact() const {
    auto intact = [](uint8_t b) { return b == kGuardByte; };
    return std::all_of(buffer.begin(), buffer.begin() + kGuard, intact) &&
           std::all_of(buffer.end() - kGuard, buffer.end(), intact);
  }
};

// Decodes delta onto a guarded copy of old: nothing outside the page may change, nor the page
// itself on failure. Returns the result and the page.
std::pair<bool, Page> decodeGuarded(const std::vector<uint8_t>& delta, const Page& old) {
  GuardedPage target(old);
  bool ok = decodeXbzrle(delta, target.page());
  BOOST_TEST(target.guardsIntact());
  if (!ok) {
    BOOST_TEST((target.content() == old));
  }
  return {ok, target.content()};
}

Page filled(uint8_t value) { return Page(kPageSize, value); }

// encode(out, limit) turns `now` into a delta from `old`. Without a limit it must succeed, fit in
// kXbzrleMaxDelta and decode onto old as now; at `limit` it gives the same delta or, only when
// that is longer than limit, refuses. Counts the outcome at the limit in encoded or refused.
template <typename Encode>
void checkDelta(Encode encode, const Page& old, const Page& now, size_t limit, int& encoded, int& refused) {
  std::vector<uint8_t> delta, unlimited;
  BOOST_TEST_REQUIRE(encode(unlimited, kNoLimit));
  BOOST_TEST_REQUIRE(unlimited.size() <= kXbzrleMaxDelta);
  auto [ok, back] = decodeGuarded(unlimited, old);
  BOOST_TEST_REQUIRE(ok);
  BOOST_TEST_REQUIRE((back == now));
  if (encode(delta, limit)) {
    BOOST_TEST_REQUIRE((delta == unlimited));
    BOOST_TEST_REQUIRE(delta.size() <= limit);
    ++encoded;
  } else {
    BOOST_TEST_REQUIRE(unlimited.size() > limit);
    ++refused;
  }
}

// find()s page (so it counts, and makes page recently used) and checks every byte is value.
bool holds(XbzrleCache& cache, uint64_t page, uint8_t value) {
  const uint8_t* bytes = cache.find(page);
  return bytes && std::all_of(bytes, bytes + kPageSize, [value](uint8_t b) { return b == value; });
}

}  // namespace

BOOST_AUTO_TEST_SUITE(xbzrle)

BOOST_AUTO_TEST_CASE(an_identical_page_is_the_empty_delta) {
  std::mt19937 rng(1);
  Page old = randomPage(rng);
  Page now = old;
  std::vector<uint8_t> delta{1, 2, 3};
  BOOST_TEST(encodeXbzrle(old.data(), now.data(), delta, 0));
  BOOST_TEST(delta.empty());
  auto [ok, back] = decodeGuarded(delta, old);
  BOOST_TEST(ok);
  BOOST_TEST((back == now));
}

BOOST_AUTO_TEST_CASE(a_few_scattered_changes_give_a_small_delta_that_restores_the_page) {
  std::mt19937 rng(2);
  Page old = randomPage(rng);
  Page now = old;
  for (size_t at : {0u, 100u, 101u, 103u, 2000u, 4095u}) now[at] ^= 0x5a;
  std::vector<uint8_t> delta;
  BOOST_TEST(encodeXbzrle(old.data(), now.data(), delta, kNoLimit));
  // Records: 0 (3 bytes) | 100..103, the equal 102 folded in (6) | 2000 (4) | 4095 (4).
  BOOST_TEST(delta.size() == 17u);
  auto [ok, back] = decodeGuarded(delta, old);
  BOOST_TEST(ok);
  BOOST_TEST((back == now));
}

BOOST_AUTO_TEST_CASE(every_byte_changed_does_not_fit_in_a_page) {
  Page old(kPageSize, 0), now(kPageSize, 0xff);
  std::vector<uint8_t> delta;
  BOOST_TEST(!encodeXbzrle(old.data(), now.data(), delta, kPageSize));
  BOOST_TEST(encodeXbzrle(old.data(), now.data(), delta, kNoLimit));
  BOOST_TEST(delta.size() == kXbzrleMaxDelta);
  auto [ok, back] = decodeGuarded(delta, old);
  BOOST_TEST(ok);
  BOOST_TEST((back == now));
}

BOOST_AUTO_TEST_CASE(random_changes_round_trip_or_exceed_the_limit) {
  std::mt19937 rng(3);
  std::vector<uint8_t> unlimited;
  int encoded = 0, refused = 0;
  for (int iteration = 0; iteration < 600; ++iteration) {
    Page old = iteration % 5 == 0 ? Page(kPageSize, 0) : randomPage(rng);
    Page now = old;
    switch (rng() % 4) {
      case 0:  // a few bytes anywhere
        for (unsigned n = rng() % 16; n > 0; --n) now[rng() % kPageSize] ^= static_cast<uint8_t>(rng() | 1);
        break;
      case 1:  // a few runs of any length
        for (unsigned n = rng() % 8; n > 0; --n) {
          size_t start = rng() % kPageSize, length = std::min<size_t>(rng() % 600, kPageSize - start);
          for (size_t i = start; i < start + length; ++i) now[i] = static_cast<uint8_t>(rng());
        }
        break;
      case 2:  // each byte changed with some probability: from sparse to nearly all
        for (unsigned percent = rng() % 101; auto& b : now)
          if (rng() % 100 < percent) b ^= static_cast<uint8_t>(rng() | 1);
        break;
      case 3:  // periodic patterns, the worst case for folding short equal stretches
        for (size_t period = 1 + rng() % 6, changed = 1 + rng() % period, i = 0; i < kPageSize; ++i)
          if (i % period < changed) now[i] ^= 0xff;
        break;
    }
    auto encode = [&](std::vector<uint8_t>& out, size_t limit) { return encodeXbzrle(old.data(), now.data(), out, limit); };
    BOOST_TEST_REQUIRE(encode(unlimited, kNoLimit));
    size_t limit = rng() % 2 ? rng() % (kXbzrleMaxDelta + 1) : unlimited.size() - rng() % 2;  // (often right at it)
    checkDelta(encode, old, now, limit, encoded, refused);
  }
  BOOST_TEST(encoded > 100);
  BOOST_TEST(refused > 100);
}

BOOST_AUTO_TEST_CASE(a_sparse_page_from_zero_is_a_small_delta_and_a_zero_page_the_empty_one) {
  Page zeros(kPageSize, 0), now = zeros;
  std::vector<uint8_t> delta{1, 2, 3};
  BOOST_TEST(encodeXbzrleFromZero(now.data(), delta, 0));
  BOOST_TEST(delta.empty());
  // Three stamped words (the dirty job's pages): a record each, of one whole word.
  for (size_t at : {0u, 100u, 4090u}) now[at] = 0x5a;
  BOOST_TEST(encodeXbzrleFromZero(now.data(), delta, kNoLimit));
  BOOST_TEST(delta.size() == 3 * (2 + 8) + 1);  // zero runs 0, 88 and 3984 (two bytes): varints 2, 2, 3
  auto [ok, back] = decodeGuarded(delta, zeros);
  BOOST_TEST(ok);
  BOOST_TEST((back == now));
  BOOST_TEST(!encodeXbzrleFromZero(now.data(), delta, 30));
}

BOOST_AUTO_TEST_CASE(pages_from_zero_round_trip_or_exceed_the_limit) {
  std::mt19937 rng(7);
  Page zeros(kPageSize, 0);
  int encoded = 0, refused = 0;
  for (int iteration = 0; iteration < 600; ++iteration) {
    Page now = zeros;
    unsigned percent = rng() % 101;  // words written: from none to all
    for (size_t w = 0; w < kPageSize / 8; ++w)
      if (rng() % 100 < percent) now[w * 8 + rng() % 8] = static_cast<uint8_t>(rng() | 1);
    auto encode = [&](std::vector<uint8_t>& out, size_t limit) { return encodeXbzrleFromZero(now.data(), out, limit); };
    checkDelta(encode, zeros, now, rng() % (kXbzrleMaxDelta + 1), encoded, refused);
  }
  BOOST_TEST(encoded > 100);
  BOOST_TEST(refused > 100);
}

// Round 0 reads guest memory while the guest writes it: whatever the encoder saw, its delta must
// be one the receiver accepts (else the migration would fail on a page that is sent again anyway).
BOOST_AUTO_TEST_CASE(a_page_written_while_it_is_encoded_from_zero_still_gives_a_valid_delta) {
  alignas(8) static uint8_t live[kPageSize] = {};
  std::atomic<bool> done{false};
  std::thread writer([&] {
    std::mt19937 rng(11);
    auto* words = reinterpret_cast<uint64_t*>(live);
    while (!done) __atomic_store_n(&words[rng() % (kPageSize / 8)], rng() % 2 ? 0 : rng() | 1ull, __ATOMIC_RELAXED);
  });
  Page zeros(kPageSize, 0);
  std::vector<uint8_t> delta;
  int valid = 0;
  for (int i = 0; i < 20000; ++i) {
    if (!encodeXbzrleFromZero(live, delta, kNoLimit)) continue;
    GuardedPage target(zeros);
    if (decodeXbzrle(delta, target.page()) && target.guardsIntact()) ++valid;
    else break;
  }
  done = true;
  writer.join();
  BOOST_TEST(valid == 20000);
}

BOOST_AUTO_TEST_CASE(malformed_deltas_are_refused_and_leave_the_page_alone) {
  std::mt19937 rng(4);
  Page old = randomPage(rng);
  const std::vector<std::vector<uint8_t>> bad = {
      {0x80},                                // varint cut short
      {0x05},                                // record without its data run
      {0, 5, 1, 2, 3},                       // data cut short
      {0, 0},                                // empty data run
      {0, 1, 0xaa, 0, 1, 0xbb},              // a later record that skips nothing
      {0x80, 0x20, 1, 0xaa},                 // 4096 unchanged bytes, then one past the page
      {0, 0x81, 0x20},                       // a data run of 4097
      {0xff, 0x1f, 2, 0xaa, 0xbb},           // 4095 + 2
      {0xff, 0x1f, 1, 0xaa, 1},              // a full page, then garbage
      {0, 1, 0xaa, 5},                       // garbage after a good record
      {0x81, 0x00, 1, 0xaa},                 // padded varint
      {0x80, 0x80, 0x01, 1, 0xaa},           // three-byte varint
      {0xff, 0xff, 0xff, 0xff, 0x0f, 1, 0},  // huge varint
  };
  for (const auto& delta : bad) {
    auto [ok, back] = decodeGuarded(delta, old);
    BOOST_TEST(!ok);
  }
  // The edges those stop just short of are fine.
  auto [ok, back] = decodeGuarded({0xff, 0x1f, 1, 0xaa}, old);
  BOOST_TEST(ok);
  BOOST_TEST(back[4095] == 0xaa);
  BOOST_TEST(std::equal(back.begin(), back.begin() + 4095, old.begin()));
}

BOOST_AUTO_TEST_CASE(random_and_mutated_deltas_never_write_outside_the_page) {
  std::mt19937 rng(5);
  Page old = randomPage(rng);
  int accepted = 0;
  for (int i = 0; i < 3000; ++i) {
    std::vector<uint8_t> delta(rng() % 48);
    for (auto& b : delta) b = static_cast<uint8_t>(rng() % 3 ? rng() % 8 : rng());
    accepted += decodeGuarded(delta, old).first;
  }
  std::vector<uint8_t> valid;
  for (int i = 0; i < 3000; ++i) {
    Page now = old;
    for (unsigned n = 1 + rng() % 12; n > 0; --n) now[rng() % kPageSize] ^= 0x11;
    BOOST_TEST_REQUIRE(encodeXbzrle(old.data(), now.data(), valid, kNoLimit));
    switch (rng() % 3) {
      case 0: valid[rng() % valid.size()] = static_cast<uint8_t>(rng()); break;
      case 1: valid.resize(rng() % valid.size()); break;
      case 2: valid.insert(valid.begin() + rng() % (valid.size() + 1), static_cast<uint8_t>(rng())); break;
    }
    accepted += decodeGuarded(valid, old).first;
  }
  BOOST_TEST_MESSAGE(accepted << " of 6000 fuzzed deltas decoded");
  BOOST_TEST(accepted > 0);
}

BOOST_AUTO_TEST_SUITE(cache)

BOOST_AUTO_TEST_CASE(the_least_recently_used_page_goes_first) {
  XbzrleCache cache(3 * kPageSize + 100);
  BOOST_TEST(cache.capacity() == 3u);
  for (uint64_t page : {10, 11, 12}) cache.put(page, filled(static_cast<uint8_t>(page)).data());
  cache.put(13, filled(13).data());
  BOOST_TEST(cache.size() == 3u);
  BOOST_TEST(!cache.find(10));
  BOOST_TEST(holds(cache, 11, 11));
  BOOST_TEST(holds(cache, 12, 12));
  BOOST_TEST(holds(cache, 13, 13));
}

BOOST_AUTO_TEST_CASE(find_and_put_make_a_page_recently_used) {
  XbzrleCache cache(3 * kPageSize);
  for (uint64_t page : {1, 2, 3}) cache.put(page, filled(static_cast<uint8_t>(page)).data());
  BOOST_TEST((cache.find(1) != nullptr));  // order now 1 3 2
  cache.put(2, filled(22).data());  // overwrite: 2 1 3
  cache.put(4, filled(4).data());   // evicts 3
  BOOST_TEST(!cache.find(3));
  cache.put(5, filled(5).data());  // evicts 1
  BOOST_TEST(!cache.find(1));
  BOOST_TEST(holds(cache, 2, 22));
  BOOST_TEST(holds(cache, 4, 4));
  BOOST_TEST(holds(cache, 5, 5));
}

BOOST_AUTO_TEST_CASE(erase_forgets_a_page_and_frees_its_slot) {
  XbzrleCache cache(2 * kPageSize);
  cache.put(1, filled(1).data());
  cache.put(2, filled(2).data());
  cache.erase(1);
  cache.erase(99);
  BOOST_TEST(cache.size() == 1u);
  BOOST_TEST(!cache.find(1));
  cache.put(3, filled(3).data());  // takes the freed slot: nothing evicted
  BOOST_TEST(holds(cache, 2, 2));
  BOOST_TEST(holds(cache, 3, 3));
}

BOOST_AUTO_TEST_CASE(a_cache_of_capacity_zero_stores_nothing) {
  XbzrleCache cache(kPageSize - 1);
  BOOST_TEST(cache.capacity() == 0u);
  cache.put(1, filled(1).data());
  BOOST_TEST(cache.size() == 0u);
  BOOST_TEST(!cache.find(1));
  cache.erase(1);
  BOOST_TEST(cache.misses() == 1u);
}

BOOST_AUTO_TEST_CASE(hits_and_misses_are_counted_by_find) {
  XbzrleCache cache(4 * kPageSize);
  cache.put(7, filled(7).data());
  cache.find(7);
  cache.find(7);
  cache.find(8);
  cache.put(8, cache.find(7));  // a page stored from another's cached bytes
  BOOST_TEST(holds(cache, 8, 7));
  BOOST_TEST(cache.hits() == 4u);
  BOOST_TEST(cache.misses() == 1u);
}

BOOST_AUTO_TEST_CASE(random_use_matches_a_simple_lru_model) {
  std::mt19937 rng(6);
  XbzrleCache cache(8 * kPageSize);
  std::vector<std::pair<uint64_t, uint8_t>> model;  // most recently used first
  auto inModel = [&](uint64_t page) {
    return std::ranges::find(model, page, &std::pair<uint64_t, uint8_t>::first);
  };
  for (int i = 0; i < 20000; ++i) {
    uint64_t page = rng() % 20;
    auto it = inModel(page);
    switch (rng() % 3) {
      case 0: {
        const uint8_t* bytes = cache.find(page);
        BOOST_TEST_REQUIRE((bytes != nullptr) == (it != model.end()));
        if (!bytes) break;
        BOOST_TEST_REQUIRE(bytes[rng() % kPageSize] == it->second);
        std::rotate(model.begin(), it, it + 1);
        break;
      }
      case 1: {
        auto value = static_cast<uint8_t>(rng());
        cache.put(page, filled(value).data());
        if (it != model.end()) model.erase(it);
        model.insert(model.begin(), {page, value});
        if (model.size() > 8) model.pop_back();
        break;
      }
      case 2:
        cache.erase(page);
        if (it != model.end()) model.erase(it);
        break;
    }
    BOOST_TEST_REQUIRE(cache.size() == model.size());
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE_END()
