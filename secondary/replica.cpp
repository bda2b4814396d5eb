#include "secondary/replica.hpp"

#include <xxhash.h>

#include <cstring>

#include "base/error.hpp"
#include "base/fault_point.hpp"
#include "base/log.hpp"
#include "metrics/names.hpp"
#include "secondary/machine_shape.hpp"
#include "secondary/received_page.hpp"
#include "secondary/replica_disks.hpp"
#include "state/machine_shape_capnp.hpp"
#include "transport/heartbeat.hpp"

namespace tandem {

namespace {

double msBetween(Replica::Clock::time_point a, Replica::Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// Before silence counts as death, one last look at what the primary may have sent: a standby that
// was itself frozen or slow finds the primary's beats waiting, and the primary lives.
constexpr auto kLastLook = std::chrono::milliseconds(10);

}  // namespace

Replica::Replica(MachineConfig base, dev::Console& console, PreparedMemory& prepared)
    : base_(std::move(base)), console_(console), prepared_(prepared) {}
Replica::~Replica() = default;

void Replica::stage(GuestMemory& memory, schema::Pages::Reader pages) {
  decodeReceivedPages(memory, pages, Deltas::Allowed, [&](uint64_t number, const uint8_t* bytes) {
    stagedPages_.push_back(number);
    stagedBytes_.insert(stagedBytes_.end(), bytes, bytes + kPageSize);
  });
}

void Replica::countReceived(schema::Pages::Reader pages) {
  std::lock_guard lock(statusMutex_);
  receivedBytes_ += pages.getBlob().size();
  for (auto p : pages.getPages()) {
    auto e = p.getEncoding();
    (e == schema::Encoding::ZERO ? received_.zero : e == schema::Encoding::LZ4 ? received_.lz4 : e == schema::Encoding::XBZRLE ? received_.xbzrle : received_.raw)++;
  }
}

void Replica::discardStaged() {
  stagedPages_.clear();
  stagedBytes_.clear();
}

void Replica::dropReleased(ReleaseListener& releases) {
  if (!committed_) return;
  auto released = releases.released(committed_->session);
  if (!released) return;
  while (!committed_->unreleased.empty() && committed_->unreleased.front().first <= *released) committed_->unreleased.pop_front();
}

std::optional<std::string> Replica::commit(std::unique_ptr<Machine>& syncing, schema::Commit::Reader commit,
                                           uint64_t expected, uint64_t session) {
  GuestMemory& memory = syncing ? syncing->memory() : committed_->machine->memory();
  uint64_t epoch = commit.getEpoch();
  if (expected && epoch != expected) return concat("epoch ", epoch, " came where epoch ", expected, " was due");
  if (commit.getPageCount() != stagedPages_.size())
    return concat("epoch ", epoch, " announced ", commit.getPageCount(), " pages and ", stagedPages_.size(), " arrived");
  XXH3_state_t* digest = XXH3_createState();
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> owner(digest, &XXH3_freeState);
  XXH3_64bits_reset(digest);
  for (size_t i = 0; i < stagedPages_.size(); ++i) {
    uint64_t frame = memory.gpaOfPage(stagedPages_[i]).value / kPageSize;
    XXH3_64bits_update(digest, &frame, sizeof frame);
    XXH3_64bits_update(digest, stagedBytes_.data() + i * kPageSize, kPageSize);
  }
  if (XXH3_64bits_digest(digest) != commit.getDigest()) return concat("the pages of epoch ", epoch, " do not match its digest");
  MachineState state;
  try {
    auto bytes = commit.getState();
    state = decodeMachineState(std::span(bytes.begin(), bytes.size()));
  } catch (const Error& e) {
    return concat("the state of epoch ", epoch, " does not decode: ", e.what());
  }
  if (state.memorySize != memory.size() || state.vcpus.size() != (syncing ? syncing : committed_->machine)->config().cpus)
    return concat("the state of epoch ", epoch, " is of another machine");
  if (auto bad = disks_->check(commit.getDiskWrites())) return concat("epoch ", epoch, " has ", *bad);

  std::vector<HeldOutput> output;
  for (auto o : commit.getOutput()) output.push_back(HeldOutput{o.getChannel(), {o.getBytes().begin(), o.getBytes().end()}});

  // Checked: from here on only this host's disk can fail, and the epoch is applied whole.
  try {
    disks_->apply(commit.getDiskWrites());
    // The guest flushed in this epoch and will be told its writes are durable (its output says
    // so once we acknowledge): they must be durable here too (DRBD's protocol C does the same).
    if (commit.getDiskFlush()) disks_->makeDurable();
  } catch (const Error& e) {
    // Its disks no longer match any epoch: this standby cannot take over until a new sync.
    if (!syncing) {
      committed_.reset();
      standing_ = false;
    }
    throw Error(ErrorKind::Failed, concat("this standby could not apply epoch ", epoch, " to its disks: ", e.what()));
  }
  for (size_t i = 0; i < stagedPages_.size(); ++i)
    std::memcpy(memory.hostBase() + stagedPages_[i] * kPageSize, stagedBytes_.data() + i * kPageSize, kPageSize);
  if (syncing) {
    disks_->keepSync();
    // The old session's state gives way only now that the new one committed (its first commit
    // carries all output the primary still holds).
    committed_.reset();
    committed_.emplace(Committed{std::move(syncing), std::move(state), epoch, session, {}});
    standing_ = true;
  } else {
    committed_->state = std::move(state);
    committed_->epoch = epoch;
  }
  committed_->unreleased.emplace_back(epoch, std::move(output));
  return std::nullopt;
}

bool Replica::heardWithin(Channel& urgent, std::chrono::milliseconds wait, uint64_t& primarySeq) {
  bool any = false;
  for (auto until = Clock::now() + wait;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    Received r = urgent.receive(any ? std::chrono::milliseconds(0) : std::max(left, std::chrono::milliseconds(0)));
    if (r.kind == Received::Kind::Timeout) return any;
    if (r.kind != Received::Kind::Message || !r.message->envelope().isHeartbeat()) continue;
    heard();
    any = true;
    primarySeq = std::max(primarySeq, r.message->envelope().getHeartbeat().getSeq());
  }
}

void Replica::end(const std::string& why) {
  log::warn("the primary ended the guest (", why, ")", committed_ ? concat(": epoch ", committed_->epoch, " is dropped") : "",
            "; this standby will not run it, and waits for a primary");
  committed_.reset();
  standing_ = false;
  std::lock_guard lock(statusMutex_);
  state_ = "waiting for a primary";
  lastEnd_ = why;
}

Replica::Outcome Replica::serve(Link& link, Incoming& helloMessage, ReleaseListener& releases) {
  auto hello = helloMessage.envelope().getHello();
  uint64_t session = helloMessage.envelope().getSession();
  // Everything a takeover would check is checked now, while the primary can still be told: a
  // session that could not fail over is refused, and whatever is committed here stays.
  MachineConfig config;
  std::unique_ptr<Machine> syncing;
  try {
    config = machineForHello(base_, hello, "primary");
    if (!disks_) disks_ = std::make_unique<ReplicaDisks>(base_.disks);
    disks_->checkShape(hello.getDiskSizes());
    // A fresh machine for the sync: a committed epoch of an earlier session stays ready to run
    // until this session has committed one of its own. (It uses the taps the standby opened.)
    syncing = std::make_unique<Machine>(config, console_, prepared_.take(config.memory));
    if (auto why = whyNotRestorable(fromCapnp(hello.getShape()), syncing->shape())) failBadInput(*why);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::BadInput) throw;
    link.bulk->refuse(schema::RefusalReason::INCOMPATIBLE, e.what());
    log::error("refused a primary that this standby could not take over from: ", e.what(),
               committed_ ? concat("; epoch ", committed_->epoch, " of an earlier session stays committed") : "");
    std::lock_guard lock(statusMutex_);
    lastRefusal_ = e.what();
    ++incompatible_;
    return Outcome::SessionEnded;
  }
  {
    std::lock_guard lock(statusMutex_);  // (status() reads them)
    heartbeat_ = std::chrono::milliseconds(std::max<uint32_t>(1, hello.getHeartbeatMs()));
    failoverAfter_ = std::chrono::milliseconds(std::max<uint32_t>(1, hello.getFailoverAfterMs()));
  }
  heard();
  {
    std::lock_guard lock(statusMutex_);
    generation_ = hello.getGeneration();
    ++sessions_;
    state_ = "syncing";
    lastRefusal_.clear();
  }
  disks_->beginSync(committed_.has_value());
  capnp::MallocMessageBuilder welcome;
  link.bulk->start(welcome).setWelcome();
  if (!link.bulk->send(welcome)) return Outcome::SessionEnded;
  // What its disks hold now: the sync sends only the chunks that differ.
  if (!disks_->sendDigests(*link.bulk)) return Outcome::SessionEnded;
  log::info("replication session from a primary of generation ", generation_, ": syncing");

