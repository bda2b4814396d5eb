#include "secondary/migration_target.hpp"

#include <chrono>
#include <vector>

#include "base/error.hpp"
#include "base/log.hpp"
#include "codec/page_codec.hpp"
#include "transport/channel.hpp"

namespace tandem {

namespace {

constexpr auto kSilence = std::chrono::seconds(30);

bool toCodec(schema::Encoding e, codec::Encoding& out) {
  switch (e) {
    case schema::Encoding::ZERO: out = codec::Encoding::Zero; return true;
    case schema::Encoding::RAW: out = codec::Encoding::Raw; return true;
    case schema::Encoding::LZ4: out = codec::Encoding::Lz4; return true;
    default: return false;
  }
}

}  // namespace

MigrationTarget::MigrationTarget(std::string listen, MachineConfig base, dev::Console& console)
    : listen_(std::move(listen)), base_(std::move(base)), console_(console), channel_(Channel::listen(listen_)) {}

MigrationTarget::~MigrationTarget() = default;

void MigrationTarget::refuse(const std::string& reason) {
  log::warn("refused a source: ", reason);
  capnp::MallocMessageBuilder message;
  channel_->start(message).setRefusal(reason);
  channel_->send(message);
}

std::unique_ptr<Machine> MigrationTarget::receive() {
  for (;;) {
    channel_->setSession(0);
    Received r = channel_->receive(std::chrono::hours(24));
    if (r.kind == Received::Kind::Timeout) continue;
    if (r.kind == Received::Kind::Refused) {
      refuse(concat("this standby cannot read it: ", r.problem));
      continue;
    }
    auto envelope = r.message->envelope();
    if (!envelope.isHello()) {
      refuse("the first message must be Hello");
      continue;
    }
    channel_->setSession(envelope.getSession());
    try {
      return receiveFrom(*r.message);
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::Disconnected) throw;
      refuse(e.what());
      throw;
    }
  }
}

std::unique_ptr<Machine> MigrationTarget::receiveFrom(Incoming& helloMessage) {
  auto hello = helloMessage.envelope().getHello();
  if (hello.getMode() != schema::Mode::PRECOPY)
    failBadInput("the source asks for a mode this standby does not serve (only precopy)");
  if (hello.getDisks() != base_.disks.size() || hello.getNets() != base_.nets.size())
    failBadInput("the source has ", hello.getDisks(), " disks and ", hello.getNets(), " NICs; this standby was given ",
                 base_.disks.size(), " and ", base_.nets.size());
  MachineConfig config = base_;
  config.memory = hello.getMemorySize();
  config.cpus = hello.getCpus();
  if (config.memory < GuestMemory::kMinimumSize || config.memory % (2 * kMiB) || config.memory > hostAvailableMemory())
    failBadInput("the source's ", config.memory / kMiB, " MiB of memory do not fit on this standby");
  if (config.cpus == 0 || config.cpus > 255) failBadInput("the source has ", config.cpus, " vCPUs");
  auto machine = std::make_unique<Machine>(config, console_, Machine::ForRestore{});
  GuestMemory& memory = machine->memory();

  capnp::MallocMessageBuilder welcome;
  channel_->start(welcome).setWelcome();
  if (!channel_->send(welcome)) throw Error(ErrorKind::Disconnected, "the source went away after its Hello");

  std::vector<uint8_t> page(kPageSize);
  std::optional<MachineState> state;
  for (;;) {
    Received r = channel_->receive(kSilence);
    if (r.kind == Received::Kind::Timeout) throw Error(ErrorKind::Disconnected, "the source went silent for 30 s");
    if (r.kind == Received::Kind::Refused) throw Error(ErrorKind::Failed, concat("the source sent ", r.problem));
    auto envelope = r.message->envelope();
    switch (envelope.which()) {
      case schema::Envelope::PAGES:
        for (auto p : envelope.getPages().getPages()) {
          codec::Encoding encoding;
          auto bytes = p.getBytes();
          if (!toCodec(p.getEncoding(), encoding) || !codec::decodePage(encoding, std::span(bytes.begin(), bytes.size()), page.data()))
            throw Error(ErrorKind::Failed, concat("the source sent a page that does not decode (frame ", p.getFrame(), ")"));
          try {
            memory.write(Gpa{p.getFrame() * kPageSize}, page);
          } catch (const Error&) {
            throw Error(ErrorKind::Failed, concat("the source sent frame ", p.getFrame(), ", outside guest memory"));
          }
        }
        break;
      case schema::Envelope::ROUND_END: {
        // The source waits for this during precopy rounds; for the final round it does not, and
        // the unread ack is dropped with the channel.
        capnp::MallocMessageBuilder ack;
        channel_->start(ack).setRoundAck(envelope.getRoundEnd());
        if (!channel_->send(ack)) throw Error(ErrorKind::Disconnected, "the source went away");
        break;
      }
      case schema::Envelope::STATE: {
        auto bytes = envelope.getState();
        state = decodeMachineState(std::span(bytes.begin(), bytes.size()));
        break;
      }
      case schema::Envelope::DONE:
        if (!state) throw Error(ErrorKind::Failed, "the source said Done before it sent the machine state");
        machine->restore(*state);
        return machine;
      case schema::Envelope::REFUSAL:
        throw Error(ErrorKind::Failed, concat("the source gave up: ", envelope.getRefusal().cStr()));
      default:
        throw Error(ErrorKind::Failed, "the source sent a message out of order");
    }
  }
}

void MigrationTarget::reportRunning() {
  capnp::MallocMessageBuilder message;
  channel_->start(message).setRunning();
  channel_->send(message);
}

}  // namespace tandem
