#include "secondary/received_page.hpp"

#include <cstring>

#include <kj/exception.h>

#include "base/error.hpp"
#include "codec/page_codec.hpp"

namespace tandem {

namespace {

// Decodes page into out, or into the page itself in guest memory when out is nullptr.
uint64_t decodeOne(const GuestMemory& memory, schema::Page::Reader page, capnp::Data::Reader blob, uint8_t* out,
                   Deltas deltas) {
  auto number = memory.pageOfFrame(page.getFrame());
  if (!number)
    throw Error(ErrorKind::Failed, concat("the source sent frame ", page.getFrame(), ", outside guest memory"));
  codec::Encoding encoding;
  if (uint64_t{page.getOffset()} + page.getLength() > blob.size())
    throw Error(ErrorKind::Failed, concat("the source sent a page whose bytes lie outside its message (frame ", page.getFrame(), ")"));
  auto bytes = blob.slice(page.getOffset(), page.getOffset() + page.getLength());
  if (page.getEncoding() == schema::Encoding::XBZRLE) {
    if (deltas == Deltas::Refused)
      throw Error(ErrorKind::Failed, concat("the source sent a difference (xbzrle) for frame ", page.getFrame(),
                                            " where only whole pages may come"));
    if (out) std::memcpy(out, memory.hostBase() + *number * kPageSize, kPageSize);
  }
  if (!out) out = memory.hostBase() + *number * kPageSize;
  if (!codecEncoding(page.getEncoding(), encoding) || !codec::decodePage(encoding, std::span(bytes.begin(), bytes.size()), out))
    throw Error(ErrorKind::Failed, concat("the source sent a page that does not decode (frame ", page.getFrame(), ")"));
  return *number;
}

}  // namespace

bool codecEncoding(schema::Encoding e, codec::Encoding& out) {
  switch (e) {
    case schema::Encoding::ZERO: out = codec::Encoding::Zero; return true;
    case schema::Encoding::RAW: out = codec::Encoding::Raw; return true;
    case schema::Encoding::LZ4: out = codec::Encoding::Lz4; return true;
    case schema::Encoding::XBZRLE: out = codec::Encoding::Xbzrle; return true;
    default: return false;
  }
}

void decodeReceivedPages(const GuestMemory& memory, schema::Pages::Reader pages, Deltas deltas,
                         const std::function<void(uint64_t page, const uint8_t* bytes)>& take) {
  alignas(64) static thread_local uint8_t buffer[kPageSize];
  try {
    auto blob = pages.getBlob();
    for (auto p : pages.getPages()) take(decodeOne(memory, p, blob, buffer, deltas), buffer);
  } catch (const kj::Exception& e) {
    throw Error(ErrorKind::Failed, concat("the source sent a malformed message: ", e.getDescription().cStr()));
  }
}

void writeReceivedPages(GuestMemory& memory, schema::Pages::Reader pages, Deltas deltas) {
  try {
    auto blob = pages.getBlob();
    for (auto p : pages.getPages()) decodeOne(memory, p, blob, nullptr, deltas);
  } catch (const kj::Exception& e) {
    throw Error(ErrorKind::Failed, concat("the source sent a malformed message: ", e.getDescription().cStr()));
  }
}

}  // namespace tandem
