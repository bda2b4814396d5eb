// Heartbeat: both ends of a migration or a replication beat on the urgent channel every interval
// (postcopy: kHeartbeatInterval) and watch the other end: anything heard from it counts; silence
// past the limit (postcopy: kPeerSilenceLimit) means it is gone. Both start when constructed.
#pragma once

#include <chrono>
#include <cstdint>

#include "transport/channel.hpp"

namespace tandem {

constexpr auto kHeartbeatInterval = std::chrono::milliseconds(100);
constexpr auto kPeerSilenceLimit = std::chrono::seconds(3);

class Heartbeat {
public:
  using Clock = std::chrono::steady_clock;

  explicit Heartbeat(Channel& urgent, Clock::duration interval = kHeartbeatInterval,
                     Clock::duration silenceLimit = kPeerSilenceLimit)
      : urgent_(urgent), interval_(interval), silenceLimit_(silenceLimit) {}

  void heard() { lastHeard_ = Clock::now(); }
  bool peerSilent() const { return Clock::now() - lastHeard_ > silenceLimit_; }
  Clock::time_point lastHeard() const { return lastHeard_; }
  Clock::time_point nextBeat() const { return nextBeat_; }
  // When the last beat was made, read before it was sent: no peer can have heard it earlier (a
  // replicating primary's lease counts from here).
  Clock::time_point lastBeatAt() const { return lastBeatAt_; }

  // Sends one when it is due, echoing `echo` (the latest seq heard from the peer); returns its seq,
  // or 0 when none was due. Never waits: a full queue means the peer is not reading, and its
  // silence will tell.
  uint64_t beatIfDue(uint64_t echo = 0) {
    auto now = Clock::now();
    if (now < nextBeat_) return 0;
    capnp::MallocMessageBuilder message;
    auto beat = urgent_.start(message).initHeartbeat();
    beat.setSeq(++seq_);
    beat.setSentAtNs(static_cast<uint64_t>(now.time_since_epoch().count()));
    beat.setEcho(echo);
    lastBeatAt_ = now;
    urgent_.trySend(message);
    nextBeat_ = now + interval_;
    return seq_;
  }

private:
  Channel& urgent_;
  Clock::duration interval_, silenceLimit_;
  uint64_t seq_ = 0;
  Clock::time_point lastHeard_ = Clock::now(), nextBeat_ = Clock::now(), lastBeatAt_;
};

}  // namespace tandem
