#include "primary/migration_source.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <vector>

#include "base/error.hpp"
#include "base/host_identity.hpp"
#include "base/fd.hpp"
#include "base/log.hpp"
#include "devices/disk_write_log.hpp"
#include "primary/bandwidth_limit.hpp"
#include "primary/disk_sender.hpp"
#include "primary/page_encoder.hpp"
#include "primary/page_server.hpp"
#include "transport/link.hpp"
#include "transport/page_bitmap.hpp"

namespace tandem {

namespace {

// Postcopy sends disks before its switch: passes go on while more than this many chunks were
// written during the last one.
constexpr uint64_t kFewDiskChunks = 16;

using Clock = std::chrono::steady_clock;
constexpr auto kAnswerTimeout = std::chrono::seconds(10);
constexpr double kGoodEnoughDowntimeMs = 0.5;

double msSince(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

schema::Mode toSchema(MigrationMode mode) {
  switch (mode) {
    case MigrationMode::Precopy: return schema::Mode::PRECOPY;
    case MigrationMode::Postcopy: return schema::Mode::POSTCOPY;
    case MigrationMode::Hybrid: return schema::Mode::HYBRID;
  }
  return schema::Mode::INVALID;
}

// The target said no: it will not run the guest, whatever it received.
struct RefusedByTarget : Error {
  using Error::Error;
};

// The next message from the target, which must be of kind `expected`; throws with the reason
// otherwise. With skipAcks, acknowledgements of rounds nobody waits for are passed over.
std::unique_ptr<Incoming> expect(Channel& channel, schema::Envelope::Which expected, const std::string& to,
                                 const char* waitingFor, bool skipAcks = false) {
  Received r = channel.receive(kAnswerTimeout);
  while (skipAcks && r.kind == Received::Kind::Message && r.message->envelope().isRoundAck())
    r = channel.receive(kAnswerTimeout);
  if (r.kind == Received::Kind::Timeout)
    throw Error(ErrorKind::Disconnected, concat("no answer from ", to, " within 10 s while waiting for ", waitingFor));
  if (r.kind == Received::Kind::Refused)
    throw Error(ErrorKind::Failed, concat("refused what ", to, " sent: ", r.problem));
  auto envelope = r.message->envelope();
  if (envelope.isRefusal())
    throw RefusedByTarget(ErrorKind::Failed, concat(to, " refused the migration: ", envelope.getRefusal().getText().cStr()));
  if (envelope.which() != expected)
    throw Error(ErrorKind::Failed, concat(to, " answered out of order while we waited for ", waitingFor));
  return std::move(r.message);
}

}  // namespace

const char* modeName(MigrationMode mode) {
  switch (mode) {
    case MigrationMode::Precopy: return "precopy";
    case MigrationMode::Postcopy: return "postcopy";
    case MigrationMode::Hybrid: return "hybrid";
  }
  return "?";
}

nlohmann::json MigrationStats::toJson() const {
  nlohmann::json j{
      {"status", "completed"},
      {"mode", modeName(mode)},
      {"total_ms", totalMs},
      {"downtime_ms", downtimeMs},
      {"downtime_parts_ms", {{"pause", pauseMs}, {"final_pages", finalPagesMs}, {"state", stateMs}, {"target", targetMs}}},
      {"setup_ms", setupMs},
      {"paused_at", log::utcTime(pausedAt)},
      {"bytes", bytes},
      {"pages", {{"zero", pages.zero}, {"raw", pages.raw}, {"lz4", pages.lz4}, {"xbzrle", pages.xbzrle}}},
      {"xbzrle_cache", {{"hits", pages.xbzrleCacheHits}, {"misses", pages.xbzrleCacheMisses}}},
      {"rounds", rounds},
      {"memory_bytes", bytes - diskBytes},
      {"disk_chunks", {{"sent", diskChunks}, {"skipped", diskChunksSkipped}, {"bytes_sent", diskChunks * 64 * 1024}, {"wire_bytes", diskBytes}}},
      {"throttle_percent", throttlePercent},
      {"throughput_mbps", totalMs > 0 ? static_cast<double>(bytes) * 8 / totalMs / 1000 : 0.0},
      {"postcopy", switchedToPostcopy}};
  if (switchedToPostcopy)
    j["postcopy_stats"] = {{"pages", postcopyPages},       {"ms", postcopyMs},          {"requested", postcopyRequested},
                           {"faults", postcopyFaults},     {"zero_faults", postcopyZeroFaults},
                           {"fault_median_us", faultMedianUs}, {"fault_p99_us", faultP99Us}, {"fault_max_us", faultMaxUs},
                           {"pauses", postcopyPauses},       {"paused_ms", postcopyPausedMs}};
  return j;
}

MigrationSource::MigrationSource(Machine& machine, MigrationOptions options, ProgressBoard* progress,
                                 MigrationRequests* requests)
    : machine_(machine),
      options_(std::move(options)),
      limit_(std::make_unique<BandwidthLimit>(options_.maxBandwidth)),
      progress_(progress ? *progress : ownProgress_),
      requests_(requests) {
  stats_.mode = options_.mode;
  progress_.update([&](MigrationProgress& p) { p.mode = modeName(options_.mode); });
}

MigrationSource::~MigrationSource() = default;

void MigrationSource::handshake() {
  capnp::MallocMessageBuilder message;
  auto hello = link_->bulk->start(message).initHello();
  hello.setMode(toSchema(options_.mode));
  hello.setMemorySize(machine_.config().memory);
  hello.setCpus(machine_.config().cpus);
  hello.setDisks(static_cast<uint32_t>(machine_.config().disks.size()));
  hello.setNets(static_cast<uint32_t>(machine_.config().nets.size()));
  auto sizes = hello.initDiskSizes(static_cast<unsigned>(machine_.diskCount()));
  for (unsigned d = 0; d < machine_.diskCount(); ++d) sizes.set(d, machine_.disk(d).sizeBytes());
  if (options_.storage == MigrationOptions::Storage::Shared) {
    hello.setSharedStorage(true);
    hello.setBootId(hostBootId());
    auto ids = hello.initDiskIdentities(static_cast<unsigned>(machine_.diskCount()));
    for (unsigned d = 0; d < machine_.diskCount(); ++d) {
      struct stat st{};
      if (::stat(machine_.disk(d).path().c_str(), &st) != 0) throwErrno(concat("stat of ", machine_.disk(d).path()), errno);
      ids[d].setDevice(st.st_dev);
      ids[d].setInode(st.st_ino);
    }
  }
  if (!link_->bulk->send(message)) throw Error(ErrorKind::Disconnected, concat(options_.to, " does not take our Hello"));
  expect(*link_->bulk, schema::Envelope::WELCOME, options_.to, "its Welcome");
  if (!disks_) return;  // shared storage: nothing of the disks moves
  // What the target's disks hold: only the chunks that differ move.
  for (size_t d = 0; d < machine_.diskCount(); ++d)
    disks_->standbyHolds(expect(*link_->bulk, schema::Envelope::DISK_DIGESTS, options_.to, "what its disks hold")->envelope().getDiskDigests());
}

// The disk chunks written since the last call (every chunk that differs, the first time), after a
// round's pages and before its RoundEnd.
void MigrationSource::sendDiskChunks() {
  lastDiskPassMs_ = 0;
  if (!disks_) return;
  Channel& bulk = *link_->bulk;
  auto start = Clock::now();
  uint64_t toSend = disks_->chunksWritten();
  progress_.update([&](MigrationProgress& p) {
    p.diskChunksToSend = toSend;
    p.diskChunksSent = 0;
  });
  uint64_t sent = disks_->sendChunks(bulk, [&](std::unique_ptr<OutgoingMessage> message, uint32_t chunks) {
    uint64_t before = bulk.bytesSent();
    if (!bulk.send(std::move(message))) throw Error(ErrorKind::Disconnected, concat(options_.to, " stopped taking disk chunks"));
    stats_.diskBytes += bulk.bytesSent() - before;
    progress_.update([&](MigrationProgress& p) {
      p.diskChunksSent += chunks;
      p.diskBytes = stats_.diskBytes;
      p.bytes = link_->bytesSent();
    });
  });
  stats_.diskChunks += sent;
  stats_.diskChunksSkipped = disks_->chunksSkipped();
  // How fast chunks go (reading, encoding, the link), for the next estimate of what is left.
  lastDiskPassMs_ = msSince(start);
  log::info("migration disk pass: ", sent, " chunks sent of ", toSend, " written, in ", lastDiskPassMs_, " ms");
  if (sent >= 16) diskChunksPerSecond_ = static_cast<double>(sent) / std::max(1e-3, lastDiskPassMs_ / 1000);
}

double MigrationSource::diskMsLeft() const {
  if (!disks_) return 0;
  return static_cast<double>(disks_->chunksWritten()) / diskChunksPerSecond_ * 1000;
}

void MigrationSource::sendSharedFingerprint() {
  if (options_.storage != MigrationOptions::Storage::Shared) return;
  std::vector<uint8_t> chunk;
  for (size_t d = 0; d < machine_.diskCount(); ++d) {
    auto& disk = machine_.disk(d);
    Fd file(::open(disk.path().c_str(), O_RDONLY | O_CLOEXEC));
    if (!file || ::fdatasync(file.get()) != 0) throwErrno(concat("flushing disk ", disk.path()), errno);
    uint64_t chunks = (disk.sizeBytes() + dev::DiskWriteLog::kChunkBytes - 1) / dev::DiskWriteLog::kChunkBytes;
    uint64_t stride = dev::sampleStride(chunks);
    capnp::MallocMessageBuilder message;
    auto out = link_->bulk->start(message).initDiskDigests();
    out.setDisk(static_cast<uint32_t>(d));
    auto list = out.initDigests(static_cast<unsigned>((chunks + stride - 1) / stride));
    for (uint64_t c = 0, i = 0; c < chunks; c += stride, ++i) {
      uint64_t offset = c * dev::DiskWriteLog::kChunkBytes;
      chunk.resize(std::min(dev::DiskWriteLog::kChunkBytes, disk.sizeBytes() - offset));
      if (!disk.readAt(offset, chunk)) throw Error(ErrorKind::Failed, concat("cannot read disk ", disk.path(), " at byte ", offset));
      list.set(static_cast<unsigned>(i), dev::chunkDigest(chunk));
    }
    if (!link_->bulk->send(message)) throw Error(ErrorKind::Disconnected, concat(options_.to, " stopped taking messages"));
  }
}

void MigrationSource::sendRound(const PageSet& pages, uint32_t round, PageEncoder::Reading reading) {
  Channel& bulk = *link_->bulk;
  try {
    rounds_->send(bulk, pages, round, reading, *limit_, [&](size_t sent) {
      progress_.update([&](MigrationProgress& p) {
        p.pagesSent += sent;
        p.bytes = link_->bytesSent();
      });
    });
  } catch (const Error& e) {
    throw Error(ErrorKind::Disconnected, concat(options_.to, " stopped taking pages"));
  }
  sendDiskChunks();
  if (reading == PageEncoder::Reading::Paused) return;  // the final round: State and Done follow
  capnp::MallocMessageBuilder end;
  bulk.start(end).setRoundEnd(round);
  if (!bulk.send(end)) throw Error(ErrorKind::Disconnected, concat(options_.to, " stopped taking pages"));
}

void MigrationSource::awaitAck(uint32_t round) {
  auto ack = expect(*link_->bulk, schema::Envelope::ROUND_ACK, options_.to, "a round's acknowledgement");
  if (ack->envelope().getRoundAck() != round) throw Error(ErrorKind::Failed, concat(options_.to, " acknowledged the wrong round"));
}

PageSet MigrationSource::backedPages() const {
  PageSet pages(machine_.memory().pageCount());
  for (const auto& region : machine_.memory().regions()) {
    auto backed = machine_.memory().backedPages(region);
    for (uint64_t i = 0; i < backed.size(); ++i)
      if (backed[i]) pages.set(region.hostOffset / kPageSize + i);
  }
  return pages;
}

bool MigrationSource::precopyRounds(DirtyTracker& tracker, PageSet& pages) {
  // Round 0: every page the host ever backed (the target's memory starts as zeros).
  pages = backedPages();
  for (uint32_t round = 0;; ++round) {
    progress_.update([&](MigrationProgress& p) {
      p.phase = "precopy";
      p.round = round;
      p.pagesToSend = pages.count();
      p.pagesSent = 0;
    });
    auto roundStart = Clock::now();
    uint64_t before = link_->bulk->bytesSent();
    // Round 0 reads each page once, live, for a target that holds zeros; later rounds copy and
    // cache what they send (XBZRLE).
    sendRound(pages, round, round == 0 ? PageEncoder::Reading::LiveOntoZeros : PageEncoder::Reading::Copied);
    awaitAck(round);
    ++stats_.rounds;
    double seconds = std::max(1e-3, msSince(roundStart) / 1000);
    double pageSeconds = std::max(1e-3, seconds - lastDiskPassMs_ / 1000);
    uint64_t sent = pages.count();
    // Pages per second as this round went (encoding, link and --max-bandwidth all in it, the disk
    // chunks after them left out); a round of few pages mostly measures the round trip, which errs
    // on the safe side.
    double pagesPerSecond = std::max(static_cast<double>(sent) / pageSeconds, 1.0);
    double bytesPerSecond = static_cast<double>(link_->bulk->bytesSent() - before) / seconds;
    pages = tracker.take();
    // The last pages and the disk chunks written meanwhile both go inside the pause.
    double expectedMs = static_cast<double>(pages.count()) / pagesPerSecond * 1000 + diskMsLeft();
    log::info("migration round ", round, ": ", sent, " pages, ", (link_->bulk->bytesSent() - before) / kKiB, " KiB in ",
              seconds * 1000, " ms (disks ", lastDiskPassMs_, " ms); ", pages.count(), " pages dirty",
              disks_ ? concat(", ", disks_->chunksWritten(), " disk chunks written") : std::string(), ", about ", expectedMs,
              " ms to send");
    progress_.update([&](MigrationProgress& p) {
      p.transferMiBps = bytesPerSecond / kMiB;
      p.dirtyPagesPerSecond = static_cast<double>(pages.count()) / seconds;
      p.expectedDowntimeMs = expectedMs;
      p.leftMs = expectedMs <= options_.maxDowntimeMs ? expectedMs : seconds * 1000 + expectedMs;
    });
    // Within the budget, one more round is still worth it while rounds halve the dirty set: the
    // downtime shrinks with it, for little more total time. Below half a millisecond, pausing now is best.
    bool shrinking = pages.count() * 2 < sent && expectedMs > kGoodEnoughDowntimeMs && round + 1 < options_.maxRounds;
    if (expectedMs <= options_.maxDowntimeMs && !shrinking) return true;
    if (expectedMs <= options_.maxDowntimeMs) continue;
    if (options_.autoConverge && round >= 1) autoConverge(static_cast<double>(pages.count()) / seconds, pagesPerSecond);
    if (round + 1 >= options_.maxRounds) {
      std::string why = concat("after ", options_.maxRounds, " rounds ", pages.count(), " pages were still dirty, about ",
                               static_cast<uint64_t>(expectedMs), " ms to send at the ", static_cast<uint64_t>(pagesPerSecond),
                               " pages/s (", static_cast<uint64_t>(bytesPerSecond / kKiB),
                               " KiB/s) the last round achieved, more than --max-downtime-ms ", options_.maxDowntimeMs);
      if (options_.onNoConverge == NoConvergeAction::Abort)
        throw Error(ErrorKind::Failed, concat("it did not converge: ", why, "; aborted as --on-no-converge abort asks"));
      log::warn("migration did not converge: ", why, "; going on with ",
                options_.onNoConverge == NoConvergeAction::Postcopy ? "postcopy" : "stop and copy");
      return false;
    }
  }
}

void MigrationSource::autoConverge(double dirtyPerSecond, double sentPerSecond) {
  if (dirtyPerSecond <= sentPerSecond / 2) return;
  unsigned now = machine_.throttlePercent();
  // The guest runs (100 - p)% of the time: aim its dirty rate at half the sending rate.
  double running = (100.0 - now) / 100.0;
  double wanted = 100.0 * (1.0 - running * (sentPerSecond / 2) / dirtyPerSecond);
  unsigned next = std::min(99u, std::max({now == 0 ? 20u : now + 10u, static_cast<unsigned>(wanted + 0.5)}));
  if (next == now) return;
  machine_.throttle(next);
  stats_.throttlePercent = std::max(stats_.throttlePercent, next);
  log::warn("auto-converge: the guest dirties ", static_cast<uint64_t>(dirtyPerSecond), " pages/s, the link carries ",
            static_cast<uint64_t>(sentPerSecond), ": vCPUs throttled to ", 100 - next, "% of their time");
  progress_.update([&](MigrationProgress& p) { p.throttlePercent = next; });
}

void MigrationSource::sendStateAndDone() {
  capnp::MallocMessageBuilder stateMessage;
  auto state = encodeMachineState(machine_.capture());
  link_->bulk->start(stateMessage).setState(capnp::Data::Reader(state.data(), state.size()));
  capnp::MallocMessageBuilder doneMessage;
  link_->bulk->start(doneMessage).setDone();
  if (!link_->bulk->send(stateMessage) || !link_->bulk->send(doneMessage))
    throw Error(ErrorKind::Disconnected, concat(options_.to, " stopped taking the machine state"));
  pastNoReturn_ = true;  // Done is on its way: the target may run the guest from now on
}

// After Done went out, only the target's word tells where the guest runs: a refusal means not
// there, so it resumes here; anything else (silence, a cut link) leaves it paused here for an
// operator to decide, since resuming could run it on both hosts (QEMU does the same).
Error MigrationSource::failSwitch(const Error& e) {
  if (!pastNoReturn_ || dynamic_cast<const RefusedByTarget*>(&e)) {
    pastNoReturn_ = false;
    machine_.resume();
    return Error(e.kind(), concat(e.what(), "; the guest runs on here"));
  }
  progress_.update([&](MigrationProgress& p) { p.phase = "undecided"; });
  std::string what = concat(e.what(), "; the machine state reached ", options_.to,
                            ", which may run the guest now, so it stays paused here: if it does not run there, resume it "
                            "here (tandem resume), else end it here (tandem quit)");
  log::error("migration: ", what);
  return Error(e.kind(), what);
}

void MigrationSource::stopAndCopy(DirtyTracker& tracker, PageSet pages) {
  progress_.update([&](MigrationProgress& p) {
    p.phase = "stop-and-copy";
    p.pagesSent = 0;
    p.pagesToSend = pages.count();
  });
  auto pauseStart = Clock::now();
  machine_.pause(Machine::PauseFor::Capture);
  stats_.pauseMs = msSince(pauseStart);
  stats_.pausedAt = std::chrono::system_clock::now();
  try {
    auto part = Clock::now();
    // The guest waits: the last pages go as fast as the link takes them (as QEMU does too).
    limit_ = std::make_unique<BandwidthLimit>(0);
    tracker.takeInto(pages);
    // No RoundEnd and no acknowledgement for the last round: State and Done follow it on the same
    // ordered channel, and Running answers for all of it (the target does not stop to answer a
    // RoundEnd inside the downtime).
    sendRound(pages, stats_.rounds, PageEncoder::Reading::Paused);  // (no copy: nothing writes it now)
    sendSharedFingerprint();
    ++stats_.rounds;
    stats_.finalPagesMs = msSince(part);
    part = Clock::now();
    sendStateAndDone();
    stats_.stateMs = msSince(part);
    part = Clock::now();
    expect(*link_->bulk, schema::Envelope::RUNNING, options_.to, "the guest to run there", true);
    stats_.targetMs = msSince(part);
  } catch (const Error& e) {
    throw failSwitch(e);
  }
  stats_.downtimeMs = msSince(pauseStart);
}

void MigrationSource::postcopy(DirtyTracker& tracker, PageSet owed) {
  stats_.switchedToPostcopy = true;
  auto pauseStart = Clock::now();
  machine_.pause(Machine::PauseFor::Capture);
  stats_.pauseMs = msSince(pauseStart);
  stats_.pausedAt = std::chrono::system_clock::now();
  PageServer* serverSeen = nullptr;
  try {
    auto part = Clock::now();
    tracker.takeInto(owed);
    stats_.postcopyPages = owed.count();
    sendDiskChunks();  // disks are not demand-paged: the last chunks go inside the pause
    sendSharedFingerprint();
    capnp::MallocMessageBuilder message;
    link_->bulk->start(message).initPostcopy().setOwed(bitmapBytes(owed));
    if (!link_->bulk->send(message)) throw Error(ErrorKind::Disconnected, concat(options_.to, " stopped taking messages"));
    sendStateAndDone();
    stats_.stateMs = msSince(part);
    progress_.update([&](MigrationProgress& p) {
      p.phase = "postcopy";
      p.pagesToSend = stats_.postcopyPages;
      p.pagesSent = 0;
      p.expectedDowntimeMs = 0;
    });
    PageServer server(machine_.memory(), *link_, std::move(owed), *limit_, options_.to, progress_,
                      options_.compression == Compression::None ? Compression::None : Compression::Lz4,
                      {options_.postcopyWait, requests_});
    serverSeen = &server;
    auto served = server.serve();
    stats_.targetMs = served.runningAfterMs;
    stats_.downtimeMs = stats_.pauseMs + stats_.stateMs + served.runningAfterMs;
    stats_.postcopyMs = served.ms;
    stats_.postcopyRequested = served.requested;
    stats_.postcopyFaults = served.faults;
    stats_.postcopyZeroFaults = served.zeroFaults;
    stats_.faultMedianUs = served.medianUs;
    stats_.faultP99Us = served.p99Us;
    stats_.faultMaxUs = served.maxUs;
    stats_.postcopyPauses = served.pauses;
    stats_.postcopyPausedMs = served.pausedMs;
    stats_.bytesOnEarlierLinks = served.earlierLinksBytes;
    stats_.pages += server.counts();
    serverSeen = nullptr;
  } catch (const Error& e) {
    if (serverSeen && serverSeen->running()) {
      // The guest ran there: resuming this older copy here would fork it. Only an operator may.
      progress_.update([&](MigrationProgress& p) {
        p.phase = "postcopy-failed";
        p.silentSince.reset();
      });
      std::string what = concat(e.what(), "; the guest ran on ", options_.to, " since ", log::utcTime(stats_.pausedAt),
                                " and cannot go on there without the pages still here, so it stays paused here: end it "
                                "(tandem quit), or run this copy from the switch again and lose what it did there "
                                "(tandem resume --confirm)");
      log::error("postcopy failed: ", what);
      throw Error(e.kind(), what);
    }
    throw failSwitch(e);
  }
}

MigrationStats MigrationSource::run() {
  auto start = Clock::now();
  if (machine_.diskCount() > 0 && options_.storage == MigrationOptions::Storage::Unset)
    failBadInput("the guest has ", machine_.diskCount(), machine_.diskCount() == 1 ? " disk" : " disks",
                 ": say whether it moves with the guest (--storage copy) or the standby opens the very same storage "
                 "(--storage shared); the guest runs on here");
  rounds_ = std::make_unique<RoundSender>(machine_.memory(), options_.compression, options_.xbzrleCacheBytes,
                                          options_.encodeThreads);
  link_ = std::make_unique<Link>(Link::connect(options_.to));
  if (options_.storage == MigrationOptions::Storage::Copy)
    disks_ = std::make_unique<DiskSender>(machine_);  // from here on every disk write is logged
  link_->setSession(std::random_device{}() | uint64_t{std::random_device{}()} << 32 | 1);
  bool switching = false;  // from here on the switch's own failure handling says where the guest is
  try {
    handshake();
    stats_.setupMs = msSince(start);
    if (options_.mode == MigrationMode::Postcopy) {
      // Which pages the host backed is read while the guest runs (on a 4 GiB guest that is
      // milliseconds of /proc/self/pagemap); what it touches from then on, the dirty log adds
      // once it is paused.
      DirtyTracker& tracker = machine_.startDirtyTracking();
      PageSet owed = backedPages();
      // Disks are not demand-paged: they go while the guest runs, until what it writes between
      // two passes is little, and the rest inside the pause.
      for (int pass = 0; disks_ && pass < 10 && (pass == 0 || disks_->chunksWritten() > kFewDiskChunks); ++pass) sendDiskChunks();
      // The target has written them all before the pause: what is still queued on the way would
      // otherwise be written inside the downtime (10-20 ms with a 1 GiB disk here).
      if (disks_) {
        capnp::MallocMessageBuilder end;
        link_->bulk->start(end).setRoundEnd(0);
        if (!link_->bulk->send(end)) throw Error(ErrorKind::Disconnected, concat(options_.to, " stopped taking disk chunks"));
        awaitAck(0);
      }
      switching = true;
      postcopy(tracker, std::move(owed));
    } else {
      DirtyTracker& tracker = machine_.startDirtyTracking();
      PageSet dirty;
      bool converged = precopyRounds(tracker, dirty);
      bool toPostcopy = options_.mode == MigrationMode::Hybrid ||
                        (!converged && options_.onNoConverge == NoConvergeAction::Postcopy);
      switching = true;
      if (toPostcopy) postcopy(tracker, std::move(dirty));
      else stopAndCopy(tracker, std::move(dirty));
    }
  } catch (const Error& e) {
    machine_.throttle(0);
    machine_.stopDirtyTracking();
    if (!machine_.exited() && !pastNoReturn_) {  // the guest runs on here: the target may drop what it has
      capnp::MallocMessageBuilder bye;
      link_->bulk->start(bye).setBye(e.what());
      link_->bulk->trySend(bye);
    }
    if (!switching) throw Error(e.kind(), concat(e.what(), "; the guest runs on here"));
    throw;
  }
  machine_.throttle(0);
  stats_.pages += rounds_->counts();
  stats_.bytes = stats_.bytesOnEarlierLinks + link_->bytesSent();
  disks_.reset();
  stats_.totalMs = msSince(start);
  progress_.update([&](MigrationProgress& p) {
    p.phase = "completed";
    p.leftMs = 0;
    p.bytes = stats_.bytes;
  });
  machine_.stop();  // the guest runs on the target now
  return stats_;
}

}  // namespace tandem
