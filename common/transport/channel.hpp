// Channel: one ZeroMQ PAIR socket carrying Envelopes (schema/protocol.capnp) between a source and
// a target. The only code that includes zmq.hpp. Every received message is checked for version
// and session before anyone reads it; a bad one is reported, never applied.
#pragma once

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "protocol.capnp.h"
#include "transport/outgoing.hpp"

namespace zmq {
class context_t;
class socket_t;
}  // namespace zmq

namespace tandem {

// A received envelope and the memory it lives in (ZeroMQ's buffers where they are word-aligned,
// copies where they are not).
class Incoming {
public:
  Incoming(std::shared_ptr<void> frames, std::vector<kj::Array<capnp::word>> copies,
           kj::Array<kj::ArrayPtr<const capnp::word>> segments);
  schema::Envelope::Reader envelope() { return reader_->getRoot<schema::Envelope>(); }

private:
  std::shared_ptr<void> frames_;
  std::vector<kj::Array<capnp::word>> copies_;
  kj::Array<kj::ArrayPtr<const capnp::word>> segments_;
  std::unique_ptr<capnp::MessageReader> reader_;
};

struct Received {
  enum class Kind { Message, Timeout, Refused } kind = Kind::Timeout;
  // Kind::Refused: of another protocol version, of another session (a stale one, say), or bytes
  // that are no message.
  enum class Problem { None, Version, Session, Malformed } why = Problem::None;
  std::unique_ptr<Incoming> message;  // Kind::Message
  std::string problem;                // Kind::Refused: why it was not accepted, in a sentence
};

// Label for counters and logs: "version", "session", "malformed".
const char* problemName(Received::Problem problem);

class Channel {
public:
  // tcp://HOST:PORT. listen() binds (Error BadInput if the address is unusable or taken).
  static std::unique_ptr<Channel> listen(const std::string& endpoint);
  static std::unique_ptr<Channel> connect(const std::string& endpoint);
  ~Channel();

  // The session this channel accepts; 0 until set (the target adopts the source's in Hello).
  void setSession(uint64_t session) { session_ = session; }
  uint64_t session() const { return session_; }

  // A builder for the next envelope, stamped with version and session.
  schema::Envelope::Builder start(capnp::MallocMessageBuilder& message) const;
  // False when the peer has not taken it within the send timeout (it is gone or stuck).
  bool send(capnp::MallocMessageBuilder& message);
  // Without waiting: false when the queue towards the peer is full (try again later).
  bool trySend(capnp::MallocMessageBuilder& message);
  // A message with a staging buffer: its segments go as frames of one ZeroMQ message, the large
  // ones without a copy; the message is released once ZeroMQ is done with it. trySend leaves it
  // with the caller when the queue is full.
  schema::Envelope::Builder start(OutgoingMessage& message) const { return start(message.builder()); }
  bool send(std::unique_ptr<OutgoingMessage> message);
  bool trySend(std::unique_ptr<OutgoingMessage>& message);
  Received receive(std::chrono::milliseconds timeout);

  // Waits at most timeout until one of channels has a message or one of fds is readable (the
  // caller then looks at each itself, without waiting).
  static void waitAny(std::initializer_list<Channel*> channels, std::initializer_list<int> fds,
                      std::chrono::milliseconds timeout);

  uint64_t bytesSent() const { return bytesSent_; }

  // Sends a Refusal (trySend: a peer that does not take it is gone anyway).
  void refuse(schema::RefusalReason reason, const std::string& text);

private:
  Channel();
  bool sendWith(capnp::MallocMessageBuilder& message, bool wait);
  bool sendOwned(std::unique_ptr<OutgoingMessage>& message, bool wait);
  std::unique_ptr<zmq::context_t> context_;
  std::unique_ptr<zmq::socket_t> socket_;
  std::atomic<uint64_t> session_{0};  // (a heartbeat thread reads it while another sets it)
  uint64_t bytesSent_ = 0;
};

}  // namespace tandem
