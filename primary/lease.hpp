// Lease: until when the standby surely has not taken over, so that this primary may still show
// output (DESIGN.md, "Output commit"). The standby takes over only after --failover-after-ms in
// which it heard no beat; a beat it echoed was heard, so it cannot take over before that beat's
// send time + failover-after. The send time is read before the send: a late reading would
// lengthen the lease by however long the send took.
//
//   sent(seq, at)   the heartbeat thread made beat seq at `at`
//   echoed(seq)     the standby echoed it: the lease runs to at + failover-after (never shorter)
//   holds(now)      any thread: at least `margin` of the lease is left
//   forget()        a new session: the beats sent so far are not echoed any more
//   expire()        any thread: nothing holds until the next echo
//
// sent(), echoed() and forget() belong to one thread (the heartbeat thread); holds() and expire()
// may be called from any.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <utility>

namespace tandem {

class Lease {
public:
  using Clock = std::chrono::steady_clock;
  // How many recent beats are remembered: an echo of an older one renews nothing.
  static constexpr size_t kRemembered = 256;

  Lease(Clock::duration failoverAfter, Clock::duration margin) : failoverAfter_(failoverAfter), margin_(margin) {}

  void sent(uint64_t seq, Clock::time_point at) {
    sent_.emplace_back(seq, at);
    if (sent_.size() > kRemembered) sent_.pop_front();
  }

  void echoed(uint64_t seq) {
    for (const auto& [s, at] : sent_)
      if (s == seq) {
        int64_t until = (at + failoverAfter_).time_since_epoch().count();
        for (int64_t now = until_.load(); now < until && !until_.compare_exchange_weak(now, until);) {}
        return;
      }
  }

  bool holds(Clock::time_point now = Clock::now()) const { return left(now) >= margin_; }
  Clock::duration left(Clock::time_point now = Clock::now()) const {
    return Clock::duration(until_.load()) - now.time_since_epoch();
  }

  void forget() { sent_.clear(); }
  void expire() { until_ = 0; }

private:
  const Clock::duration failoverAfter_, margin_;
  std::deque<std::pair<uint64_t, Clock::time_point>> sent_;
  std::atomic<int64_t> until_{0};  // Clock ticks since its epoch; 0: expired
};

}  // namespace tandem
