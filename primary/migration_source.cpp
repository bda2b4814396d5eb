#include "primary/migration_source.hpp"

#include <chrono>
#include <cstring>
#include <random>
#include <vector>

#include "base/error.hpp"
#include "base/log.hpp"
#include "codec/page_codec.hpp"
#include "transport/channel.hpp"

namespace tandem {

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kPagesPerMessage = 256;
constexpr auto kAnswerTimeout = std::chrono::seconds(10);

double msSince(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

schema::Encoding toSchema(codec::Encoding e) {
  switch (e) {
    case codec::Encoding::Zero: return schema::Encoding::ZERO;
    case codec::Encoding::Raw: return schema::Encoding::RAW;
    case codec::Encoding::Lz4: return schema::Encoding::LZ4;
  }
  return schema::Encoding::INVALID;
}

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
    throw Error(ErrorKind::Failed, concat(to, " refused the migration: ", envelope.getRefusal().cStr()));
  if (envelope.which() != expected)
    throw Error(ErrorKind::Failed, concat(to, " answered out of order while we waited for ", waitingFor));
  return std::move(r.message);
}

}  // namespace

nlohmann::json MigrationStats::toJson() const {
  return {{"status", "completed"},
          {"mode", "precopy"},
          {"total_ms", totalMs},
          {"downtime_ms", downtimeMs},
          {"downtime_parts_ms", {{"pause", pauseMs}, {"final_pages", finalPagesMs}, {"state", stateMs}, {"target", targetMs}}},
          {"setup_ms", setupMs},
          {"bytes", bytes},
          {"pages", {{"zero", zeroPages}, {"raw", rawPages}, {"lz4", lz4Pages}}},
          {"rounds", rounds},
          {"throughput_mbps", totalMs > 0 ? bytes * 8 / totalMs / 1000 : 0.0}};
}

void MigrationSource::handshake(Channel& channel) {
  capnp::MallocMessageBuilder message;
  auto hello = channel.start(message).initHello();
  hello.setMode(schema::Mode::PRECOPY);
  hello.setMemorySize(machine_.config().memory);
  hello.setCpus(machine_.config().cpus);
  hello.setDisks(static_cast<uint32_t>(machine_.config().disks.size()));
  hello.setNets(static_cast<uint32_t>(machine_.config().nets.size()));
  if (!channel.send(message)) throw Error(ErrorKind::Disconnected, concat(options_.to, " does not take our Hello"));
  expect(channel, schema::Envelope::WELCOME, options_.to, "its Welcome");
}

void MigrationSource::sendRound(Channel& channel, const PageSet& pages, uint32_t round) {
  GuestMemory& memory = machine_.memory();
  std::vector<uint8_t> staged(kPageSize), encoded;
  std::vector<uint64_t> batch;
  auto flush = [&] {
    capnp::MallocMessageBuilder message;
    auto out = channel.start(message).initPages();
    out.setRound(round);
    auto list = out.initPages(static_cast<unsigned>(batch.size()));
    for (unsigned i = 0; i < batch.size(); ++i) {
      // Encode from a copy: the guest may be writing the page right now (it is then dirty again
      // and goes in a later round), and the encoder must not see it change under it.
      std::memcpy(staged.data(), memory.hostBase() + batch[i] * kPageSize, kPageSize);
      codec::Encoding e = codec::encodePage(staged.data(), encoded);
      (e == codec::Encoding::Zero ? stats_.zeroPages : e == codec::Encoding::Raw ? stats_.rawPages : stats_.lz4Pages)++;
      list[i].setFrame(memory.gpaOfPage(batch[i]).value / kPageSize);
      list[i].setEncoding(toSchema(e));
      list[i].setBytes(capnp::Data::Reader(encoded.data(), encoded.size()));
    }
    if (!channel.send(message)) throw Error(ErrorKind::Disconnected, concat(options_.to, " stopped taking pages"));
    batch.clear();
  };
  for (uint64_t w = 0; w < pages.words.size(); ++w) {
    for (uint64_t bits = pages.words[w]; bits; bits &= bits - 1) {
      batch.push_back(w * 64 + static_cast<uint64_t>(__builtin_ctzll(bits)));
      if (batch.size() == kPagesPerMessage) flush();
    }
  }
  if (!batch.empty()) flush();
  capnp::MallocMessageBuilder end;
  channel.start(end).setRoundEnd(round);
  if (!channel.send(end)) throw Error(ErrorKind::Disconnected, concat(options_.to, " stopped taking pages"));
}

