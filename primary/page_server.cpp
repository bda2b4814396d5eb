#include "primary/page_server.hpp"

#include "base/error.hpp"
#include "base/log.hpp"

namespace tandem {

namespace {

using Clock = std::chrono::steady_clock;

double msSince(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

}  // namespace

PageServer::PageServer(const GuestMemory& memory, Link& link, PageSet owed, BandwidthLimit& limit, const std::string& to,
                       ProgressBoard& progress, Compression compression)
    : memory_(memory),
      link_(link),
      owed_(std::move(owed)),
      owedCount_(owed_.count()),
      owedAtStart_(owedCount_),
      limit_(limit),
      to_(to),
      background_(memory, compression),
      urgent_(memory, compression),
      heartbeat_(*link.urgent),
      progress_(progress) {}

PostcopyStats PageServer::serve() {
  started_ = Clock::now();
  log::info("postcopy: ", owedCount_, " pages to serve to ", to_);
  while (!complete_) {
    // Requests first, then whatever else the target said, then one background batch.
    while (receive(*link_.urgent)) {
    }
    receive(*link_.bulk);
    if (complete_) break;
    heartbeat_.beatIfDue();
    if (heartbeat_.peerSilent())
      throw Error(ErrorKind::Disconnected, concat(to_, " went silent for ", kPeerSilenceLimit.count(), " s during postcopy"));
    if (pushBackground()) continue;
    // Nothing to send now: wait for the target, the next heartbeat or the bandwidth limit.
    auto until = std::min(heartbeat_.nextBeat(), Clock::now() + std::chrono::milliseconds(owedCount_ ? 1 : 100));
    auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    Channel::waitAny({link_.urgent.get(), link_.bulk.get()}, {}, std::max(timeout, std::chrono::milliseconds(0)));
  }
  stats_.ms = msSince(started_);
  return stats_;
}

bool PageServer::receive(Channel& channel) {
  Received r = channel.receive(std::chrono::milliseconds(0));
  if (r.kind == Received::Kind::Timeout) return false;
  if (r.kind == Received::Kind::Refused) throw Error(ErrorKind::Failed, concat("refused what ", to_, " sent: ", r.problem));
  handle(*r.message);
  return true;
}

void PageServer::handle(Incoming& message) {
  heartbeat_.heard();
  auto envelope = message.envelope();
  switch (envelope.which()) {
    case schema::Envelope::PAGE_REQUEST: answerRequest(envelope.getPageRequest()); break;
    case schema::Envelope::HEARTBEAT: break;
    case schema::Envelope::RUNNING:
      running_ = true;
      stats_.runningAfterMs = msSince(started_);
      break;
    case schema::Envelope::POSTCOPY_COMPLETE: {
      auto done = envelope.getPostcopyComplete();
      stats_.faults = done.getFaults();
      stats_.zeroFaults = done.getZeroFaults();
      stats_.medianUs = done.getMedianUs();
      stats_.p99Us = done.getP99Us();
      stats_.maxUs = done.getMaxUs();
      if (!running_) throw Error(ErrorKind::Failed, concat(to_, " reported postcopy complete before it ran the guest"));
      complete_ = true;
      break;
    }
    case schema::Envelope::REFUSAL:
      throw Error(ErrorKind::Failed, concat(to_, " gave up: ", envelope.getRefusal().getText().cStr()));
    case schema::Envelope::ROUND_ACK: break;  // of the last precopy round, which nobody waits for
    default: throw Error(ErrorKind::Failed, concat(to_, " sent a message out of order during postcopy"));
  }
}

void PageServer::answerRequest(const capnp::List<uint64_t>::Reader& frames) {
  std::vector<uint64_t> pages;
  for (uint64_t frame : frames) {
    auto page = memory_.pageOfFrame(frame);
    if (!page) throw Error(ErrorKind::Failed, concat(to_, " asked for frame ", frame, ", outside guest memory"));
    pages.push_back(*page);
    if (owed_.test(*page)) {
      owed_.clear(*page);
      --owedCount_;
    }
    cursor_ = *page + 1;
  }
  stats_.requested += pages.size();
  // Always sent, even if a background batch carried it already: that batch may still be queued.
  for (size_t i = 0; i < pages.size(); i += PageEncoder::kPagesPerMessage) {
    auto n = std::min(PageEncoder::kPagesPerMessage, pages.size() - i);
    if (!link_.urgent->send(urgent_.build(*link_.urgent, 0, std::span(pages).subspan(i, n), PageEncoder::Reading::Paused))) throw Error(ErrorKind::Disconnected, concat(to_, " stopped taking pages"));
  }
}

bool PageServer::pushBackground() {
  if (!pendingBatch_) {
    if (owedCount_ == 0 || limit_.wait().count() > 0) return false;
    uint64_t pages = memory_.pageCount();
    pendingPages_.clear();
    // From the cursor on, wrapping around once.
    for (uint64_t scanned = 0; scanned < pages && pendingPages_.size() < PageEncoder::kPagesPerMessage;) {
      uint64_t p = (cursor_ + scanned) % pages;
      uint64_t word = owed_.words[p / 64] >> (p % 64);
      if (word == 0) {
        scanned += 64 - p % 64;
        continue;
      }
      uint64_t skip = static_cast<uint64_t>(__builtin_ctzll(word));
      if (scanned + skip >= pages) break;
      p += skip;
      scanned += skip + 1;
      pendingPages_.push_back(p);
      owed_.clear(p);
      --owedCount_;
    }
    cursor_ = pendingPages_.empty() ? cursor_ : pendingPages_.back() + 1;
    pendingBatch_ = background_.build(*link_.bulk, 0, pendingPages_, PageEncoder::Reading::Paused);
  }
  uint64_t before = link_.bulk->bytesSent();
  if (!link_.bulk->trySend(pendingBatch_)) return false;
  limit_.account(link_.bulk->bytesSent() - before);
  progress_.update([&](MigrationProgress& p) {
    p.pagesSent = owedAtStart_ - owedCount_;
    p.bytes = link_.bytesSent();
    double seconds = std::max(1e-3, msSince(started_) / 1000);
    p.transferMiBps = static_cast<double>(p.bytes) / seconds / kMiB;
    p.leftMs = static_cast<double>(owedCount_) / (static_cast<double>(p.pagesSent) / seconds) * 1000;
  });
  return true;
}

}  // namespace tandem
