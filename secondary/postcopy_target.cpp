#include "secondary/postcopy_target.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "base/error.hpp"
#include "base/log.hpp"
#include "metrics/names.hpp"
#include "secondary/received_page.hpp"
#include "transport/page_bitmap.hpp"

namespace tandem {

namespace {

using Clock = std::chrono::steady_clock;

double percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  return sorted[std::min(sorted.size() - 1, static_cast<size_t>(p * static_cast<double>(sorted.size())))];
}

// Gives the host's copies of owed pages back, run by run: what precopy sent of them is stale.
void discardOwed(GuestMemory& memory, const PageSet& owed) {
  uint64_t pages = memory.pageCount();
  for (uint64_t p = 0; p < pages;) {
    if (!owed.test(p)) {
      p = owed.words[p / 64] >> (p % 64) ? p + 1 : (p / 64 + 1) * 64;
      continue;
    }
    uint64_t end = p;
    while (end < pages && owed.test(end)) ++end;
    memory.discard(p, end - p);
    p = end;
  }
}

}  // namespace

PostcopyTarget::PostcopyTarget(GuestMemory& memory, Link& link, std::string bulkEndpoint, PageSet owed, Memory before,
                               std::chrono::seconds wait)
    : memory_(memory),
      link_(link),
      bulkEndpoint_(std::move(bulkEndpoint)),
      owed_((before == Memory::HasStaleCopies ? discardOwed(memory, owed) : void(), std::move(owed))),
      owedCount_(owed_.count()),
      userfault_(memory),
      wait_(wait),
      heartbeat_(std::in_place, *link.urgent) {
  log::info("postcopy: ", owedCount_, " pages to come from the source; the guest may start");
  owedForMetrics_ = owedCount_;
  thread_ = std::make_unique<NamedThread>("postcopy", [this] { loop(); });
}

PostcopyTarget::~PostcopyTarget() {
  stop_ = true;
  wake_.signal();
  thread_.reset();
}

void PostcopyTarget::reportRunning() {
  startedFlag_ = true;
  wake_.signal();
}

void PostcopyTarget::loop() {
  try {
    // Once complete, it stays `wait` longer for a source that missed PostcopyComplete.
    while (!stop_ && !(complete_ && Clock::now() - completedAt_ > wait_)) {
      auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(heartbeat_->nextBeat() - Clock::now());
      Channel::waitAny({link_.urgent.get(), link_.bulk.get()}, {userfault_.fd(), wake_.fd()},
                       std::clamp(timeout, std::chrono::milliseconds(0), std::chrono::milliseconds(100)));
      wake_.consume();
      if (!complete_) serveFaults();
      sendRequests();
      if (startedFlag_ && !runningSent_) {
        capnp::MallocMessageBuilder message;
        link_.urgent->start(message).setRunning();
        runningSent_ = link_.urgent->trySend(message);  // (a full queue: again next time)
      }
      // Requested pages first; then one bulk message, so that a fault never waits for many.
      for (int i = 0; i < 64 && receive(*link_.urgent); ++i) {
      }
      receive(*link_.bulk);
      if (owedCount_ == 0 && runningSent_ && !complete_) finish();
      if (complete_ && !completeSent_) sendComplete();
      heartbeat_->beatIfDue();
      if (!complete_) watchSilence();
    }
  } catch (const Error& e) {
    fail(e.what());
  }
}

void PostcopyTarget::watchSilence() {
  if (!pausedAt_ && heartbeat_->peerSilent()) {
    pausedAt_ = heartbeat_->lastHeard();
    log::warn("postcopy paused: the source has been silent for ", kPeerSilenceLimit.count(), " s; ", owedCount_,
              " pages are still there, vCPUs that need one wait for it, the others run; waiting up to ", wait_.count(),
              " s (--postcopy-wait) for the source to come back");
    std::lock_guard lock(metricsMutex_);
    ++pausesForStatus_;
    phaseForStatus_ = "postcopy-paused";
    silentSinceForStatus_ = pausedAt_;
    listenAnew(Channels::Both);
  }
  if (pausedAt_ && Clock::now() - *pausedAt_ > wait_)
    fail(concat("the source stayed silent for ", wait_.count(), " s (--postcopy-wait)"));
}