void MigrationSource::awaitAck(Channel& channel, uint32_t round) {
  auto ack = expect(channel, schema::Envelope::ROUND_ACK, options_.to, "a round's acknowledgement");
  if (ack->envelope().getRoundAck() != round) throw Error(ErrorKind::Failed, concat(options_.to, " acknowledged the wrong round"));
}

MigrationStats MigrationSource::run() {
  auto start = Clock::now();
  auto channel = Channel::connect(options_.to);
  channel->setSession(std::random_device{}() | uint64_t{std::random_device{}()} << 32 | 1);
  try {
    handshake(*channel);
    stats_.setupMs = msSince(start);
    DirtyTracker& tracker = machine_.startDirtyTracking();

    // Round 0: every page the host ever backed (the target's memory starts as zeros).
    PageSet pages(machine_.memory().pageCount());
    for (const auto& region : machine_.memory().regions()) {
      auto backed = machine_.memory().backedPages(region);
      for (uint64_t i = 0; i < backed.size(); ++i)
        if (backed[i]) pages.set(region.hostOffset / kPageSize + i);
    }
    for (uint32_t round = 0;; ++round) {
      auto roundStart = Clock::now();
      uint64_t before = channel->bytesSent();
      sendRound(*channel, pages, round);
      awaitAck(*channel, round);
      ++stats_.rounds;
      double seconds = std::max(1e-3, msSince(roundStart) / 1000);
      double bytesPerSecond = static_cast<double>(channel->bytesSent() - before) / seconds;
      pages = tracker.take();
      double expectedMs = static_cast<double>(pages.count() * kPageSize) / std::max(bytesPerSecond, 1e6) * 1000;
      log::info("migration round ", round, ": ", (channel->bytesSent() - before) / kKiB, " KiB in ", seconds * 1000,
                " ms; ", pages.count(), " pages dirty, about ", expectedMs, " ms to send");
      if (expectedMs <= options_.maxDowntimeMs || round + 1 >= options_.maxRounds) break;
    }

    // Stop and copy.
    auto pauseStart = Clock::now();
    machine_.pause();
    stats_.pauseMs = msSince(pauseStart);
    try {
      auto part = Clock::now();
      pages |= tracker.take();
      // No acknowledgement for the last round: Done follows it on the same ordered channel, and
      // Running answers for all of it (one round trip less inside the downtime).
      sendRound(*channel, pages, stats_.rounds);
      ++stats_.rounds;
      stats_.finalPagesMs = msSince(part);
      part = Clock::now();
      capnp::MallocMessageBuilder stateMessage;
      auto state = encodeMachineState(machine_.capture());
      channel->start(stateMessage).setState(capnp::Data::Reader(state.data(), state.size()));
      capnp::MallocMessageBuilder doneMessage;
      channel->start(doneMessage).setDone();
      if (!channel->send(stateMessage) || !channel->send(doneMessage))
        throw Error(ErrorKind::Disconnected, concat(options_.to, " stopped taking the machine state"));
      stats_.stateMs = msSince(part);
      part = Clock::now();
      expect(*channel, schema::Envelope::RUNNING, options_.to, "the guest to run there", true);
      stats_.targetMs = msSince(part);
    } catch (...) {
      machine_.stopDirtyTracking();
      machine_.resume();
      throw;
    }
    stats_.downtimeMs = msSince(pauseStart);
  } catch (...) {
    machine_.stopDirtyTracking();
    throw;
  }
  stats_.bytes = channel->bytesSent();
  stats_.totalMs = msSince(start);
  machine_.stop();  // the guest runs on the target now
  return stats_;
}

}  // namespace tandem
