// PageEncoder: turns guest pages into a Pages envelope. Each page is copied once, from guest memory
// into the message's staging buffer (the guest may be writing it right now: it is then dirty
// again and goes later, and the encoder must not see it change under it); whatever encoding wins
// is written over it there, and the buffer goes on the wire without another copy.
//
//   Compression::Auto  zero; else, when the page went before and its copy is in the XBZRLE cache,
//                      the difference if it is small (a few hundred bytes: no lz4 tried);
//                      else the smallest of that difference, lz4 and raw; lz4 only while
//                      setLz4(true) (a RoundSender turns it off while the link waits for the
//                      encoders: lz4 costs microseconds a page, a fast link carries it raw sooner)
//   Compression::Lz4   zero, lz4 or raw
//   Compression::None  zero or raw
//
// How a message reads its pages:
//   Copied         each page is copied into the staging buffer first and encoded there, and kept
//                  in the XBZRLE cache, so that its next send can be a difference from exactly
//                  what went (precopy rounds after the first, epochs).
//   LiveOntoZeros  straight from guest memory that the guest may be writing (no copy: a page
//                  written meanwhile may go torn, but it is dirty again and a later round sends it
//                  whole), for a target that holds zeros there (round 0: its memory is new). It is
//                  most of a migration's work: with Compression::Auto a sparse page goes as its
//                  difference from zeros (one read of it here; only its non-zero words written
//                  there, where an lz4 block writes all 4 KiB); nothing is cached (most pages are
//                  never sent again, and copying each into the cache cost a third of the time).
//   Paused         straight from memory nothing writes (the guest paused: the final round,
//                  postcopy): the difference from the cached copy when it is small, else zero,
//                  lz4 or raw; nothing is cached (these pages are not sent again).
// The XBZRLE cache holds what the target was sent, so only an encoder whose every page reaches
// the target in order (precopy rounds) may have one; postcopy's pages replace dropped copies.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include <xxhash.h>

#include "codec/xbzrle_cache.hpp"
#include "memory/guest_memory.hpp"
#include "transport/channel.hpp"
#include "transport/staging_pool.hpp"

namespace tandem {

enum class Compression { Auto, Lz4, None };

struct EncodingCounts {
  uint64_t zero = 0, raw = 0, lz4 = 0, xbzrle = 0;
  uint64_t xbzrleCacheHits = 0, xbzrleCacheMisses = 0;
  EncodingCounts& operator+=(const EncodingCounts& o) {
    zero += o.zero, raw += o.raw, lz4 += o.lz4, xbzrle += o.xbzrle;
    xbzrleCacheHits += o.xbzrleCacheHits, xbzrleCacheMisses += o.xbzrleCacheMisses;
    return *this;
  }
};

class PageEncoder {
public:
  static constexpr size_t kPagesPerMessage = 256;

  // xbzrleCacheBytes: 0 for none (only Compression::Auto uses one).
  PageEncoder(const GuestMemory& memory, Compression compression, uint64_t xbzrleCacheBytes = 0);

  enum class Reading { Copied, LiveOntoZeros, Paused };
  // A message for channel holding pages (GuestMemory numbers, at most kPagesPerMessage) of round.
  std::unique_ptr<OutgoingMessage> build(const Channel& channel, uint32_t round, std::span<const uint64_t> pages,
                                         Reading reading);

  // Epochs, in two steps: inside the pause, stage() only copies the pages into the message's
  // staging buffer (a memcpy a page); once the guest runs again, finishStaged() encodes them in
  // place and fills in the envelope, adding (frame, page) of each to digest.
  struct Staged {
    std::unique_ptr<OutgoingMessage> message;
    std::vector<uint64_t> pages;
    uint8_t* staging = nullptr;
  };
  Staged stage(std::span<const uint64_t> pages);
  // Buffers for stage() that are used again (touched once, not per epoch).
  void useStagingPool(std::shared_ptr<StagingPool> pool) { pool_ = std::move(pool); }
  void finishStaged(const Channel& channel, Staged& staged, uint64_t epoch, XXH3_state_t* digest);

  EncodingCounts counts() const;
  // Compression::Auto: whether lz4 is tried (default yes). Any thread.
  void setLz4(bool on) { lz4_.store(on, std::memory_order_relaxed); }

private:
  bool tryLz4() const {
    return compression_ == Compression::Lz4 || (compression_ == Compression::Auto && lz4_.load(std::memory_order_relaxed));
  }
  // Encodes the page staged in slot (4 KiB) over itself; returns the encoding and its length.
  std::pair<schema::Encoding, size_t> encodeInPlace(uint64_t page, uint8_t* slot);
  // Encodes the page at live (guest memory) into slot without copying it first, as reading says.
  std::pair<schema::Encoding, size_t> encodeLive(uint64_t page, const uint8_t* live, uint8_t* slot, Reading reading);

  const GuestMemory& memory_;
  Compression compression_;
  std::atomic<bool> lz4_{true};
  std::shared_ptr<StagingPool> pool_;
  std::unique_ptr<codec::XbzrleCache> cache_;
  std::vector<uint8_t> encoded_, delta_;
  EncodingCounts counts_;
};

}  // namespace tandem