void PostcopyTarget::heard(Answer answer) {
  heartbeat_->heard();
  if (!pausedAt_) return;
  log::warn("postcopy resumed: the source is back after ",
            static_cast<uint64_t>(std::chrono::duration<double, std::milli>(Clock::now() - *pausedAt_).count()),
            " ms of silence; ", owedCount_, " pages still to come");
  pausedAt_.reset();
  {
    std::lock_guard lock(metricsMutex_);
    phaseForStatus_ = complete_ ? "completed" : "postcopy";
    silentSinceForStatus_.reset();
  }
  if (answer == Answer::Now) sendNeeded();
}

// The source's old connections may be open on this side still: their source ends were closed
// while the link was cut, and a listening PAIR socket takes one peer at a time, so the source's
// new connection would wait until this side's TCP gave up on the old one (its retransmissions back
// off to tens of seconds). Both channels listen anew when the source falls silent (a source whose
// old connections live reconnects by itself, and what was lost on them it sends again from the
// list of needed pages), and the bulk channel again when the source says it connected anew.
void PostcopyTarget::listenAnew(Channels which) {
  log::warn("postcopy: listening anew on ", bulkEndpoint_, which == Channels::Both ? " and its urgent port" : "",
            which == Channels::Both ? " (the source is silent)" : " (the source connected anew)");
  uint64_t session = link_.bulk->session();
  link_.bulk.reset();
  link_.bulk = Channel::listen(bulkEndpoint_);
  link_.bulk->setSession(session);
  if (which == Channels::BulkOnly) return;
  heartbeat_.reset();
  link_.urgent.reset();
  link_.urgent = Channel::listen(urgentEndpoint(bulkEndpoint_));
  link_.urgent->setSession(session);
  heartbeat_.emplace(*link_.urgent);
}

void PostcopyTarget::sendNeeded() {
  if (complete_) {  // it missed PostcopyComplete
    completeSent_ = false;
    return;
  }
  capnp::MallocMessageBuilder message;
  link_.urgent->start(message).initPostcopyResume().setNeeded(bitmapBytes(owed_));
  link_.urgent->trySend(message);  // (lost: the source asks again)
  // What went before may be lost with the old connection: the requests vCPUs wait on go again.
  for (const auto& [page, since] : waiting_) unsent_.push_back(memory_.gpaOfPage(page).value / kPageSize);
  sendRequests();
}

void PostcopyTarget::serveFaults() {
  std::vector<uint64_t> frames;
  auto now = Clock::now();
  for (uint64_t page : userfault_.takeFaults()) {
    if (!owed_.test(page)) {
      // Never the source's (or installed a moment ago, and then this only wakes the faulter).
      if (userfault_.installZero(page)) {
        ++zeroFaults_;
        std::lock_guard lock(metricsMutex_);
        zeroFaultsForMetrics_ = zeroFaults_;
      }
      continue;
    }
    if (waiting_.emplace(page, now).second) frames.push_back(memory_.gpaOfPage(page).value / kPageSize);
  }
  unsent_.insert(unsent_.end(), frames.begin(), frames.end());
  sendRequests();
}

void PostcopyTarget::sendRequests() {
  if (unsent_.empty()) return;
  capnp::MallocMessageBuilder message;
  auto list = link_.urgent->start(message).initPageRequest(static_cast<unsigned>(unsent_.size()));
  for (unsigned i = 0; i < unsent_.size(); ++i) list.set(i, unsent_[i]);
  // Never blocks: with the queue full the requests wait here, and silence tells if the source is gone.
  if (link_.urgent->trySend(message)) unsent_.clear();
}

