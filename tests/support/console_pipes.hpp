// Pipes for an in-process Machine's console: the test writes the guest's input to in[1] and reads
// what it printed from out[0] (non-blocking).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include <string>
#include <string_view>

namespace tandem::test {

struct ConsolePipes {
  int in[2], out[2];
  ConsolePipes() {
    BOOST_REQUIRE(::pipe2(in, O_CLOEXEC) == 0);
    BOOST_REQUIRE(::pipe2(out, O_CLOEXEC | O_NONBLOCK) == 0);
  }
  ~ConsolePipes() {
    for (int fd : {in[0], in[1], out[0], out[1]}) ::close(fd);
  }
  ConsolePipes(const ConsolePipes&) = delete;
  ConsolePipes& operator=(const ConsolePipes&) = delete;

  // What the guest printed since the last drain.
  std::string drain() {
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
    return text;
  }
  void type(std::string_view line) {
    std::string text = std::string(line) + "\n";
    BOOST_REQUIRE(::write(in[1], text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  }
};

}  // namespace tandem::test