  Session in{link, session, std::move(syncing)};
  discardStaged();
  Heartbeat heartbeat(*link.urgent, heartbeat_, failoverAfter_);
  uint64_t primarySeq = 0;  // the primary's latest heartbeat, echoed in ours
  for (;;) {
    heartbeat.beatIfDue(primarySeq);
    dropReleased(releases);
    auto now = Clock::now();
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::min(heartbeat.nextBeat(), lastHeard() + failoverAfter_) - now);
    Channel::waitAny({link.bulk.get(), link.urgent.get()}, {}, std::clamp(wait, std::chrono::milliseconds(1), heartbeat_));
    heardWithin(*link.urgent, std::chrono::milliseconds(0), primarySeq);  // first: beats never wait behind pages
    Received r = link.bulk->receive(std::chrono::milliseconds(0));
    if (r.kind == Received::Kind::Timeout) {
      // Silence is judged only now, after what arrived was read, and after a last look.
      if (Clock::now() - lastHeard() <= failoverAfter_ || heardWithin(*link.urgent, kLastLook, primarySeq)) continue;
      if (auto outcome = onSilence(in)) return *outcome;
      continue;
    }
    if (r.kind == Received::Kind::Refused) {
      // Another session (one that ended had it still on its way), another version, or bytes that
      // are no message: never applied.
      if (r.why == Received::Problem::Session)
        log::debug("replication: dropped ", r.problem);
      else
        log::warn("replication: refused a message: ", r.problem);
      std::lock_guard lock(statusMutex_);
      ++refused_[problemName(r.why)];
      continue;
    }
    heard();
    auto envelope = r.message->envelope();
    std::optional<Outcome> outcome;
    try {
      switch (envelope.which()) {
        case schema::Envelope::PAGES: outcome = onPages(in, envelope.getPages()); break;
        case schema::Envelope::DISK_CHUNK: outcome = onDiskChunk(in, envelope.getDiskChunk()); break;
        case schema::Envelope::ROUND_END: outcome = onRoundEnd(in, envelope.getRoundEnd()); break;
        case schema::Envelope::COMMIT: outcome = onCommit(in, envelope.getCommit()); break;
        case schema::Envelope::SWITCHOVER: outcome = onSwitchover(in, envelope.getSwitchover()); break;
        case schema::Envelope::BYE: outcome = endSession(in, concat("the primary said: ", envelope.getBye().cStr())); break;
        case schema::Envelope::END: outcome = onEnd(in, envelope.getEnd().cStr()); break;
        default: outcome = endSession(in, "the primary sent a message out of order");
      }
    } catch (const Error& e) {
      {
        std::lock_guard lock(statusMutex_);
        ++discardedEpochs_;
      }
      link.bulk->refuse(schema::RefusalReason::BAD_EPOCH, e.what());
      return endSession(in, concat("discarded the epoch being received: ", e.what()));
    }
    if (outcome) return *outcome;
  }
}

