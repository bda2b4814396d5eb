#include "primary/page_encoder.hpp"

#include <cstring>

#include "base/error.hpp"
#include "codec/page_codec.hpp"

namespace tandem {

namespace {

schema::Encoding toSchema(codec::Encoding e) {
  switch (e) {
    case codec::Encoding::Zero: return schema::Encoding::ZERO;
    case codec::Encoding::Raw: return schema::Encoding::RAW;
    case codec::Encoding::Lz4: return schema::Encoding::LZ4;
  }
  return schema::Encoding::INVALID;
}

}  // namespace

void PageEncoder::build(const Channel& channel, capnp::MallocMessageBuilder& message, uint32_t round,
                        std::span<const uint64_t> pages) {
  require(pages.size() <= kPagesPerMessage, pages.size(), " pages in one message");
  auto out = channel.start(message).initPages();
  out.setRound(round);
  auto list = out.initPages(static_cast<unsigned>(pages.size()));
  for (unsigned i = 0; i < pages.size(); ++i) {
    std::memcpy(staged_.data(), memory_.hostBase() + pages[i] * kPageSize, kPageSize);
    codec::Encoding e = codec::encodePage(staged_.data(), encoded_);
    (e == codec::Encoding::Zero ? counts_.zero : e == codec::Encoding::Raw ? counts_.raw : counts_.lz4)++;
    list[i].setFrame(memory_.gpaOfPage(pages[i]).value / kPageSize);
    list[i].setEncoding(toSchema(e));
    list[i].setBytes(capnp::Data::Reader(encoded_.data(), encoded_.size()));
  }
}

}  // namespace tandem
