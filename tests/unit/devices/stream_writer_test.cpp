#include "devices/stream_writer.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "base/fd.hpp"

using namespace tandem;
using namespace tandem::dev;

namespace {

struct Pipe {
  Fd read, write;
  Pipe() {
    int fds[2];
    BOOST_REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    read.reset(fds[0]);
    write.reset(fds[1]);
  }
};

std::string drain(int fd) {
  std::string text;
  char chunk[65536];
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  for (ssize_t n; (n = ::read(fd, chunk, sizeof chunk)) > 0;) text.append(chunk, static_cast<size_t>(n));
  return text;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(stream_writer)

BOOST_AUTO_TEST_CASE(a_reader_that_keeps_up_gets_every_byte_at_once) {
  Pipe pipe;
  StreamWriter writer(pipe.write.get(), 1024);
  std::string text = "tick 1\ntick 2\n";
  BOOST_TEST((writer.write(std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size())) == StreamWriter::Result::Written));
  BOOST_TEST(drain(pipe.read.get()) == text);
}

BOOST_AUTO_TEST_CASE(a_full_pipe_queues_without_blocking_then_a_flush_delivers_in_order) {
  Pipe pipe;
  ::fcntl(pipe.write.get(), F_SETPIPE_SZ, 4096);
  StreamWriter writer(pipe.write.get(), 64 * 1024);
  // The caller's descriptor is left blocking: only the writer's own opening is non-blocking.
  BOOST_TEST((::fcntl(pipe.write.get(), F_GETFL) & O_NONBLOCK) == 0);
  std::vector<uint8_t> bytes(20000);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 7);
  BOOST_TEST((writer.write(bytes) == StreamWriter::Result::Queued));
  BOOST_TEST(writer.hasQueued());
  std::string seen;
  while (writer.hasQueued()) {
    seen += drain(pipe.read.get());
    writer.flush();
  }
  seen += drain(pipe.read.get());
  BOOST_TEST(seen == std::string(bytes.begin(), bytes.end()));
}

BOOST_AUTO_TEST_CASE(a_socket_reader_that_falls_behind_the_limit_is_cut_off_and_sees_the_end) {
  int fds[2];
  BOOST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
  Fd reader(fds[0]), peer(fds[1]);
  int small = 4096;
  ::setsockopt(peer.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  StreamWriter writer(peer.get(), 8192);
  std::vector<uint8_t> chunk(1024, 'x');
  StreamWriter::Result result = StreamWriter::Result::Written;
  int writes = 0;
  for (; writes < 1000 && result != StreamWriter::Result::CutOff; ++writes) result = writer.write(chunk);
  BOOST_TEST((result == StreamWriter::Result::CutOff));
  BOOST_TEST(writes < 1000);
  BOOST_TEST((writer.write(chunk) == StreamWriter::Result::CutOff));  // and stays so
  BOOST_TEST(!writer.hasQueued());
  // The reader gets what was in its buffers, then the end of the stream.
  char buffer[65536];
  ssize_t n;
  while ((n = ::recv(reader.get(), buffer, sizeof buffer, 0)) > 0) {}
  BOOST_TEST(n == 0);
}

BOOST_AUTO_TEST_CASE(with_drop_a_reader_that_falls_behind_misses_what_comes_meanwhile_then_gets_output_again) {
  Pipe pipe;
  ::fcntl(pipe.write.get(), F_SETPIPE_SZ, 4096);
  StreamWriter writer(pipe.write.get(), 8192, StreamWriter::Overflow::Drop);
  std::vector<uint8_t> chunk(1024, 'a');
  StreamWriter::Result result = StreamWriter::Result::Written;
  uint64_t offered = 0;
  for (int i = 0; i < 100 && result != StreamWriter::Result::Dropped; ++i, offered += chunk.size()) result = writer.write(chunk);
  BOOST_TEST((result == StreamWriter::Result::Dropped));
  BOOST_TEST(writer.takeDropped() == 1024u);
  // The reader reads: what was queued comes out, then new bytes go through again.
  std::string seen;
  while (writer.hasQueued()) {
    seen += drain(pipe.read.get());
    writer.flush();
  }
  seen += drain(pipe.read.get());
  BOOST_TEST(seen.size() == offered - 1024);
  std::vector<uint8_t> later(10, 'b');
  BOOST_TEST((writer.write(later) == StreamWriter::Result::Written));
  BOOST_TEST(drain(pipe.read.get()) == "bbbbbbbbbb");
}

BOOST_AUTO_TEST_CASE(a_reader_that_went_away_is_gone_not_an_error) {
  auto previous = ::signal(SIGPIPE, SIG_IGN);  // as tandem's main does
  Pipe pipe;
  StreamWriter writer(pipe.write.get(), 1024);
  pipe.read.reset();
  std::vector<uint8_t> bytes(10, 'x');
  BOOST_TEST((writer.write(bytes) == StreamWriter::Result::Gone));
  ::signal(SIGPIPE, previous);
}

BOOST_AUTO_TEST_SUITE_END()