// A session that ends before its first commit leaves the disks as the committed epoch has them.
void Replica::leaveSync(Session& in) {
  if (in.phase != Phase::Syncing) return;
  try {
    disks_->rollBackSync();
  } catch (const Error& e) {
    log::error("replication: the standby's disks could not be put back to the committed epoch (", e.what(),
               "); it has nothing it could run until a primary syncs it again");
    committed_.reset();
    standing_ = false;
  }
}

Replica::Outcome Replica::endSession(Session& in, const std::string& why) {
  leaveSync(in);
  {
    std::lock_guard lock(statusMutex_);
    state_ = committed_ ? "protecting, waiting for the primary" : "waiting for a primary";
  }
  log::warn("replication session ended: ", why, committed_ ? concat("; epoch ", committed_->epoch, " stays committed") : "");
  discardStaged();
  return Outcome::SessionEnded;
}

std::optional<Replica::Outcome> Replica::onSilence(Session& in) {
  if (committed_) {
    log::warn("the primary has been silent for ", msBetween(lastHeard(), Clock::now()), " ms: taking over at epoch ",
              committed_->epoch);
    leaveSync(in);
    return Outcome::PrimaryDead;
  }
  if (Clock::now() - lastHeard() > failoverAfter_ + std::chrono::seconds(10))
    return endSession(in, "the primary went silent before anything was committed");
  return std::nullopt;
}

