#include "secondary/migration_target.hpp"

#include <chrono>
#include <vector>

#include "base/error.hpp"
#include "base/host_identity.hpp"
#include "base/log.hpp"
#include "metrics/names.hpp"
#include "secondary/machine_shape.hpp"
#include "secondary/postcopy_target.hpp"
#include "secondary/received_page.hpp"
#include "secondary/replica_disks.hpp"
#include "transport/link.hpp"
#include "transport/page_bitmap.hpp"

namespace tandem {

namespace {

constexpr auto kSilence = std::chrono::seconds(30);

}  // namespace

MigrationTarget::MigrationTarget(std::string listen, MachineConfig base, dev::Console& console, PreparedMemory& prepared,
                                 std::chrono::seconds postcopyWait)
    : postcopyWait_(postcopyWait),
      listen_(std::move(listen)),
      base_(std::move(base)),
      console_(console),
      link_(std::make_unique<Link>(Link::listen(listen_))),
      prepared_(prepared),
      replica_(base_, console_, prepared_),
      releases_(listen_) {}

MigrationTarget::~MigrationTarget() {
  stopRefusing_ = true;
  refuser_.reset();
  postcopy_.reset();
}

void MigrationTarget::refuse(schema::RefusalReason reason, const std::string& text) {
  log::warn("refused a source: ", text);
  link_->bulk->refuse(reason, text);
}

std::unique_ptr<Machine> MigrationTarget::receive() {
  for (;;) {
    // Again, after a guest that took it was dropped; not while a committed epoch is watched over
    // (preparing takes up to seconds, and the primary's silence counts meanwhile).
    if (!replica_.hasCommitted()) prepared_.prepare();
    link_->setSession(0);
    auto wait = std::chrono::milliseconds(std::chrono::hours(24));
    if (replica_.hasCommitted()) {
      // Between sessions the committed epoch stays protected: the primary's silence still counts.
      auto left = std::chrono::ceil<std::chrono::milliseconds>(replica_.failoverAt() - Replica::Clock::now());
      if (left.count() <= 0) {
        log::warn("the primary has not come back within its failover time: taking over");
        tookOver_ = true;
        return replica_.takeOver(releases_);
      }
      wait = left;
    }
    // Between sessions a primary goes on beating on the urgent channel: it is alive, and its
    // silence counts from its last beat (Replica::heardWithin, after a last look).
    Channel::waitAny({link_->bulk.get(), link_->urgent.get()}, {}, wait);
    uint64_t seq = 0;
    replica_.heardWithin(*link_->urgent, std::chrono::milliseconds(0), seq);
    Received r = link_->bulk->receive(std::chrono::milliseconds(0));
    if (r.kind == Received::Kind::Timeout) {
      if (replica_.hasCommitted() && Replica::Clock::now() >= replica_.failoverAt())
        replica_.heardWithin(*link_->urgent, std::chrono::milliseconds(10), seq);  // a last look
      continue;
    }
    if (r.kind == Received::Kind::Refused) {
      if (r.why != Received::Problem::Session)  // (what a session that ended had still on its way is dropped)
        refuse(schema::RefusalReason::UNREADABLE, concat("this standby cannot read it: ", r.problem));
      continue;
    }
    auto envelope = r.message->envelope();
    if (envelope.isEnd()) {  // a primary whose guest ended between two sessions
      link_->setSession(envelope.getSession());
      replica_.end(envelope.getEnd().cStr());
      capnp::MallocMessageBuilder ack;
      link_->bulk->start(ack).setEndAck();
      link_->bulk->trySend(ack);
      continue;
    }
    if (!envelope.isHello()) {
      // What a session that ended had still on its way (a replicating primary keeps its
      // connection across sessions): dropped unanswered.
      log::debug("dropped a message that came before any Hello");
      continue;
    }
    link_->setSession(envelope.getSession());
    bool replicating = envelope.getHello().getMode() == schema::Mode::REPLICATE;
    try {
      if (replicating) {
        auto outcome = replica_.serve(*link_, *r.message, releases_);
        if (outcome == Replica::Outcome::SessionEnded) continue;
        tookOver_ = true;
        handedOver_ = outcome == Replica::Outcome::HandedOver;
        return replica_.takeOver(releases_);
      }
      return receiveFrom(*r.message);
    } catch (const Error& e) {
      // This standby does not fit the source: the operator has to change something.
      if (e.kind() == ErrorKind::BadInput) {
        refuse(schema::RefusalReason::INCOMPATIBLE, e.what());
        throw;
      }
      // A source that gave up, vanished or sent something unusable: what came is dropped, and
      // the standby waits for the next one.
      if (e.kind() != ErrorKind::Disconnected) refuse(schema::RefusalReason::UNREADABLE, e.what());
      log::warn("the migration from the source failed (", e.what(), "); waiting for the next source");
      // That source's connection may stay open on this side a while (the rest of its queue on
      // the way, or half-open after a cut), and a listening PAIR socket takes one peer at a time:
      // the next source could wait behind it past its 10 s for a Welcome. (A replicating primary
      // keeps its connection across sessions: not for it.)
      if (!replicating) listenAnew();
    }
  }
}

void MigrationTarget::listenAnew() {
  link_.reset();  // (closes both channels, so that their ports can be bound again)
  link_ = std::make_unique<Link>(Link::listen(listen_));
}

std::unique_ptr<Machine> MigrationTarget::receiveFrom(Incoming& helloMessage) {
  auto hello = helloMessage.envelope().getHello();
  auto mode = hello.getMode();
  if (mode != schema::Mode::PRECOPY && mode != schema::Mode::POSTCOPY && mode != schema::Mode::HYBRID)
    failBadInput("the source asks for a mode this standby does not serve (precopy, postcopy, hybrid)");
  MachineConfig config = machineForHello(base_, hello, "source");
  // The disks (their sizes must match) move with the guest, chunks written here as they come; or,
  // with shared storage, the files here must be the source's (checked now on one host, and by the
  // sampled digests the source sends inside its pause).
  std::optional<ReplicaDisks> disks;
  bool shared = hello.getSharedStorage();
  size_t fingerprinted = 0;  // shared storage: disks whose sampled content matched
  if (!base_.disks.empty()) {
    disks.emplace(base_.disks);
    disks->checkShape(hello.getDiskSizes(), "source");
    if (!shared) disks->beginSync(false);
    else if (hello.getBootId() == hostBootId()) disks->checkSameFiles(hello.getDiskIdentities());
  }
  auto machine = std::make_unique<Machine>(config, console_, prepared_.take(config.memory));
  machine->prepareStart();  // now, rather than inside the downtime
  GuestMemory& memory = machine->memory();
  // Prepared memory holds zeros in pages the host backed: postcopy must drop the owed ones.
  bool memoryBacked = prepared_.tookPrepared();

  capnp::MallocMessageBuilder welcome;
  link_->bulk->start(welcome).setWelcome();
  if (!link_->bulk->send(welcome)) throw Error(ErrorKind::Disconnected, "the source went away after its Hello");
  if (disks && !shared && !disks->sendDigests(*link_->bulk)) throw Error(ErrorKind::Disconnected, "the source went away after its Hello");

  std::optional<MachineState> state;
  std::optional<PageSet> owed;
  bool pagesArrived = false;  // precopy rounds wrote into memory
  for (;;) {
    Received r = link_->bulk->receive(kSilence);
    if (r.kind == Received::Kind::Timeout) throw Error(ErrorKind::Disconnected, "the source went silent for 30 s");
    if (r.kind == Received::Kind::Refused) throw Error(ErrorKind::Failed, concat("the source sent ", r.problem));
    auto envelope = r.message->envelope();
    switch (envelope.which()) {
      case schema::Envelope::PAGES:
        pagesArrived = true;
        writeReceivedPages(memory, envelope.getPages(), Deltas::Allowed);  // (a failed migration drops memory)
        break;
      case schema::Envelope::DISK_CHUNK:
        if (!disks || shared) throw Error(ErrorKind::Failed, "the source sent a disk chunk where none was due");
        disks->writeChunk(envelope.getDiskChunk());
        break;
      case schema::Envelope::DISK_DIGESTS:  // shared storage, inside the source's pause
        if (!disks || !shared) throw Error(ErrorKind::Failed, "the source sent disk digests where none were due");
        disks->checkSameContent(envelope.getDiskDigests());
        ++fingerprinted;
        break;
      case schema::Envelope::ROUND_END: {
        // The source waits for this during precopy rounds; for the final round it does not, and
        // the unread ack is dropped with the channel.
        capnp::MallocMessageBuilder ack;
        link_->bulk->start(ack).setRoundAck(envelope.getRoundEnd());
        if (!link_->bulk->send(ack)) throw Error(ErrorKind::Disconnected, "the source went away");
        break;
      }
      case schema::Envelope::STATE: {
        auto bytes = envelope.getState();
        state = decodeMachineState(std::span(bytes.begin(), bytes.size()));
        break;
      }
      case schema::Envelope::POSTCOPY: {
        if (mode == schema::Mode::PRECOPY) throw Error(ErrorKind::Failed, "the source switched to postcopy during a precopy migration");
        owed = bitmapOf(envelope.getPostcopy().getOwed(), memory.pageCount());
        if (!owed) throw Error(ErrorKind::Failed, "the source's list of owed pages does not match the guest's memory");
        break;
      }
      case schema::Envelope::DONE:
        if (!state) throw Error(ErrorKind::Failed, "the source said Done before it sent the machine state");
        if (disks && shared && fingerprinted < base_.disks.size())
          throw Error(ErrorKind::Failed, "the source declared shared storage and did not fingerprint every disk");
        if (disks && !shared) disks->keepSync();
        // Postcopy: from here on missing pages are fetched on demand, also while restoring.
        if (owed)
          postcopy_ = std::make_unique<PostcopyTarget>(
              memory, *link_, listen_, std::move(*owed),
              pagesArrived || memoryBacked ? PostcopyTarget::Memory::HasStaleCopies : PostcopyTarget::Memory::Untouched,
              postcopyWait_);
        try {
          machine->restore(*state);
        } catch (...) {
          postcopy_.reset();
          throw;
        }
        return machine;
      case schema::Envelope::REFUSAL:
        throw Error(ErrorKind::Disconnected, concat("the source gave up: ", envelope.getRefusal().getText().cStr()));
      case schema::Envelope::BYE:
        throw Error(ErrorKind::Disconnected, concat("the source ended the migration: ", envelope.getBye().cStr()));
      default:
        throw Error(ErrorKind::Failed, "the source sent a message out of order");
    }
  }
}

void MigrationTarget::reportRunning() {
  if (tookOver_) {
    if (handedOver_) {  // the old primary waits for this before it stops
      capnp::MallocMessageBuilder running;
      link_->bulk->start(running).setRunning();
      link_->bulk->trySend(running);
    }
    uint64_t generation = this->generation();
    refuser_ = std::make_unique<NamedThread>("superseded", [this, generation] {
      while (!stopRefusing_) {
        link_->setSession(0);
        Received r = link_->bulk->receive(std::chrono::milliseconds(100));
        if (r.kind != Received::Kind::Message || !r.message->envelope().isHello()) continue;
        link_->setSession(r.message->envelope().getSession());
        refuse(schema::RefusalReason::SUPERSEDED,
               concat("superseded: this standby took over and runs the guest at generation ", generation));
      }
    });
    return;
  }
  if (postcopy_) return postcopy_->reportRunning();
  capnp::MallocMessageBuilder message;
  link_->bulk->start(message).setRunning();
  link_->bulk->send(message);
}

nlohmann::json MigrationTarget::arrivalStatus() const {
  if (postcopy_) return postcopy_->status();
  if (tookOver_) return nullptr;
  return {{"direction", "incoming"}, {"phase", "completed"}};
}

void MigrationTarget::collectMetrics(metrics::Families& out) const {
  replica_.collectMetrics(out);
  // From the start, at 0: an alert on increase() sees the first failover only if 0 came before it.
  out.counter(metrics::names::kFailovers, "Takeovers by this tandem", 0);
}

void MigrationTarget::collectRunningMetrics(metrics::Families& out) const {
  out.counter(metrics::names::kFailovers, "Takeovers by this tandem", tookOver_ ? 1 : 0);
  if (postcopy_) postcopy_->collectMetrics(out);
}

}  // namespace tandem
