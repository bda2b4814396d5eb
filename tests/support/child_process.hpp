// ChildProcess: a program the test started, with pipes to its stdin, stdout and stderr. Reads lines
// with a deadline; killed (by its pid) and reaped in the destructor if it is still running.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace tandem::test {

class ChildProcess {
public:
  using Clock = std::chrono::steady_clock;

  explicit ChildProcess(const std::vector<std::string>& argv);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Writes text to the child's stdin.
  void send(const std::string& text);
  void closeStdin();
  // The next line of stdout without its line ending, or nullopt at end of output or on timeout.
  std::optional<std::string> readLine(std::chrono::milliseconds timeout);
  // Reads lines until one contains needle; returns it, or nullopt. Every line read is kept in lines().
  std::optional<std::string> waitForLine(const std::string& needle, std::chrono::milliseconds timeout);
  const std::vector<std::string>& lines() const { return lines_; }
  // This process carries on the console of `previous` (a snapshot restored, a guest migrated):
  // the line `previous` had begun and not finished is the start of this one's first line.
  void continueConsoleOf(const ChildProcess& previous) { buffer_.insert(0, previous.buffer_); }
  static constexpr int kTimedOut = -1;
  // Waits for the exit; the exit code, 128+signal if killed, kTimedOut if it did not end in time.
  int wait(std::chrono::milliseconds timeout);
  // Everything the child wrote to stderr (read after it exited).
  std::string stderrText();
  void kill(int signal);

private:
  bool fillBuffer(Clock::time_point deadline);

  pid_t pid_ = -1;
  int stdin_ = -1, stdout_ = -1, stderr_ = -1;
  std::string buffer_;
  bool eof_ = false;
  std::optional<int> status_;
  std::vector<std::string> lines_;
};

}  // namespace tandem::test