// Syncing: pages of the rounds go straight into the fresh machine; an epoch's pages (in either
// phase) are staged until its Commit.
std::optional<Replica::Outcome> Replica::onPages(Session& in, schema::Pages::Reader pages) {
  countReceived(pages);
  if (in.phase == Phase::Syncing && pages.getEpoch() == 0) {
    writeReceivedPages(in.syncing->memory(), pages, Deltas::Allowed);  // (a failed sync drops it)
    return std::nullopt;
  }
  if (pages.getEpoch() == 0) return endSession(in, "the primary sent sync pages after its first commit");
  stage(in.syncing ? in.syncing->memory() : committed_->machine->memory(), pages);
  return std::nullopt;
}

std::optional<Replica::Outcome> Replica::onDiskChunk(Session& in, schema::DiskChunk::Reader chunk) {
  if (in.phase != Phase::Syncing) return endSession(in, "the primary sent disk chunks after its first commit");
  disks_->writeChunk(chunk);
  return std::nullopt;
}

std::optional<Replica::Outcome> Replica::onRoundEnd(Session& in, uint32_t round) {
  capnp::MallocMessageBuilder ack;
  in.link.bulk->start(ack).setRoundAck(round);
  in.link.bulk->trySend(ack);
  return std::nullopt;
}

// The epoch is checked and applied whole, then acknowledged; the first one ends the sync.
std::optional<Replica::Outcome> Replica::onCommit(Session& in, schema::Commit::Reader c) {
  faultPoint("standby.before-commit");
  if (in.phase == Phase::Epochs && c.getEpoch() < in.nextEpoch) {
    {
      std::lock_guard lock(statusMutex_);
      ++ignoredReplays_;
    }
    log::warn("replication: ignored a replay of epoch ", c.getEpoch(), " (epoch ", in.nextEpoch - 1, " is committed)");
    discardStaged();
    return std::nullopt;
  }
  if (auto refusal = commit(in.syncing, c, in.phase == Phase::Epochs ? in.nextEpoch : 0, in.id)) {
    {
      std::lock_guard lock(statusMutex_);
      ++discardedEpochs_;
    }
    in.link.bulk->refuse(schema::RefusalReason::BAD_EPOCH, *refusal);
    return endSession(in, concat("discarded: ", *refusal));
  }
  if (in.phase == Phase::Syncing) log::info("replication: first epoch ", c.getEpoch(), " committed; the guest is protected");
  in.phase = Phase::Epochs;
  in.nextEpoch = c.getEpoch() + 1;
  {
    std::lock_guard lock(statusMutex_);
    committedEpoch_ = c.getEpoch();
    diskBytesApplied_ = disks_->bytesApplied();
    diskSyncs_ = disks_->syncs();
    diskSyncMs_ = disks_->syncMs();
    state_ = "protecting";
  }
  discardStaged();  // applied
  capnp::MallocMessageBuilder ack;
  in.link.bulk->start(ack).setAck(c.getEpoch());
  in.link.bulk->trySend(ack);
  return std::nullopt;
}

std::optional<Replica::Outcome> Replica::onSwitchover(Session& in, uint64_t epoch) {
  if (in.phase != Phase::Epochs || !committed_ || committed_->epoch != epoch)
    return endSession(in, "the primary asked for a switchover at an epoch that is not the one committed here");
  log::warn("switchover: the primary handed the guest over at epoch ", committed_->epoch);
  // It showed every epoch's output up to that one before it sent Switchover (whatever its release
  // records say): none of it is shown here again.
  committed_->unreleased.clear();
  return Outcome::HandedOver;
}

std::optional<Replica::Outcome> Replica::onEnd(Session& in, const std::string& why) {
  leaveSync(in);
  discardStaged();
  end(why);
  capnp::MallocMessageBuilder ack;
  in.link.bulk->start(ack).setEndAck();
  in.link.bulk->trySend(ack);
  return Outcome::SessionEnded;
}

