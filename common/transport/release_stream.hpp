// ReleaseStream: a replicating primary's word to its standby that it is about to show the output
// of epochs up to N. It travels on a plain TCP connection (the standby's port + 2), not ZeroMQ:
// ReleaseSender::send() returns once the record is in this host's kernel, which delivers it even
// when this process is killed the next instant, and the primary writes the output only after that.
// A standby taking over therefore knows what the primary may have shown (never shows it twice),
// and what it can only have missed is output of the microseconds between those two calls.
//
// Records: the session id once (8 bytes), then one epoch per release (8 bytes, host order; both
// ends are the same build on the same architecture, like the page bitmaps of postcopy).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/fd.hpp"

namespace tandem {

class ReleaseSender {
public:
  // Connects to the release port of the standby at endpoint (tcp://HOST:PORT); Error(Disconnected)
  // when it cannot.
  ReleaseSender(const std::string& endpoint, uint64_t session);
  // Error(Disconnected) when the standby is gone.
  void send(uint64_t epoch);

private:
  Fd socket_;
};

class ReleaseListener {
public:
  // Listens on the release port of endpoint (tcp://HOST:PORT); Error(BadInput) when it cannot.
  explicit ReleaseListener(const std::string& endpoint);

  // Accepts new connections and reads what arrived, without waiting: the highest epoch released
  // so far by `session` (connections of other sessions are read too, and remembered).
  std::optional<uint64_t> released(uint64_t session);

private:
  struct Connection {
    Fd fd;
    uint64_t session = 0;
    std::vector<uint8_t> partial;
    std::optional<uint64_t> highest;
    bool sessionKnown = false;
  };
  void pump();

  Fd listen_;
  std::vector<Connection> connections_;
};

// tcp://HOST:PORT -> tcp://HOST:PORT+2, the release port (Error BadInput when it is not such an address).
uint16_t releasePort(const std::string& endpoint);

}  // namespace tandem
