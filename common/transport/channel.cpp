#include "transport/channel.hpp"

#include <kj/exception.h>

#include <cstring>
#include <vector>
#include <zmq.hpp>

#include "base/error.hpp"

namespace tandem {

namespace {

constexpr int kSendTimeoutMs = 10'000;
constexpr int kQueuedMessages = 16;  // at most this many batches wait in ZeroMQ's queue

void checkEndpoint(const std::string& endpoint) {
  if (!endpoint.starts_with("tcp://") || endpoint.rfind(':') <= 6)
    failBadInput("'", endpoint, "' is not an address like tcp://127.0.0.1:7000");
}

}  // namespace

Incoming::Incoming(kj::Array<capnp::word> words)
    : words_(std::move(words)), reader_(words_, [] {
        capnp::ReaderOptions options;
        options.traversalLimitInWords = 64 * 1024 * 1024;
        return options;
      }()) {}

Channel::Channel() : context_(std::make_unique<zmq::context_t>(1)) {
  socket_ = std::make_unique<zmq::socket_t>(*context_, zmq::socket_type::pair);
  socket_->set(zmq::sockopt::linger, 0);
  socket_->set(zmq::sockopt::sndtimeo, kSendTimeoutMs);
  socket_->set(zmq::sockopt::sndhwm, kQueuedMessages);
  socket_->set(zmq::sockopt::rcvhwm, kQueuedMessages);
}

Channel::~Channel() = default;

std::unique_ptr<Channel> Channel::listen(const std::string& endpoint) {
  checkEndpoint(endpoint);
  std::unique_ptr<Channel> channel(new Channel());
  try {
    channel->socket_->bind(endpoint);
  } catch (const zmq::error_t& e) {
    failBadInput("cannot listen on ", endpoint, ": ", e.what());
  }
  return channel;
}

std::unique_ptr<Channel> Channel::connect(const std::string& endpoint) {
  checkEndpoint(endpoint);
  std::unique_ptr<Channel> channel(new Channel());
  try {
    channel->socket_->connect(endpoint);
  } catch (const zmq::error_t& e) {
    failBadInput("cannot connect to ", endpoint, ": ", e.what());
  }
  return channel;
}

schema::Envelope::Builder Channel::start(capnp::MallocMessageBuilder& message) const {
  auto envelope = message.initRoot<schema::Envelope>();
  envelope.setVersion(schema::K_PROTOCOL_VERSION);
  envelope.setSession(session_);
  return envelope;
}

bool Channel::send(capnp::MallocMessageBuilder& message) { return sendWith(message, true); }

bool Channel::trySend(capnp::MallocMessageBuilder& message) { return sendWith(message, false); }

bool Channel::sendWith(capnp::MallocMessageBuilder& message, bool wait) {
  auto words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  // zmq copies the bytes into its message once; the flat array is freed when we return.
  auto sent = socket_->send(zmq::const_buffer(bytes.begin(), bytes.size()),
                            wait ? zmq::send_flags::none : zmq::send_flags::dontwait);
  if (!sent) return false;
  bytesSent_ += bytes.size();
  return true;
}

uint32_t Channel::waitAny(std::initializer_list<Channel*> channels, std::initializer_list<int> fds,
                          std::chrono::milliseconds timeout) {
  std::vector<zmq::pollitem_t> items;
  for (Channel* c : channels) items.push_back({c->socket_->handle(), 0, ZMQ_POLLIN, 0});
  for (int fd : fds) items.push_back({nullptr, fd, ZMQ_POLLIN, 0});
  zmq::poll(items.data(), items.size(), timeout);
  uint32_t ready = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    unsigned bit = i < channels.size() ? static_cast<unsigned>(i) : kFirstFdBit + static_cast<unsigned>(i - channels.size());
    if (items[i].revents & ZMQ_POLLIN) ready |= 1u << bit;
  }
  return ready;
}

Received Channel::receive(std::chrono::milliseconds timeout) {
  Received result;
  zmq::pollitem_t item{socket_->handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, timeout) == 0) return result;
  zmq::message_t raw;
  if (!socket_->recv(raw, zmq::recv_flags::dontwait)) return result;
  result.kind = Received::Kind::Refused;
  if (raw.size() % sizeof(capnp::word) != 0 || raw.size() == 0) {
    result.problem = "a message that is not a whole number of words";
    return result;
  }
  // ZeroMQ's buffer need not be word-aligned; Cap'n Proto reads aligned words only: copy.
  auto words = kj::heapArray<capnp::word>(raw.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), raw.data(), raw.size());
  try {
    auto incoming = std::make_unique<Incoming>(std::move(words));
    auto envelope = incoming->envelope();
    if (envelope.getVersion() != schema::K_PROTOCOL_VERSION) {
      result.problem = concat("protocol version ", envelope.getVersion(), " (this tandem speaks ",
                              schema::K_PROTOCOL_VERSION, ")");
      return result;
    }
    if (session_ != 0 && envelope.getSession() != session_) {
      result.problem = concat("a message from session ", envelope.getSession(), ", not ", session_);
      return result;
    }
    envelope.which();  // reads the union tag: a malformed message throws here, not later
    result.kind = Received::Kind::Message;
    result.message = std::move(incoming);
  } catch (const kj::Exception& e) {
    result.problem = concat("a malformed message: ", e.getDescription().cStr());
  }
  return result;
}

}  // namespace tandem
