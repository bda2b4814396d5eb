#include "primary/round_sender.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>

#include "base/bounded_queue.hpp"
#include "base/error.hpp"
#include "base/thread.hpp"

namespace tandem {

namespace {

// Calls f(page) for each page of set that belongs to share `share` of `shares`, in order. Walks
// the share's own blocks of words, with no division per word: the final round runs this over the
// whole of memory inside the downtime (a division per word cost 100 us on a 4 GiB guest).
template <typename F>
void forEachPage(const PageSet& set, unsigned share, unsigned shares, uint64_t pagesPerShare, F&& f) {
  const uint64_t wordsPerShare = pagesPerShare / 64;  // a word never straddles two shares
  const uint64_t words = set.words.size();
  for (uint64_t block = share * wordsPerShare; block < words; block += shares * wordsPerShare)
    for (uint64_t w = block; w < std::min(words, block + wordsPerShare); ++w) {
      uint64_t first = w * 64;
      for (uint64_t bits = set.words[w]; bits; bits &= bits - 1) f(first + static_cast<uint64_t>(__builtin_ctzll(bits)));
    }
}

struct Encoded {
  std::unique_ptr<OutgoingMessage> message;
  size_t pages = 0;
};

// Compression::Auto, decided by what limits the round: while the link (or the bandwidth cap) holds
// the sender up (ZeroMQ's queue is full), each byte saved is time saved, so lz4 is tried; while the
// link waits for the encoders, lz4's microseconds a page are the delay, so pages go raw. Judged over
// the last few messages, with a dead band between so that it does not flip at every message.
class LinkWatch {
public:
  // One message sent: began = before pacing and sending, ended = after. Returns the new setting
  // when it changes.
  std::optional<bool> sent(std::chrono::steady_clock::time_point began, std::chrono::steady_clock::time_point ended) {
    if (last_) {
      double cycle = std::chrono::duration<double>(ended - *last_).count();
      double held = std::chrono::duration<double>(ended - began).count();
      if (cycle > 0) heldShare_ = 0.75 * heldShare_ + 0.25 * (held / cycle);
    }
    last_ = ended;
    bool want = heldShare_ > kCompressAbove ? true : heldShare_ < kRawBelow ? false : lz4_;
    if (want == lz4_) return std::nullopt;
    lz4_ = want;
    return want;
  }

private:
  static constexpr double kCompressAbove = 0.30, kRawBelow = 0.10;
  std::optional<std::chrono::steady_clock::time_point> last_;
  double heldShare_ = 0.5;  // (starts inside the dead band: lz4, as the encoders do)
  bool lz4_ = true;
};

}  // namespace

RoundSender::RoundSender(const GuestMemory& memory, Compression compression, uint64_t xbzrleCacheBytes, unsigned threads)
    : memory_(memory) {
  threads = std::max(threads, 1u);
  for (unsigned i = 0; i < threads; ++i)
    encoders_.push_back(std::make_unique<PageEncoder>(memory, compression, xbzrleCacheBytes / threads));
}

EncodingCounts RoundSender::counts() const {
  EncodingCounts total;
  for (const auto& e : encoders_) total += e->counts();
  return total;
}

void RoundSender::send(Channel& channel, const PageSet& pages, uint32_t round, PageEncoder::Reading reading,
                       BandwidthLimit& limit, const std::function<void(size_t)>& afterSend) {
  unsigned shares = static_cast<unsigned>(encoders_.size());
  LinkWatch watch;
  auto sendOne = [&](Encoded encoded) {
    auto began = std::chrono::steady_clock::now();
    limit.pace();
    uint64_t before = channel.bytesSent();
    if (!channel.send(std::move(encoded.message))) throw Error(ErrorKind::Disconnected, "the target stopped taking pages");
    limit.account(channel.bytesSent() - before);
    if (auto lz4 = watch.sent(began, std::chrono::steady_clock::now()))
      for (auto& e : encoders_) e->setLz4(*lz4);
    afterSend(encoded.pages);
  };
  // Each encoder's pages of this round, in batches of one message.
  auto encodeShare = [&](unsigned share, const std::function<bool(Encoded)>& deliver) {
    std::vector<uint64_t> batch;
    bool going = true;
    auto flush = [&] {
      going = deliver(Encoded{encoders_[share]->build(channel, round, batch, reading), batch.size()});
      batch.clear();
    };
    forEachPage(pages, share, shares, kPagesPerShare, [&](uint64_t page) {
      if (!going) return;
      batch.push_back(page);
      if (batch.size() == PageEncoder::kPagesPerMessage) flush();
    });
    if (going && !batch.empty()) flush();
  };

  if (shares == 1 || pages.count() < 4 * PageEncoder::kPagesPerMessage) {
    for (unsigned share = 0; share < shares; ++share)
      encodeShare(share, [&](Encoded e) {
        sendOne(std::move(e));
        return true;
      });
    return;
  }
  BoundedQueue<Encoded> ready(2 * shares);
  std::vector<std::unique_ptr<NamedThread>> workers;
  std::atomic<unsigned> running{shares};
  for (unsigned share = 0; share < shares; ++share)
    workers.push_back(std::make_unique<NamedThread>(concat("encode", share), [&, share] {
      try {
        encodeShare(share, [&](Encoded e) { return ready.push(std::move(e)); });
      } catch (...) {
        ready.close();  // the round is lost: the sender stops, join() rethrows this
        throw;
      }
      if (--running == 0) ready.close();
    }));
  try {
    while (auto encoded = ready.pop()) sendOne(std::move(*encoded));
  } catch (...) {
    ready.close();  // the encoders stop at their next message
    throw;
  }
  for (auto& w : workers) {
    w->join();
    w->rethrowIfFailed();
  }
}

}  // namespace tandem
