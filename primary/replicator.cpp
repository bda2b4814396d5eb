#include "primary/replicator.hpp"

#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <thread>

#include "base/error.hpp"
#include "base/fault_point.hpp"
#include "base/log.hpp"
#include "primary/bandwidth_limit.hpp"
#include "primary/disk_sender.hpp"
#include "primary/round_sender.hpp"
#include "state/machine_shape_capnp.hpp"
#include "state/machine_state.hpp"
#include "transport/heartbeat.hpp"
#include "transport/link.hpp"
#include "transport/release_stream.hpp"

namespace tandem {

namespace {

using Clock = std::chrono::steady_clock;

double msSince(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }
int64_t nowNs() { return Clock::now().time_since_epoch().count(); }

// The initial sync goes on while rounds halve the dirty set, until what is left is about what an
// epoch carries anyway.
constexpr uint64_t kEpochSizedPages = 2048;
constexpr uint64_t kPagesPerChunk = dev::DiskWriteLog::kChunkBytes / kPageSize;  // for that count
constexpr uint32_t kMostSyncRounds = 10;
// Epochs sent and not yet acknowledged before the loop waits for acks instead of sealing more.
constexpr size_t kMostInFlight = 8;
constexpr auto kRetryAfter = std::chrono::milliseconds(200);
// A standby that refused this machine as incompatible is asked again this rarely: the operator has
// to change something first.
constexpr auto kRetryIncompatibleAfter = std::chrono::seconds(5);
constexpr auto kEndConfirmWithin = std::chrono::seconds(2);

struct Superseded {
  std::string why;
};
struct Incompatible {
  std::string why;
};
struct EndAsked {};

// The next message from the standby in this session: what it still sent in a session that ended
// (one connection serves them all) is dropped.
Received fromStandby(Channel& bulk, std::chrono::milliseconds timeout) {
  for (auto until = Clock::now() + timeout;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    Received r = bulk.receive(std::max(left, std::chrono::milliseconds(0)));
    if (r.kind != Received::Kind::Refused || r.why != Received::Problem::Session) return r;
  }
}

// A Refusal from the standby, as what the replicator does next.
[[noreturn]] void throwRefusal(schema::Refusal::Reader refusal, const char* what) {
  std::string text = refusal.getText().cStr();
  if (refusal.getReason() == schema::RefusalReason::SUPERSEDED) throw Superseded{text};
  if (refusal.getReason() == schema::RefusalReason::INCOMPATIBLE) throw Incompatible{text};
  throw Error(ErrorKind::Failed, concat("the standby refused ", what, ": ", text));
}

}  // namespace

Replicator::Replicator(Machine& machine, ReplicationOptions options) : machine_(machine), options_(std::move(options)) {
  machine_.outputGate().hold();  // from now on, nothing is shown that a standby does not have
}

Replicator::~Replicator() {
  stopping_ = true;
  thread_.reset();
  beats_.reset();
}

void Replicator::start() {
  beats_ = std::make_unique<NamedThread>("heartbeat", [this] { beat(); });
  thread_ = std::make_unique<NamedThread>("replicator", [this] { loop(); });
}

// Heartbeats on the urgent channel, from their own thread and connection: an epoch that takes long
// to send never makes this primary look dead, and neither does the gap between two sessions.
// The standby's echo of beat k renews our lease (primary/lease.hpp): output is shown only within
// it (a primary frozen for longer than that, then thawed, must not show what the standby may have
// shown since).
void Replicator::beat() {
  auto urgent = Channel::connect(urgentEndpoint(options_.to));
  Heartbeat heartbeat(*urgent, options_.heartbeat, options_.failoverAfter);
  uint64_t session = 0;
  while (!stopping_) {
    if (session_ != session) {  // a new session: the standby echoes only what it heard in it
      session = session_;
      urgent->setSession(session);
      lease_.forget();
    }
    if (uint64_t seq = heartbeat.beatIfDue()) lease_.sent(seq, heartbeat.lastBeatAt());
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(heartbeat.nextBeat() - Clock::now());
    Received r = urgent->receive(std::clamp(wait, std::chrono::milliseconds(1), std::chrono::milliseconds(50)));
    if (r.kind != Received::Kind::Message || !r.message->envelope().isHeartbeat()) continue;
    lastHeardNs_ = nowNs();
    lease_.echoed(r.message->envelope().getHeartbeat().getEcho());
  }
}

// An epoch with output waiting closes after a fifth of --epoch-ms: answers wait less, and the
// guest is paused at most five times as often as without output.
Clock::duration Replicator::shortestEpoch() const {
  return std::max<Clock::duration>(std::chrono::milliseconds(1), options_.epoch / 5);
}

void Replicator::setState(ReplicationState state, std::string reason) {
  std::lock_guard lock(statusMutex_);
  figures_.state = state;
  figures_.reason = std::move(reason);
}

void Replicator::holdGuestIfOutputFull() {
  if (!pausedForOutput_ && machine_.outputGate().overLimit()) {
    log::warn("the guest's held output is over its limit: the guest is paused until a standby acknowledges it");
    machine_.pause();
    pausedForOutput_ = true;
  }
}

void Replicator::loop() {
  machine_.startDirtyTracking();  // on for good: switching it costs the guest
  // One connection for every session: a fresh socket's first connection races the end of the old
  // one at the standby (whose PAIR socket takes one peer), and a Hello lost that way cost seconds.
  // What a session that ended still had on its way carries its session id, and is dropped.
  bulk_ = Channel::connect(options_.to);
  std::string lastIncompatible;
  while (!stopping_) {
    auto retryAfter = kRetryAfter;
    try {
      if (endAsked_) throw EndAsked{};
      session();
      return;  // it ends normally only once the guest was handed over or ended
    } catch (const Superseded& s) {
      setState(ReplicationState::Superseded, s.why);
      log::error("this primary was superseded: ", s.why, "; its guest runs on the standby now and stops here for good");
      machine_.stop();
      return;
    } catch (const EndAsked&) {
      // Between sessions: a standby may still hold an epoch of ours, and must hear of the end.
      bulk_->setSession(std::random_device{}() | uint64_t{std::random_device{}()} << 32 | 1);
      return tellEnd(*bulk_);
    } catch (const Incompatible& i) {
      setState(ReplicationState::Unprotected, i.why);
      if (i.why != lastIncompatible)
        log::error("replication to ", options_.to, " is refused: ", i.why,
                   "; the guest runs unprotected with its output held (tandem status says why) until that is fixed");
      lastIncompatible = i.why;
      retryAfter = kRetryIncompatibleAfter;
      std::lock_guard lock(statusMutex_);
      ++figures_.refusals;
    } catch (const Error& e) {
      if (stopping_) return;
      setState(ReplicationState::Unprotected, e.what());
      log::warn("replication to ", options_.to, ": ", e.what(),
                "; the guest runs unprotected with its output held until a standby acknowledges it");
    }
    inFlight_.clear();  // their output stays held: a later epoch's ack releases it
    acked_.clear();
    auto until = Clock::now() + retryAfter;
    while (!stopping_ && !endAsked_ && Clock::now() < until) {
      holdGuestIfOutputFull();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

void Replicator::handshake(Channel& bulk) {
  capnp::MallocMessageBuilder message;
  auto hello = bulk.start(message).initHello();
  const auto& config = machine_.config();
  hello.setMode(schema::Mode::REPLICATE);
  hello.setMemorySize(config.memory);
  hello.setCpus(config.cpus);
  hello.setDisks(static_cast<uint32_t>(config.disks.size()));
  hello.setNets(static_cast<uint32_t>(config.nets.size()));
  hello.setGeneration(options_.generation);
  hello.setHeartbeatMs(static_cast<uint32_t>(options_.heartbeat.count()));
  hello.setFailoverAfterMs(static_cast<uint32_t>(options_.failoverAfter.count()));
  auto sizes = hello.initDiskSizes(static_cast<unsigned>(machine_.diskCount()));
  for (unsigned d = 0; d < machine_.diskCount(); ++d) sizes.set(d, machine_.disk(d).sizeBytes());
  toCapnp(machine_.shape(), hello.initShape());
  // Nobody may be listening yet: try until a standby takes it (ZeroMQ connects in the background).
  while (!bulk.trySend(message)) {
    if (stopping_) throw Error(ErrorKind::Failed, "stopping");
    if (endAsked_) throw EndAsked{};
    holdGuestIfOutputFull();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto until = Clock::now() + std::chrono::seconds(5);;) {
    Received r = fromStandby(bulk, std::chrono::milliseconds(50));
    if (stopping_) throw Error(ErrorKind::Failed, "stopping");
    if (endAsked_) throw EndAsked{};
    if (r.kind == Received::Kind::Timeout) {
      if (Clock::now() > until) throw Error(ErrorKind::Disconnected, "the standby did not answer our Hello within 5 s");
      continue;
    }
    if (r.kind == Received::Kind::Refused) throw Error(ErrorKind::Failed, concat("the standby sent ", r.problem));
    auto envelope = r.message->envelope();
    if (envelope.isWelcome()) return;
    if (envelope.isRefusal()) throwRefusal(envelope.getRefusal(), "us");
    throw Error(ErrorKind::Failed, "the standby answered our Hello out of order");
  }
}

void Replicator::checkStandbyAlive() const {
  if (stopping_) throw Error(ErrorKind::Failed, "stopping");
  auto silentFor = std::chrono::nanoseconds(nowNs() - lastHeardNs_.load());
  if (silentFor > options_.failoverAfter)
    throw Error(ErrorKind::Disconnected,
                concat("the standby has been silent for ", std::chrono::duration_cast<std::chrono::milliseconds>(silentFor).count(), " ms"));
}

// A send never blocks for long: a standby that stopped reading is found out by its silence.
void Replicator::deliver(Channel& bulk, capnp::MallocMessageBuilder& message) {
  while (!bulk.trySend(message)) {
    checkStandbyAlive();
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

void Replicator::deliver(Channel& bulk, std::unique_ptr<OutgoingMessage> message) {
  while (!bulk.trySend(message)) {
    checkStandbyAlive();
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

// Shows the output of acknowledged epochs, in order, within our lease only (see beat()): a
// primary frozen past the failover time and thawed must not show what the standby may have shown
// since it took over. The release record is in this kernel before any of the output is shown
// (transport/release_stream.hpp), so that a standby taking over knows what it must not show again.
void Replicator::releaseAcked(ReleaseSender& release) {
  if (acked_.empty() || !lease_.holds()) return;
  // Between the record and our write a kill loses this output: nothing may come between, neither
  // another thread (SCHED_FIFO) nor a lock a preempted vCPU thread holds (the gate's, taken before).
  // The lease is checked again inside that, right before the record, and once the record is out:
  // a primary whose host froze in between finds the standby may have taken over without knowing
  // of this record, and shows nothing (the output is held again; a later release sends the record
  // again, or the standby, which has the epoch, shows it).
  RealtimeScope urgent;
  if (!lease_.holds()) return;
  uint64_t epoch = acked_.back();
  struct LeaseLost {};
  try {
    faultPoint("primary.before-record");
    machine_.outputGate().release(epoch, [&] {
      release.send(epoch);
      if (!lease_.holds()) throw LeaseLost{};
    });
  } catch (const LeaseLost&) {
    release.push();
    log::warn("replication: the lease ran out between epoch ", epoch, "'s release record and its output; the output stays held");
    return;
  }
  release.push();
  acked_.clear();
  faultPoint("primary.after-show");
  if (pausedForOutput_ && !machine_.outputGate().overLimit()) {
    machine_.resume();
    pausedForOutput_ = false;
  }
}

void Replicator::serveStandby(Channel& bulk, ReleaseSender& release, Clock::time_point until, Clock::time_point earliest) {
  for (;;) {
    auto now = Clock::now();
    checkStandbyAlive();
    if (endAsked_) return;
    if (!inFlight_.empty() && now - inFlight_.front().sentAt > std::max<Clock::duration>(std::chrono::seconds(2), 4 * options_.failoverAfter))
      throw Error(ErrorKind::Failed, concat("the standby has not acknowledged epoch ", inFlight_.front().epoch, " for 2 s"));
    // Output waiting closes the epoch early: a client waits for its answer no longer than needed.
    bool due = now >= until || (now >= earliest && machine_.outputGate().openEpochHasOutput());
    if (due && inFlight_.size() < kMostInFlight) return;
    auto wait = std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(std::min(until, std::max(earliest, now)) - now),
                           std::chrono::milliseconds(1), std::chrono::milliseconds(5));
    Received r = fromStandby(bulk, wait);
    releaseAcked(release);  // also when the lease was renewed in the meantime
    if (r.kind == Received::Kind::Timeout) continue;
    if (r.kind == Received::Kind::Refused) throw Error(ErrorKind::Failed, concat("the standby sent ", r.problem));
    auto envelope = r.message->envelope();
    if (envelope.isRefusal()) throwRefusal(envelope.getRefusal(), "an epoch");
    if (envelope.isRoundAck()) continue;  // the initial sync's last round, not waited for
    if (!envelope.isAck()) throw Error(ErrorKind::Failed, "the standby sent a message out of order");
    uint64_t acked = envelope.getAck();
    if (inFlight_.empty() || acked != inFlight_.front().epoch)
      throw Error(ErrorKind::Failed, concat("the standby acknowledged epoch ", acked, ", which is not the next one in flight"));
    double latency = msSince(inFlight_.front().sentAt);
    inFlight_.pop_front();
    // Committed there: shown once our lease allows (releaseAcked).
    acked_.push_back(acked);
    releaseAcked(release);
    std::lock_guard lock(statusMutex_);
    if (figures_.state == ReplicationState::Syncing) {  // a failover would work from now on
      figures_.state = ReplicationState::Protected;
      figures_.reason.clear();
      log::info("replication: the guest is protected by ", options_.to, " (epoch ", acked, " committed there; epochs of ",
                options_.epoch.count(), " ms)");
    }
    figures_.lastAcked = acked;
    figures_.ackLatencyMs = latency;
    figures_.ackSeconds.observe(latency / 1000);
  }
}

// The standby's DiskDigests, one per disk, right after its Welcome: round 0 sends only the chunks
// that differ from what its disks hold (a standby that held an epoch of ours has nearly all).
void Replicator::receiveDiskDigests(Channel& bulk, DiskSender& disks) {
  for (size_t got = 0; got < machine_.diskCount();) {
    if (stopping_) throw Error(ErrorKind::Failed, "stopping");
    if (endAsked_) throw EndAsked{};
    if (std::chrono::nanoseconds(nowNs() - lastHeardNs_.load()) > options_.failoverAfter + std::chrono::seconds(10))
      throw Error(ErrorKind::Disconnected, "the standby did not say what its disks hold");
    Received r = fromStandby(bulk, std::chrono::milliseconds(20));
    if (r.kind == Received::Kind::Timeout) continue;
    if (r.kind == Received::Kind::Refused) throw Error(ErrorKind::Failed, concat("the standby sent ", r.problem));
    auto envelope = r.message->envelope();
    if (envelope.isRefusal()) throwRefusal(envelope.getRefusal(), "the sync");
    if (!envelope.isDiskDigests()) throw Error(ErrorKind::Failed, "the standby answered our Hello out of order");
    disks.standbyHolds(envelope.getDiskDigests());
    ++got;
  }
}

void Replicator::initialSync(SessionParts& s) {
  setState(ReplicationState::Syncing);
  receiveDiskDigests(s.bulk, s.disks);
  uint64_t chunksSent = 0;
  RoundSender rounds(machine_.memory(), options_.compression, 0, 1);
  BandwidthLimit unlimited(0);
  // Round 0: every page the host backed (the standby's memory starts as zeros), every disk chunk.
  s.dirty = PageSet(machine_.memory().pageCount());
  for (const auto& region : machine_.memory().regions()) {
    auto backed = machine_.memory().backedPages(region);
    for (uint64_t i = 0; i < backed.size(); ++i)
      if (backed[i]) s.dirty.set(region.hostOffset / kPageSize + i);
  }
  s.tracker.take();  // from here on the log says what changed after round 0 read it
  auto sendOrThrow = [&](capnp::MallocMessageBuilder& message) {
    if (!s.bulk.send(message)) throw Error(ErrorKind::Disconnected, "the standby stopped taking the initial sync");
  };
  for (uint32_t round = 0;; ++round) {
    uint64_t sent = s.dirty.count();
    try {
      rounds.send(s.bulk, s.dirty, round, round == 0 ? PageEncoder::Reading::LiveOntoZeros : PageEncoder::Reading::Copied,
                  unlimited, [](size_t) {});
    } catch (const Error&) {
      throw Error(ErrorKind::Disconnected, "the standby stopped taking the initial sync");
    }
    uint64_t chunks = s.disks.sendChunks(s.bulk, [&](std::unique_ptr<OutgoingMessage> chunk, uint32_t) {
      if (!s.bulk.send(std::move(chunk))) throw Error(ErrorKind::Disconnected, "the standby stopped taking the initial sync");
    });
    chunksSent += chunks;
    sent += chunks * kPagesPerChunk;
    capnp::MallocMessageBuilder end;
    s.bulk.start(end).setRoundEnd(round);
    sendOrThrow(end);
    // Its RoundAck: serveStandby passes RoundAcks over, so wait for it here.
    for (;;) {
      if (stopping_) throw Error(ErrorKind::Failed, "stopping");
      if (std::chrono::nanoseconds(nowNs() - lastHeardNs_.load()) > options_.failoverAfter + std::chrono::seconds(10))
        throw Error(ErrorKind::Disconnected, "the standby went silent during the initial sync");
      if (endAsked_) throw EndAsked{};
      Received r = fromStandby(s.bulk, std::chrono::milliseconds(20));
      if (r.kind == Received::Kind::Timeout) continue;
    if (r.kind == Received::Kind::Refused) throw Error(ErrorKind::Failed, concat("the standby sent ", r.problem));
      auto envelope = r.message->envelope();
      if (envelope.isRoundAck() && envelope.getRoundAck() == round) break;
      if (envelope.isRefusal()) throwRefusal(envelope.getRefusal(), "the sync");
      throw Error(ErrorKind::Failed, "the standby answered the initial sync out of order");
    }
    s.dirty = s.tracker.take();
    uint64_t left = s.dirty.count() + s.disks.chunksWritten() * kPagesPerChunk;
    log::info("replication sync round ", round, ": ", sent - chunks * kPagesPerChunk, " pages and ", chunks, " disk chunks",
              round == 0 ? concat(" (", s.disks.chunksSkipped(), " more the standby had already)") : std::string(), "; ", left,
              " pages' worth written since");
    if (left <= kEpochSizedPages || left * 2 > sent || round + 1 >= kMostSyncRounds) {
      std::lock_guard lock(statusMutex_);
      figures_.encodings += rounds.counts();
      figures_.syncChunksSent = chunksSent;
      figures_.syncChunksSkipped = s.disks.chunksSkipped();
      return;
    }
  }
}

void Replicator::runEpoch(SessionParts& s) {
  auto& bulk = s.bulk;
  auto& dirty = s.dirty;
  auto pauseStart = Clock::now();
  machine_.pause(Machine::PauseFor::Capture);
  s.tracker.takeInto(dirty);
  s.disks.takeEpoch();
  // A page copied midway and not written since keeps that copy; one written again is copied over
  // it; the rest are copied into new messages. (Both lists are in increasing page order.)
  std::vector<uint64_t> pages;
  pages.reserve(dirty.count());
  const uint8_t* memory = machine_.memory().hostBase();
  auto early = s.prestagedSlots.begin();
  dirty.forEach([&](uint64_t page) {
    while (early != s.prestagedSlots.end() && early->first < page) ++early;
    if (early != s.prestagedSlots.end() && early->first == page)
      std::memcpy(early->second, memory + page * kPageSize, kPageSize);
    else
      pages.push_back(page);
  });
  std::fill(dirty.words.begin(), dirty.words.end(), 0);
  std::vector<PageEncoder::Staged> staged = std::move(s.prestaged);
  s.prestaged.clear();
  uint64_t pageCount = s.prestagedSlots.size() + pages.size();
  s.prestagedSlots.clear();
  for (size_t at = 0; at < pages.size(); at += PageEncoder::kPagesPerMessage)
    staged.push_back(encoder_->stage(std::span(pages).subspan(at, std::min(PageEncoder::kPagesPerMessage, pages.size() - at))));
  MachineState state = machine_.capture();
  uint64_t epoch = ++epoch_;
  std::vector<HeldOutput> output = machine_.outputGate().closeEpoch(epoch);
  bool full = machine_.outputGate().overLimit();
  if (full && !pausedForOutput_) log::warn("the guest's held output is over its limit: the guest stays paused until acks release it");
  pausedForOutput_ = full;
  if (!full && !holdForHandover_) machine_.resume();
  double pauseMs = msSince(pauseStart);

  uint64_t bytesBefore = bulk.bytesSent();
  XXH3_state_t* digest = XXH3_createState();
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> digestOwner(digest, &XXH3_freeState);
  XXH3_64bits_reset(digest);
  for (auto& s : staged) {
    encoder_->finishStaged(bulk, s, epoch, digest);
    deliver(bulk, std::move(s.message));
  }
  capnp::MallocMessageBuilder message;
  auto commit = bulk.start(message).initCommit();
  commit.setEpoch(epoch);
  commit.setPageCount(pageCount);
  commit.setDigest(XXH3_64bits_digest(digest));
  auto encoded = encodeMachineState(state);
  commit.setState(capnp::Data::Reader(encoded.data(), encoded.size()));
  // The session's first epoch carries every epoch still held (earlier sessions' included): from
  // now on this standby is the one that emits them if we die.
  if (firstEpochOfSession_) output = machine_.outputGate().sealedOutput();
  firstEpochOfSession_ = false;
  auto list = commit.initOutput(static_cast<unsigned>(output.size()));
  for (unsigned i = 0; i < output.size(); ++i) {
    list[i].setChannel(output[i].channel);
    list[i].setBytes(capnp::Data::Reader(output[i].bytes.data(), output[i].bytes.size()));
  }
  uint64_t diskBytes = s.disks.epochWriteBytes();
  s.disks.fillCommit(commit);
  deliver(bulk, message);
  inFlight_.push_back({epoch, Clock::now()});

  std::lock_guard lock(statusMutex_);
  figures_.pauseMs = pauseMs;
  figures_.dirtyPages = pageCount;
  figures_.diskBytes = diskBytes;
  if (figures_.recentPausesMs.size() >= 100) {
    figures_.recentPausesMs.erase(figures_.recentPausesMs.begin());
    figures_.recentDirty.erase(figures_.recentDirty.begin());
  }
  figures_.recentPausesMs.push_back(pauseMs);
  figures_.recentDirty.push_back(static_cast<double>(pageCount));
  figures_.sessionEncodings = encoder_->counts();
  uint64_t epochBytes = bulk.bytesSent() - bytesBefore;
  figures_.sentBytes += epochBytes;
  figures_.pauseSeconds.observe(pauseMs / 1000);
  figures_.epochBytes.observe(static_cast<double>(epochBytes));
  figures_.dirtyPerEpoch.observe(static_cast<double>(pageCount));
}

void Replicator::prestage(SessionParts& s) {
  s.tracker.takeInto(s.dirty);
  std::vector<uint64_t> pages;
  s.dirty.forEach([&](uint64_t page) { pages.push_back(page); });
  std::fill(s.dirty.words.begin(), s.dirty.words.end(), 0);
  for (size_t at = 0; at < pages.size(); at += PageEncoder::kPagesPerMessage) {
    auto part = std::span(pages).subspan(at, std::min(PageEncoder::kPagesPerMessage, pages.size() - at));
    auto staged = encoder_->stage(part);
    for (size_t i = 0; i < part.size(); ++i) s.prestagedSlots.emplace_back(part[i], staged.staging + i * kPageSize);
    s.prestaged.push_back(std::move(staged));
  }
}

void Replicator::switchover(std::chrono::milliseconds timeout) {
  bool isProtected;
  {
    std::lock_guard status(statusMutex_);
    isProtected = figures_.state == ReplicationState::Protected;
  }
  std::unique_lock lock(switchoverMutex_);
  if (!isProtected)
    throw Error(ErrorKind::Failed, "the guest is not protected right now: there is no standby to hand it to");
  switchoverAsked_ = true;
  switchoverDone_ = false;
  switchoverError_.clear();
  switchoverPending_ = true;
  if (!switchoverChanged_.wait_for(lock, timeout, [&] { return switchoverDone_; })) {
    switchoverPending_ = false;
    throw Error(ErrorKind::Failed, "the switchover did not finish in time; the guest runs on here");
  }
  if (!switchoverError_.empty()) throw Error(ErrorKind::Failed, switchoverError_);
}

// The guest stops here for good: a last epoch, its output shown once acknowledged, then the
// standby is told to run the guest. Any failure before Switchover went out resumes it here.
void Replicator::handOver(SessionParts& s, ReleaseSender& release) {
  Channel& bulk = s.bulk;
  auto finish = [&](const std::string& error) {
    std::lock_guard lock(switchoverMutex_);
    switchoverPending_ = false;
    switchoverDone_ = true;
    switchoverError_ = error;
    switchoverChanged_.notify_all();
  };
  try {
    holdForHandover_ = true;  // runEpoch leaves the guest paused
    runEpoch(s);
    for (auto until = Clock::now() + std::chrono::seconds(5); !inFlight_.empty() || !acked_.empty();) {
      if (Clock::now() > until) throw Error(ErrorKind::Failed, "the standby did not acknowledge the last epoch");
      serveStandby(bulk, release, Clock::now() + std::chrono::milliseconds(5), Clock::now() + std::chrono::milliseconds(5));
    }
    capnp::MallocMessageBuilder message;
    bulk.start(message).setSwitchover(epoch_.load());
    deliver(bulk, message);
  } catch (const Error& e) {
    holdForHandover_ = false;
    machine_.resume();
    finish(concat(e.what(), "; the guest runs on here"));
    throw;
  }
  // From here the standby owns the guest: this side never runs it again, whatever happens.
  setState(ReplicationState::HandedOver);
  for (auto until = Clock::now() + std::chrono::seconds(5); Clock::now() < until;) {
    Received r = bulk.receive(std::chrono::milliseconds(20));
    if (r.kind == Received::Kind::Message && r.message->envelope().isRunning()) break;
  }
  log::warn("switchover: the guest runs on ", options_.to, " now (epoch ", epoch_.load(), "); it stops here");
  finish("");
  stopping_ = true;
  machine_.stop();
}

void Replicator::session() {
  // After a session ended, the state stays unprotected, with its reason, until a standby welcomes us.
  if (state() != ReplicationState::Unprotected) setState(ReplicationState::Connecting);
  auto& bulk = bulk_;
  uint64_t session = std::random_device{}() | uint64_t{std::random_device{}()} << 32 | 1;
  bulk->setSession(session);
  handshake(*bulk);
  ReleaseSender release(options_.to, session);
  lastHeardNs_ = nowNs();
  lease_.expire();
  session_ = session;  // the heartbeat thread beats and hears in this session from now on
  {
    std::lock_guard lock(statusMutex_);
    ++figures_.sessions;
    figures_.encodings += figures_.sessionEncodings;
    figures_.sessionEncodings = {};
  }
  log::info("replication: standby ", options_.to, " welcomed us; syncing");

  encoder_ = std::make_unique<PageEncoder>(machine_.memory(), options_.compression, options_.xbzrleCacheBytes);
  encoder_->useStagingPool(stagingPool_);
  firstEpochOfSession_ = true;
  DiskSender disks(machine_);
  SessionParts parts{*bulk, machine_.startDirtyTracking(), disks, PageSet()};
  try {
    initialSync(parts);  // Protected once the standby acknowledged the first epoch (serveStandby)
    for (;;) {
      if (switchoverPending_) return handOver(parts, release);
      if (endAsked_) return tellEnd(*bulk);
      auto began = Clock::now(), midway = began + options_.epoch / 2;
      runEpoch(parts);
      serveStandby(*bulk, release, midway, began + shortestEpoch());
      if (Clock::now() < midway) continue;  // closed early: output is waiting
      prestage(parts);
      serveStandby(*bulk, release, began + options_.epoch, began + shortestEpoch());
    }
  } catch (const EndAsked&) {
    return tellEnd(*bulk);
  } catch (...) {
    // The pages of epochs that never arrived go with the next session's full sync. Tell the
    // standby, so that it keeps what it committed and waits for us rather than take over.
    capnp::MallocMessageBuilder bye;
    bulk->start(bye).setBye("the primary starts a new session");
    bulk->trySend(bye);
    throw;
  }
}

bool Replicator::end(const std::string& why, std::chrono::milliseconds timeout) {
  {
    std::lock_guard status(statusMutex_);
    auto state = figures_.state;
    if (state == ReplicationState::Superseded || state == ReplicationState::HandedOver || state == ReplicationState::Ended)
      return false;  // the guest runs elsewhere, or ended already: nothing to tell
  }
  std::unique_lock lock(switchoverMutex_);
  if (!thread_) return false;
  endWhy_ = why;
  endAsked_ = true;
  switchoverChanged_.wait_for(lock, timeout, [&] { return endDone_; });
  return endConfirmed_;
}

// The guest is gone here: the standby must drop its epochs, never run them. Only its EndAck lets
// the held output out; without it the standby may yet take over and show that output itself.
void Replicator::tellEnd(Channel& bulk) {
  std::string why;
  {
    std::lock_guard lock(switchoverMutex_);
    why = endWhy_;
  }
  capnp::MallocMessageBuilder message;
  bulk.start(message).setEnd(why);
  bool confirmed = false;
  for (auto until = Clock::now() + kEndConfirmWithin; !confirmed && Clock::now() < until;) {
    if (!bulk.trySend(message)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    while (Clock::now() < until) {
      Received r = bulk.receive(std::chrono::milliseconds(20));
      if (r.kind != Received::Kind::Message) continue;  // (acks of epochs in flight are dropped)
      if (r.message->envelope().isEndAck()) {
        confirmed = true;
        break;
      }
    }
  }
  if (confirmed) {
    setState(ReplicationState::Ended, why);
    auto held = machine_.outputGate().stats().heldBytes;
    machine_.outputGate().open();  // nobody else can show it any more
    log::warn("replication: the standby confirmed that the guest ended (", why, ") and will not run it; ", held,
              " bytes of held output shown");
  } else {
    log::warn("replication: the standby did not confirm within ", kEndConfirmWithin.count(), " s that the guest ended (", why,
              "); it may still take the guest over from its last epoch, so the output held here stays unshown");
  }
  std::lock_guard lock(switchoverMutex_);
  endDone_ = true;
  endConfirmed_ = confirmed;
  switchoverChanged_.notify_all();
}

}  // namespace tandem
