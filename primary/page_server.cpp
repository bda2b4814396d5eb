#include "primary/page_server.hpp"

#include "base/error.hpp"
#include "base/log.hpp"
#include "transport/page_bitmap.hpp"

namespace tandem {

namespace {

using Clock = std::chrono::steady_clock;

double msSince(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

}  // namespace

PageServer::PageServer(const GuestMemory& memory, Link& link, PageSet owed, BandwidthLimit& limit, const std::string& to,
                       ProgressBoard& progress, Compression compression, Recovery recovery)
    : memory_(memory),
      link_(link),
      owed_(std::move(owed)),
      owedCount_(owed_.count()),
      owedAtStart_(owedCount_),
      limit_(limit),
      to_(to),
      background_(memory, compression),
      urgent_(memory, compression),
      heartbeat_(std::in_place, *link.urgent),
      recovery_(recovery),
      progress_(progress) {}

PostcopyStats PageServer::serve() {
  started_ = Clock::now();
  log::info("postcopy: ", owedCount_, " pages to serve to ", to_);
  while (!complete_) {
    takeOperatorRequest();
    // Answers that found the queue full, requests, whatever else the target said, then one
    // background batch.
    answerRequests({});
    while (receive(*link_.urgent)) {
    }
    receive(*link_.bulk);
    if (complete_) break;
    heartbeat_->beatIfDue();
    if (!pausedAt_ && heartbeat_->peerSilent()) pause();
    if (pausedAt_ && Clock::now() - heartbeat_->lastHeard() > recovery_.wait)
      throw Error(ErrorKind::Disconnected, concat(to_, " stayed silent for ", recovery_.wait.count(), " s (--postcopy-wait)"));
    if (!pausedAt_ && pushBackground()) continue;
    // Nothing to send now: wait for the target, the next heartbeat or the bandwidth limit.
    auto until = std::min(heartbeat_->nextBeat(), Clock::now() + std::chrono::milliseconds(owedCount_ && !pausedAt_ ? 1 : 100));
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
  heartbeat_->heard();
  auto envelope = message.envelope();
  // Paused and the target heard again: it says what it still needs once asked (or on its own).
  if (pausedAt_ && !envelope.isPostcopyResume()) askWhatIsNeeded();
  switch (envelope.which()) {
    case schema::Envelope::PAGE_REQUEST: {
      std::vector<uint64_t> frames;
      for (uint64_t frame : envelope.getPageRequest()) frames.push_back(frame);
      answerRequests(frames);
      break;
    }
    case schema::Envelope::HEARTBEAT: break;
    case schema::Envelope::RUNNING:
      if (!running_) stats_.runningAfterMs = msSince(started_);
      running_ = true;
      break;
    case schema::Envelope::POSTCOPY_RESUME: resumeWith(envelope.getPostcopyResume().getNeeded()); break;
    case schema::Envelope::POSTCOPY_COMPLETE: {
      auto done = envelope.getPostcopyComplete();
      stats_.faults = done.getFaults();
      stats_.zeroFaults = done.getZeroFaults();
      stats_.medianUs = done.getMedianUs();
      stats_.p99Us = done.getP99Us();
      stats_.maxUs = done.getMaxUs();
      // (its Running may have been lost with a connection: it completes only once it ran the guest)
      if (!running_) stats_.runningAfterMs = msSince(started_);
      running_ = true;
      if (pausedAt_) stats_.pausedMs += msSince(*pausedAt_);
      complete_ = true;
      break;
    }
    case schema::Envelope::REFUSAL:
      throw Error(ErrorKind::Failed, concat(to_, " gave up: ", envelope.getRefusal().getText().cStr()));
    case schema::Envelope::ROUND_ACK: break;  // of the last precopy round, which nobody waits for
    default: throw Error(ErrorKind::Failed, concat(to_, " sent a message out of order during postcopy"));
  }
}

// Requested pages go on the urgent channel, always, even if a background batch carried them
// already (that batch may still be queued). Those the queue has no room for wait in unanswered_
// and go first next time; a resume forgets them (the target asks again for what it waits on).
void PageServer::answerRequests(const std::vector<uint64_t>& frames) {
  for (uint64_t frame : frames) {
    auto page = memory_.pageOfFrame(frame);
    if (!page) throw Error(ErrorKind::Failed, concat(to_, " asked for frame ", frame, ", outside guest memory"));
    unanswered_.push_back(*page);
    if (owed_.test(*page)) {
      owed_.clear(*page);
      --owedCount_;
    }
    cursor_ = *page + 1;
  }
  stats_.requested += frames.size();
  size_t sent = 0;
  while (sent < unanswered_.size()) {
    auto n = std::min(PageEncoder::kPagesPerMessage, unanswered_.size() - sent);
    auto message = urgent_.build(*link_.urgent, 0, std::span(unanswered_).subspan(sent, n), PageEncoder::Reading::Paused);
    if (!link_.urgent->trySend(message)) break;
    sent += n;
  }
  unanswered_.erase(unanswered_.begin(), unanswered_.begin() + static_cast<ptrdiff_t>(sent));
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
    p.pagesSent = owedAtStart_ - std::min(owedAtStart_, owedCount_);
    p.bytes = stats_.earlierLinksBytes + link_.bytesSent();
    double seconds = std::max(1e-3, msSince(started_) / 1000);
    p.transferMiBps = static_cast<double>(p.bytes) / seconds / kMiB;
    p.leftMs = static_cast<double>(owedCount_) / (std::max<double>(static_cast<double>(p.pagesSent), 1) / seconds) * 1000;
  });
  return true;
}

void PageServer::takeOperatorRequest() {
  auto request = recovery_.requests ? recovery_.requests->take() : std::nullopt;
  if (!request) return;
  if (request->kind == MigrationRequest::Kind::GiveUp) {
    log::warn("postcopy to ", to_, " given up by the operator: ", request->why);
    throw Error(ErrorKind::Failed, concat("the operator gave the postcopy up (", request->why, ")"));
  }
  reconnect(request->to.empty() ? to_ : request->to);
}

void PageServer::pause() {
  pausedAt_ = heartbeat_->lastHeard();
  ++stats_.pauses;
  log::warn("postcopy paused: ", to_, " has been silent for ", kPeerSilenceLimit.count(), " s; the ", owedCount_,
            " pages it still needs stay here and the guest stays paused here; waiting up to ", recovery_.wait.count(),
            " s (--postcopy-wait) for the link (tandem migrate --resume connects anew, --give-up ends it)");
  progress_.update([&](MigrationProgress& p) {
    p.phase = "postcopy-paused";
    p.silentSince = *pausedAt_;
    p.postcopyWaitMs = static_cast<double>(recovery_.wait.count()) * 1000;
  });
}

void PageServer::askWhatIsNeeded() {
  if (askedAt_ && Clock::now() - *askedAt_ < std::chrono::seconds(1)) return;
  capnp::MallocMessageBuilder message;
  link_.urgent->start(message).initPostcopyResume().setReconnected(reconnected_);
  link_.urgent->trySend(message);
  askedAt_ = Clock::now();
}

void PageServer::resumeWith(capnp::Data::Reader needed) {
  auto pages = bitmapOf(needed, memory_.pageCount());
  if (!pages) throw Error(ErrorKind::Failed, concat(to_, " sent a list of the pages it needs that does not fit the guest's memory"));
  owed_ = std::move(*pages);
  owedCount_ = owed_.count();
  unanswered_.clear();  // it asks again for the pages its vCPUs wait on
  askedAt_.reset();
  reconnected_ = false;
  if (!pausedAt_) {
    log::info("postcopy: ", to_, " paused and resumed; it still needs ", owedCount_, " pages");
    return;
  }
  double ms = msSince(*pausedAt_);
  stats_.pausedMs += ms;
  pausedAt_.reset();
  log::warn("postcopy resumed: ", to_, " is back after ", static_cast<uint64_t>(ms), " ms of silence and still needs ",
            owedCount_, " pages");
  progress_.update([&](MigrationProgress& p) {
    p.phase = "postcopy";
    p.silentSince.reset();
  });
}

void PageServer::reconnect(const std::string& to) {
  log::warn("postcopy: connecting to ", to, " anew, as the operator asked");
  uint64_t session = link_.bulk->session();
  Link fresh = Link::connect(to);
  stats_.earlierLinksBytes += link_.bytesSent();
  fresh.setSession(session);
  heartbeat_.reset();
  pendingBatch_.reset();
  for (uint64_t page : pendingPages_) setOwed(page);  // (the target's answer replaces the list anyway)
  pendingPages_.clear();
  unanswered_.clear();
  link_ = std::move(fresh);
  heartbeat_.emplace(*link_.urgent);
  to_ = to;
  if (!pausedAt_) pause();  // until the target says what it needs
  reconnected_ = true;
  askedAt_.reset();
  askWhatIsNeeded();
}

void PageServer::setOwed(uint64_t page) {
  if (owed_.test(page)) return;
  owed_.set(page);
  ++owedCount_;
}

}  // namespace tandem