bool PostcopyTarget::receive(Channel& channel) {
  Received r = channel.receive(std::chrono::milliseconds(0));
  if (r.kind == Received::Kind::Timeout) return false;
  if (r.kind == Received::Kind::Refused) fail(concat("the source sent ", r.problem));
  auto envelope = r.message->envelope();
  heard(envelope.isPostcopyResume() ? Answer::Later : Answer::Now);
  switch (envelope.which()) {
    case schema::Envelope::POSTCOPY_RESUME:  // the source asks what is still needed
      if (envelope.getPostcopyResume().getReconnected()) listenAnew(Channels::BulkOnly);
      sendNeeded();
      break;
    case schema::Envelope::PAGES:
      decodeReceivedPages(memory_, envelope.getPages(), Deltas::Refused, [&](uint64_t page, const uint8_t* bytes) {
        if (owed_.test(page)) install(page, bytes);
      });
      break;
    case schema::Envelope::HEARTBEAT: break;
    case schema::Envelope::REFUSAL: fail(concat("the source gave up: ", envelope.getRefusal().getText().cStr()));
    default: fail("the source sent a message out of order");
  }
  return true;
}

void PostcopyTarget::install(uint64_t page, const uint8_t* bytes) {
  userfault_.install(page, bytes);
  owed_.clear(page);
  --owedCount_;
  std::lock_guard lock(metricsMutex_);
  owedForMetrics_ = owedCount_;
  if (auto it = waiting_.find(page); it != waiting_.end()) {
    serviceUs_.push_back(std::chrono::duration<double, std::micro>(Clock::now() - it->second).count());
    faultSeconds_.observe(serviceUs_.back() / 1e6);
    waiting_.erase(it);
  }
}

void PostcopyTarget::collectMetrics(metrics::Families& out) const {
  namespace n = metrics::names;
  std::lock_guard lock(metricsMutex_);
  out.histogram(n::kPostcopyFault, "From a fault on a page still at the source to the page installed", faultSeconds_);
  out.counter(n::kPostcopyZeroFaults, "Faults on pages the source never had (zeros at once)", static_cast<double>(zeroFaultsForMetrics_));
  out.gauge(n::kPostcopyOwedPages, "Pages still to come from the source", static_cast<double>(owedForMetrics_));
}

void PostcopyTarget::finish() {
  userfault_.unregister();
  std::sort(serviceUs_.begin(), serviceUs_.end());
  auto done = link_.urgent->start(completeMessage_).initPostcopyComplete();
  done.setFaults(serviceUs_.size());
  done.setZeroFaults(zeroFaults_);
  done.setMedianUs(percentile(serviceUs_, 0.5));
  done.setP99Us(percentile(serviceUs_, 0.99));
  done.setMaxUs(serviceUs_.empty() ? 0 : serviceUs_.back());
  log::info("postcopy complete: ", serviceUs_.size(), " faults waited for the source (median ", percentile(serviceUs_, 0.5),
            " us, p99 ", percentile(serviceUs_, 0.99), " us), ", zeroFaults_, " pages were zeros");
  complete_ = true;
  completedAt_ = Clock::now();
  std::lock_guard lock(metricsMutex_);
  phaseForStatus_ = "completed";
  silentSinceForStatus_.reset();
}

void PostcopyTarget::sendComplete() { completeSent_ = link_.urgent->trySend(completeMessage_); }

nlohmann::json PostcopyTarget::status() const {
  std::lock_guard lock(metricsMutex_);
  nlohmann::json j{{"direction", "incoming"}, {"mode", "postcopy"}, {"phase", phaseForStatus_},
                   {"pages_owed", owedForMetrics_}, {"pauses", pausesForStatus_}};
  if (silentSinceForStatus_) {
    j["silent_ms"] = std::chrono::duration<double, std::milli>(Clock::now() - *silentSinceForStatus_).count();
    j["postcopy_wait_ms"] = static_cast<double>(wait_.count()) * 1000;
  }
  return j;
}

void PostcopyTarget::fail(const std::string& why) {
  log::error("postcopy failed: ", why, ". ", owedCount_, " pages of the guest never arrived and it cannot run without "
             "them: the guest is stopped and this standby exits");
  std::fflush(nullptr);
  ::_exit(1);
}

}  // namespace tandem
