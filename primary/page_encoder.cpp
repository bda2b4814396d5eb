#include "primary/page_encoder.hpp"

#include <cstring>

#include "base/error.hpp"
#include "codec/page_codec.hpp"
#include "codec/xbzrle.hpp"

namespace tandem {

namespace {

// A difference this small is taken without trying lz4 (which costs microseconds a page).
constexpr size_t kGoodDelta = 512;

}  // namespace

PageEncoder::PageEncoder(const GuestMemory& memory, Compression compression, uint64_t xbzrleCacheBytes)
    : memory_(memory), compression_(compression), encoded_(codec::kLz4Bound) {
  if (xbzrleCacheBytes && compression == Compression::Auto)
    cache_ = std::make_unique<codec::XbzrleCache>(xbzrleCacheBytes);
}

EncodingCounts PageEncoder::counts() const {
  EncodingCounts c = counts_;
  if (cache_) {
    c.xbzrleCacheHits = cache_->hits();
    c.xbzrleCacheMisses = cache_->misses();
  }
  return c;
}

std::pair<schema::Encoding, size_t> PageEncoder::encodeInPlace(uint64_t page, uint8_t* slot) {
  if (codec::isZeroPage(slot)) {
    if (cache_) cache_->erase(page);
    ++counts_.zero;
    return {schema::Encoding::ZERO, 0};
  }
  size_t best = kPageSize;
  schema::Encoding encoding = schema::Encoding::RAW;
  const uint8_t* bytes = slot;
  if (cache_) {
    bool haveDelta = false;
    if (const uint8_t* old = cache_->find(page))
      haveDelta = codec::encodeXbzrle(old, slot, delta_, kPageSize / 2);
    cache_->put(page, slot);  // what the target holds once this message arrives
    if (haveDelta) {
      best = delta_.size();
      encoding = schema::Encoding::XBZRLE;
      bytes = delta_.data();
    }
  }
  if (tryLz4() && best > kGoodDelta) {
    size_t n = codec::compressLz4(slot, encoded_.data());
    if (n > 0 && n < best) {
      best = n;
      encoding = schema::Encoding::LZ4;
      bytes = encoded_.data();
    }
  }
  if (bytes != slot) std::memcpy(slot, bytes, best);  // the winner over the staged page (never longer)
  (encoding == schema::Encoding::RAW ? counts_.raw : encoding == schema::Encoding::LZ4 ? counts_.lz4 : counts_.xbzrle)++;
  return {encoding, best};
}

std::pair<schema::Encoding, size_t> PageEncoder::encodeLive(uint64_t page, const uint8_t* live, uint8_t* slot,
                                                            Reading reading) {
  auto takeDelta = [&] {
    std::memcpy(slot, delta_.data(), delta_.size());
    ++counts_.xbzrle;
    return std::pair{schema::Encoding::XBZRLE, delta_.size()};
  };
  const uint8_t* cached = nullptr;
  if (cache_) {
    if (reading == Reading::Paused) cached = cache_->find(page);
    else cache_->erase(page);  // (the target's copy of a live page is not known exactly)
  }
  if (reading == Reading::LiveOntoZeros && compression_ == Compression::Auto) {
    if (codec::encodeXbzrleFromZero(live, delta_, kGoodDelta)) {
      if (delta_.empty()) {
        ++counts_.zero;
        return {schema::Encoding::ZERO, 0};
      }
      return takeDelta();
    }
    // (not sparse, so not zero either)
  } else if (codec::isZeroPage(live)) {
    ++counts_.zero;
    return {schema::Encoding::ZERO, 0};
  }
  if (cached && codec::encodeXbzrle(cached, live, delta_, kGoodDelta)) return takeDelta();
  if (tryLz4()) {
    if (size_t n = codec::compressLz4Into(live, slot, kPageSize - 1)) {
      ++counts_.lz4;
      return {schema::Encoding::LZ4, n};
    }
  }
  std::memcpy(slot, live, kPageSize);
  ++counts_.raw;
  return {schema::Encoding::RAW, kPageSize};
}

std::unique_ptr<OutgoingMessage> PageEncoder::build(const Channel& channel, uint32_t round,
                                                    std::span<const uint64_t> pages, Reading reading) {
  require(pages.size() <= kPagesPerMessage, pages.size(), " pages in one message");
  auto message = std::make_unique<OutgoingMessage>();
  uint8_t* staging = message->staging(pages.size() * kPageSize);
  auto out = channel.start(*message).initPages();
  out.setRound(round);
  auto list = out.initPages(static_cast<unsigned>(pages.size()));
  size_t used = 0;
  for (unsigned i = 0; i < pages.size(); ++i) {
    const uint8_t* live = memory_.hostBase() + pages[i] * kPageSize;
    auto [encoding, length] = reading != Reading::Copied
                                  ? encodeLive(pages[i], live, staging + used, reading)
                                  : [&] {
                                      std::memcpy(staging + used, live, kPageSize);
                                      return encodeInPlace(pages[i], staging + used);
                                    }();
    list[i].setFrame(memory_.gpaOfPage(pages[i]).value / kPageSize);
    list[i].setEncoding(encoding);
    list[i].setOffset(static_cast<uint32_t>(used));
    list[i].setLength(static_cast<uint32_t>(length));
    used += length;
  }
  if (used > 0) out.adoptBlob(message->referenceStaging(used));  // (an empty external blob confuses readers)
  return message;
}

PageEncoder::Staged PageEncoder::stage(std::span<const uint64_t> pages) {
  require(pages.size() <= kPagesPerMessage, pages.size(), " pages in one message");
  Staged staged;
  staged.message = std::make_unique<OutgoingMessage>();
  staged.staging = pool_ ? staged.message->staging(pages.size() * kPageSize, *pool_)
                         : staged.message->staging(pages.size() * kPageSize);
  staged.pages.assign(pages.begin(), pages.end());
  for (size_t i = 0; i < pages.size(); ++i)
    std::memcpy(staged.staging + i * kPageSize, memory_.hostBase() + pages[i] * kPageSize, kPageSize);
  return staged;
}

void PageEncoder::finishStaged(const Channel& channel, Staged& staged, uint64_t epoch, XXH3_state_t* digest) {
  auto out = channel.start(*staged.message).initPages();
  out.setEpoch(epoch);
  auto list = out.initPages(static_cast<unsigned>(staged.pages.size()));
  size_t used = 0;
  for (unsigned i = 0; i < staged.pages.size(); ++i) {
    uint8_t* slot = staged.staging + size_t{i} * kPageSize;
    uint64_t frame = memory_.gpaOfPage(staged.pages[i]).value / kPageSize;
    XXH3_64bits_update(digest, &frame, sizeof frame);
    XXH3_64bits_update(digest, slot, kPageSize);
    auto [encoding, length] = encodeInPlace(staged.pages[i], slot);
    if (slot != staged.staging + used) std::memmove(staged.staging + used, slot, length);  // packed: used <= slot
    list[i].setFrame(frame);
    list[i].setEncoding(encoding);
    list[i].setOffset(static_cast<uint32_t>(used));
    list[i].setLength(static_cast<uint32_t>(length));
    used += length;
  }
  if (used > 0) out.adoptBlob(staged.message->referenceStaging(used));
}

}  // namespace tandem
