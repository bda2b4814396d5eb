#include "transport/channel.hpp"

#include <kj/exception.h>

#include <atomic>
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

capnp::ReaderOptions readerOptions() {
  capnp::ReaderOptions options;
  options.traversalLimitInWords = 64 * 1024 * 1024;
  return options;
}

}  // namespace

Incoming::Incoming(std::shared_ptr<void> frames, std::vector<kj::Array<capnp::word>> copies,
                   kj::Array<kj::ArrayPtr<const capnp::word>> segments)
    : frames_(std::move(frames)),
      copies_(std::move(copies)),
      segments_(std::move(segments)),
      reader_(std::make_unique<capnp::SegmentArrayMessageReader>(segments_.asPtr(), readerOptions())) {}

namespace {

constexpr size_t kMaxSegments = 512;

// The frames of one ZeroMQ message as Cap'n Proto segments. Frame 0 holds the segment table and
// the first segments; each further frame holds one more segment (the large ones, sent without a
// copy). Empty with `problem` set when they do not add up.
struct Segments {
  std::vector<kj::Array<capnp::word>> copies;
  kj::Array<kj::ArrayPtr<const capnp::word>> segments;
  std::string problem;
};

const capnp::word* aligned(const zmq::message_t& frame, std::vector<kj::Array<capnp::word>>& copies) {
  if (reinterpret_cast<uintptr_t>(frame.data()) % sizeof(capnp::word) == 0) return frame.data<capnp::word>();
  auto copy = kj::heapArray<capnp::word>(frame.size() / sizeof(capnp::word));
  std::memcpy(copy.begin(), frame.data(), frame.size());
  copies.push_back(std::move(copy));
  return copies.back().begin();
}

Segments segmentsOf(const std::vector<zmq::message_t>& frames) {
  Segments out;
  for (const auto& f : frames)
    if (f.size() % sizeof(capnp::word) != 0 || frames[0].size() == 0) {
      out.problem = "a message that is not a whole number of words";
      return out;
    }
  const zmq::message_t& first = frames[0];
  const capnp::word* base = aligned(first, out.copies);
  const auto* table = reinterpret_cast<const uint32_t*>(base);
  uint32_t count = table[0] + 1;
  size_t tableWords = (count / 2) + 1;  // (1 + count) uint32s, padded to whole words
  if (count > kMaxSegments || count < frames.size() || tableWords * sizeof(capnp::word) > first.size()) {
    out.problem = "a message with a bad segment table";
    return out;
  }
  const uint32_t* sizes = table + 1;
  size_t inFirst = count - (frames.size() - 1);
  size_t wordsInFirst = tableWords;
  for (size_t i = 0; i < inFirst; ++i) wordsInFirst += sizes[i];
  bool fits = wordsInFirst * sizeof(capnp::word) == first.size();
  for (size_t i = inFirst; fits && i < count; ++i) fits = sizes[i] * sizeof(capnp::word) == frames[i - inFirst + 1].size();
  if (!fits) {
    out.problem = "a message whose segments do not add up";
    return out;
  }
  auto segments = kj::heapArrayBuilder<kj::ArrayPtr<const capnp::word>>(count);
  const capnp::word* at = base + tableWords;
  for (size_t i = 0; i < inFirst; at += sizes[i], ++i) segments.add(at, sizes[i]);
  for (size_t i = inFirst; i < count; ++i) segments.add(aligned(frames[i - inFirst + 1], out.copies), sizes[i]);
  out.segments = segments.finish();
  return out;
}

}  // namespace

