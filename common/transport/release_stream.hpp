// ReleaseStream: a replicating primary's word to its standby that it shows the output of epochs up
// to N now. It travels on a plain TCP connection (the standby's port + 2), not ZeroMQ:
// ReleaseSender::send() returns once the record is in this host's kernel, which delivers it even
// when this process is killed the next instant, and the primary writes the output right after,
// with nothing of normal priority able to come between (Replicator: RealtimeScope). The socket is
// corked: send() only queues the record in this kernel (a copy, no transmission: the window
// between the record and the output is a microsecond or two, not the ten or more a loopback
// transmission takes inside send()), and push() sends it once the output is out; a kill in between
// still delivers it, as the kernel sends what a closed socket had queued. A standby
// that takes over stops reading records first (freeze()) and shows the committed output the
// primary had not released: output is shown once. The two ways to get it wrong are both a matter
// of microseconds: the primary killed between its record and its write (the output is lost), or
// the link cut while the record is on the wire (the output is shown twice).
//
// Why not wait for the standby's answer before showing: then a primary killed or frozen while
// the answer is on its way, which takes the standby a wakeup (0.1 ms idle, milliseconds on a busy
// host), loses that epoch's output; the chaos tests lost a tick in three runs out of four.
//
// Records: the session id once (8 bytes), then one epoch per release (8 bytes, host order; both
// ends are the same build on the same architecture, like the page bitmaps of postcopy).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/fd.hpp"
#include "base/thread.hpp"

namespace tandem {

class ReleaseSender {
public:
  // Connects to the release port of the standby at endpoint (tcp://HOST:PORT); Error(Disconnected)
  // when it cannot.
  ReleaseSender(const std::string& endpoint, uint64_t session);
  // Queues the record in this host's kernel; Error(Disconnected) when the standby is gone.
  void send(uint64_t epoch);
  // Sends what send() queued (after the output was written).
  void push();

private:
  Fd socket_;
};

// Reads releases on a thread of its own, as they come.
class ReleaseListener {
public:
  // Listens on the release port of endpoint (tcp://HOST:PORT); Error(BadInput) when it cannot.
  explicit ReleaseListener(const std::string& endpoint);
  ~ReleaseListener();

  // The highest epoch `session` released so far (connections of other sessions are remembered too).
  std::optional<uint64_t> released(uint64_t session) const;
  // Reads the records already in this host's kernel (their primary shows that output), and from
  // then on records nothing more (the standby takes over the guest).
  void freeze();

private:
  struct Connection {
    Fd fd;
    uint64_t session = 0;
    std::vector<uint8_t> partial;
    std::optional<uint64_t> highest;
    bool sessionKnown = false;
  };
  void serve();
  void pump();

  Fd listen_;
  EventFd stop_;
  mutable std::mutex mutex_;  // connections_ and frozen_, between serve() and the callers
  bool frozen_ = false;
  std::vector<Connection> connections_;
  std::unique_ptr<NamedThread> thread_;
};

// tcp://HOST:PORT -> tcp://HOST:PORT+2, the release port (Error BadInput when it is not such an address).
uint16_t releasePort(const std::string& endpoint);

}  // namespace tandem
