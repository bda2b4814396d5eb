// Link: the two channels between a migration source and its target. `bulk` carries Hello, pages
// and state; `urgent` carries heartbeats, postcopy page requests and the pages they ask for, on
// its own TCP connection (the endpoint's port + 1) so that bulk data never delays them.
#pragma once

#include <memory>
#include <string>

#include "transport/channel.hpp"

namespace tandem {

struct Link {
  std::unique_ptr<Channel> bulk, urgent;

  // tcp://HOST:PORT: bulk on PORT, urgent on PORT + 1. Error BadInput if either cannot be used.
  static Link listen(const std::string& endpoint);
  static Link connect(const std::string& endpoint);

  void setSession(uint64_t session) {
    bulk->setSession(session);
    urgent->setSession(session);
  }
  uint64_t bytesSent() const { return bulk->bytesSent() + urgent->bytesSent(); }
};

// tcp://HOST:PORT -> tcp://HOST:PORT+1 (Error BadInput when it is not such an address).
std::string urgentEndpoint(const std::string& endpoint);

}  // namespace tandem