std::unique_ptr<Machine> Replica::takeOver(ReleaseListener& releases) {
  require(committed_.has_value(), "takeOver without a committed epoch");
  auto start = Clock::now();
  releases.freeze();  // no release is recorded any more: what the primary may show is known
  dropReleased(releases);
  Committed c = std::move(*committed_);
  committed_.reset();
  standing_ = false;
  c.machine->restore(c.state);
  // What the guest wrote before it runs here survives this host losing power, flushed or not.
  if (disks_) disks_->makeDurable();
  auto restored = Clock::now();
  uint64_t bytes = 0;
  for (const auto& [epoch, outputs] : c.unreleased)
    for (const auto& output : outputs) {
      if (!c.machine->emitOutput(output)) log::warn("failover: output for channel ", output.channel, " has no sink here");
      bytes += output.bytes.size();
    }
  log::warn("failover: epoch ", c.epoch, " restored in ", msBetween(start, restored), " ms (memory and state, and its disks made durable; its disks, taps and console are this standby's, attached when the session began); ",
            bytes, " bytes of output the primary had not shown emitted in ", msBetween(restored, Clock::now()), " ms");
  {
    std::lock_guard lock(statusMutex_);
    state_ = "took over";
  }
  return std::move(c.machine);
}

nlohmann::json Replica::status() const {
  std::lock_guard lock(statusMutex_);
  return {{"role", "standby"},
          {"state", state_},
          {"committed_epoch", committedEpoch_},
          {"generation", generation_},
          {"heartbeat_age_ms", msBetween(lastHeard(), Clock::now())},
          {"failover_after_ms", std::chrono::duration<double, std::milli>(failoverAfter_).count()},
          {"sessions", sessions_},
          {"can_take_over", standing_.load()},
          {"last_refusal", lastRefusal_},
          {"last_end", lastEnd_},
          {"discarded_epochs", discardedEpochs_},
          {"ignored_replays", ignoredReplays_},
          {"disk_bytes_applied", diskBytesApplied_},
          {"disk_syncs", diskSyncs_},
          {"disk_sync_ms_total", diskSyncMs_}};
}

void Replica::collectMetrics(metrics::Families& out) const {
  namespace n = metrics::names;
  std::lock_guard lock(statusMutex_);
  out.gauge(n::kRole, "This tandem's role in replication", 1, {{"role", "standby"}});
  out.gauge(n::kProtected, "1 while this standby holds a committed epoch it could run", standing_ ? 1 : 0);
  out.gauge(n::kGeneration, "Replication generation of the guest (+1 at every failover)", static_cast<double>(generation_));
  out.counter(n::kSessions, "Replication sessions begun with a primary", static_cast<double>(sessions_));
  out.gauge(n::kCommittedEpoch, "The last epoch committed here", static_cast<double>(committedEpoch_));
  out.counter(n::kDiscardedEpochs, "Epochs refused whole (out of order, not matching their Commit)", static_cast<double>(discardedEpochs_));
  out.counter(n::kRefusedSessions, "Sessions refused because this standby could not take over from that primary",
              static_cast<double>(incompatible_));
  out.counter(n::kIgnoredReplays, "Commits of epochs already committed, ignored", static_cast<double>(ignoredReplays_));
  out.counter(n::kDiskSyncs, "Epochs with a guest flush whose disk writes were made durable here before the ack",
              static_cast<double>(diskSyncs_));
  for (const char* reason : {"version", "session", "malformed"}) {
    auto it = refused_.find(reason);
    out.counter(n::kRefusedMessages, "Messages refused unread, by reason", it == refused_.end() ? 0 : static_cast<double>(it->second),
                {{"reason", reason}});
  }
  for (auto [encoding, count] : {std::pair{"zero", received_.zero}, {"raw", received_.raw}, {"lz4", received_.lz4}, {"xbzrle", received_.xbzrle}})
    out.counter(n::kPagesReceived, "Pages received from primaries, by encoding", static_cast<double>(count), {{"encoding", encoding}});
  out.counter(n::kReceivedBytes, "Bytes of pages received from primaries (encoded)", static_cast<double>(receivedBytes_));
  out.gauge(n::kHeartbeatAge, "Time since the peer was last heard", msBetween(lastHeard(), Clock::now()) / 1000);
  out.gauge(n::kFailoverAfter, "Silence after which this standby takes over", std::chrono::duration<double>(failoverAfter_).count());
}

}  // namespace tandem
