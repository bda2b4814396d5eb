// ReleaseStream: a replicating primary's word to its standby that it is about to show the output
// of epochs up to N, on a plain TCP connection (the standby's port + 2), not ZeroMQ. The standby
// records it and answers with the epoch; only then does the primary show that output. A standby
// that takes over stops recording first (freeze()), so the output of any epoch is shown by exactly
// one side: by the primary if the standby recorded its release, else by the standby. A link cut
// between the two cannot make both show it, and a killed primary loses at most what it had
// recorded and not yet written out (microseconds).
//
// Records: the session id once (8 bytes), then one epoch per release (8 bytes, host order; both
// ends are the same build on the same architecture, like the page bitmaps of postcopy); the
// standby answers each with the highest epoch it recorded for the connection (8 bytes).
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
  // Error(Disconnected) when the standby is gone.
  void send(uint64_t epoch);
  // Waits at most timeout for the standby's word that it recorded the release of epoch; false
  // when it did not come (Error(Disconnected) when the connection broke).
  bool waitRecorded(uint64_t epoch, std::chrono::milliseconds timeout);

private:
  Fd socket_;
  std::vector<uint8_t> partial_;
  uint64_t recorded_ = 0;
};

// Records and answers releases on a thread of its own, at once.
class ReleaseListener {
public:
  // Listens on the release port of endpoint (tcp://HOST:PORT); Error(BadInput) when it cannot.
  explicit ReleaseListener(const std::string& endpoint);
  ~ReleaseListener();

  // The highest epoch `session` released so far (connections of other sessions are remembered too).
  std::optional<uint64_t> released(uint64_t session) const;
  // From now on nothing more is recorded or answered (the standby takes over the guest).
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
