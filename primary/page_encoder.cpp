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
    : memory_(memory), compression_(compression), staged_(kPageSize) {
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

schema::Encoding PageEncoder::encode(uint64_t page) {
  std::memcpy(staged_.data(), memory_.hostBase() + page * kPageSize, kPageSize);
  if (codec::isZeroPage(staged_.data())) {
    if (cache_) cache_->erase(page);
    encoded_.clear();
    ++counts_.zero;
    return schema::Encoding::ZERO;
  }
  bool haveDelta = false;
  if (cache_) {
    if (const uint8_t* old = cache_->find(page))
      haveDelta = codec::encodeXbzrle(old, staged_.data(), delta_, kPageSize / 2);
    cache_->put(page, staged_.data());  // what the target holds once this message arrives
    if (haveDelta && delta_.size() <= kGoodDelta) {
      std::swap(encoded_, delta_);
      ++counts_.xbzrle;
      return schema::Encoding::XBZRLE;
    }
  }
  codec::Encoding e = codec::encodePage(staged_.data(), encoded_, compression_ != Compression::None);
  if (haveDelta && delta_.size() < encoded_.size()) {
    std::swap(encoded_, delta_);
    ++counts_.xbzrle;
    return schema::Encoding::XBZRLE;
  }
  if (e == codec::Encoding::Lz4) {
    ++counts_.lz4;
    return schema::Encoding::LZ4;
  }
  ++counts_.raw;
  return schema::Encoding::RAW;
}

void PageEncoder::build(const Channel& channel, capnp::MallocMessageBuilder& message, uint32_t round,
                        std::span<const uint64_t> pages) {
  require(pages.size() <= kPagesPerMessage, pages.size(), " pages in one message");
  auto out = channel.start(message).initPages();
  out.setRound(round);
  auto list = out.initPages(static_cast<unsigned>(pages.size()));
  for (unsigned i = 0; i < pages.size(); ++i) {
    list[i].setEncoding(encode(pages[i]));
    list[i].setFrame(memory_.gpaOfPage(pages[i]).value / kPageSize);
    list[i].setBytes(capnp::Data::Reader(encoded_.data(), encoded_.size()));
  }
}

}  // namespace tandem