Channel::Channel() : context_(std::make_unique<zmq::context_t>(1)) {
  socket_ = std::make_unique<zmq::socket_t>(*context_, zmq::socket_type::pair);
  // A last message (a Bye, a Refusal) still goes out when the channel closes right after it; a
  // peer that is gone costs at most this long.
  socket_->set(zmq::sockopt::linger, 500);
  socket_->set(zmq::sockopt::sndtimeo, kSendTimeoutMs);
  socket_->set(zmq::sockopt::sndhwm, kQueuedMessages);
  socket_->set(zmq::sockopt::rcvhwm, kQueuedMessages);
  // Nothing legitimate comes near this (a Pages message is about 1 MiB): a peer that sends more
  // is cut off instead of filling our memory.
  socket_->set(zmq::sockopt::maxmsgsize, int64_t{256} << 20);
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

void Channel::waitAny(std::initializer_list<Channel*> channels, std::initializer_list<int> fds,
                      std::chrono::milliseconds timeout) {
  std::vector<zmq::pollitem_t> items;
  for (Channel* c : channels) items.push_back({c->socket_->handle(), 0, ZMQ_POLLIN, 0});
  for (int fd : fds) items.push_back({nullptr, fd, ZMQ_POLLIN, 0});
  zmq::poll(items.data(), items.size(), timeout);
}

Received Channel::receive(std::chrono::milliseconds timeout) {
  Received result;
  zmq::pollitem_t item{socket_->handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, timeout) == 0) return result;
  auto frames = std::make_shared<std::vector<zmq::message_t>>();
  for (;;) {
    zmq::message_t frame;
    if (!socket_->recv(frame, zmq::recv_flags::dontwait)) break;
    bool more = frame.more();
    frames->push_back(std::move(frame));
    if (!more) break;
  }
  if (frames->empty()) return result;
  result.kind = Received::Kind::Refused;
  auto segments = segmentsOf(*frames);
  if (!segments.problem.empty()) {
    result.why = Received::Problem::Malformed;
    result.problem = segments.problem;
    return result;
  }
  try {
    auto incoming = std::make_unique<Incoming>(frames, std::move(segments.copies), std::move(segments.segments));
    auto envelope = incoming->envelope();
    if (envelope.getVersion() != schema::K_PROTOCOL_VERSION) {
      result.why = Received::Problem::Version;
      result.problem = concat("protocol version ", envelope.getVersion(), " (this tandem speaks ",
                              schema::K_PROTOCOL_VERSION, ")");
      return result;
    }
    if (uint64_t session = session_; session != 0 && envelope.getSession() != session) {
      result.why = Received::Problem::Session;
      result.problem = concat("a message from session ", envelope.getSession(), ", not ", session);
      return result;
    }
    envelope.which();  // reads the union tag: a malformed message throws here, not later
    result.kind = Received::Kind::Message;
    result.message = std::move(incoming);
  } catch (const kj::Exception& e) {
    result.why = Received::Problem::Malformed;
    result.problem = concat("a malformed message: ", e.getDescription().cStr());
  }
  return result;
}

const char* problemName(Received::Problem problem) {
  switch (problem) {
    case Received::Problem::Version: return "version";
    case Received::Problem::Session: return "session";
    default: return "malformed";
  }
}

void Channel::refuse(schema::RefusalReason reason, const std::string& text) {
  capnp::MallocMessageBuilder message;
  auto refusal = start(message).initRefusal();
  refusal.setReason(reason);
  refusal.setText(text);
  trySend(message);
}

bool Channel::send(std::unique_ptr<OutgoingMessage> message) { return sendOwned(message, true); }

bool Channel::trySend(std::unique_ptr<OutgoingMessage>& message) { return sendOwned(message, false); }

bool Channel::sendOwned(std::unique_ptr<OutgoingMessage>& message, bool wait) {
  auto segments = message->builder().getSegmentsForOutput();
  size_t count = segments.size();
  // Frame 0: the segment table and segment 0 (the envelope and the page list, small), copied.
  size_t tableWords = count / 2 + 1;
  zmq::message_t first((tableWords + segments[0].size()) * sizeof(capnp::word));
  auto* table = first.data<uint32_t>();
  std::memset(table, 0, tableWords * sizeof(capnp::word));
  table[0] = static_cast<uint32_t>(count - 1);
  for (size_t i = 0; i < count; ++i) table[1 + i] = static_cast<uint32_t>(segments[i].size());
  std::memcpy(first.data<capnp::word>() + tableWords, segments[0].begin(), segments[0].size() * sizeof(capnp::word));
  size_t bytes = first.size();
  auto more = count > 1 ? zmq::send_flags::sndmore : zmq::send_flags::none;
  if (!socket_->send(first, wait ? more : more | zmq::send_flags::dontwait)) return false;
  // The rest without a copy: ZeroMQ frees the message when it has sent the last of them. Once the
  // first part of a message is queued, ZeroMQ takes its other parts too.
  struct Holder {
    std::unique_ptr<OutgoingMessage> message;
    std::atomic<size_t> frames;
  };
  auto* holder = new Holder{std::move(message), count - 1};
  auto release = [](void*, void* hint) {
    auto* h = static_cast<Holder*>(hint);
    if (h->frames.fetch_sub(1) == 1) delete h;
  };
  for (size_t i = 1; i < count; ++i) {
    zmq::message_t frame(const_cast<capnp::word*>(segments[i].begin()), segments[i].size() * sizeof(capnp::word), release,
                         holder);
    bytes += frame.size();
    socket_->send(frame, i + 1 < count ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
  if (count == 1) delete holder;
  bytesSent_ += bytes;
  return true;
}

}  // namespace tandem
