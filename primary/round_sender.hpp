// RoundSender: sends one precopy round (or the final stop-and-copy) of pages on a channel, encoded
// by `threads` encoder threads while the calling thread sends what they finished (ZeroMQ's own I/O
// thread puts it on the wire), so that encoding and the link overlap. Each encoder owns the pages
// of every threads-th 2 MiB of guest memory, always the same ones, so that its share of the XBZRLE
// cache always holds what the target was last sent of them. Rounds of a few batches are encoded
// on the calling thread: starting threads would cost more than it saves (and small rounds are
// the ones inside the downtime). With Compression::Auto, lz4 is tried only while the link holds
// the sender up: on a link faster than lz4 (loopback carries some 2 GB/s here, lz4 makes 0.6 GB/s
// a core of text) pages go raw when the link waits for them.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "memory/dirty_tracker.hpp"
#include "primary/bandwidth_limit.hpp"
#include "primary/page_encoder.hpp"

namespace tandem {

class RoundSender {
public:
  RoundSender(const GuestMemory& memory, Compression compression, uint64_t xbzrleCacheBytes, unsigned threads);

  // Sends pages of round, read as `reading` says (see PageEncoder); afterSend(pages in the message)
  // runs after each message. Throws Error when the channel stops taking messages.
  void send(Channel& channel, const PageSet& pages, uint32_t round, PageEncoder::Reading reading, BandwidthLimit& limit,
            const std::function<void(size_t)>& afterSend);
  EncodingCounts counts() const;

private:
  static constexpr uint64_t kPagesPerShare = 512;  // 2 MiB

  const GuestMemory& memory_;
  std::vector<std::unique_ptr<PageEncoder>> encoders_;
};

}  // namespace tandem
