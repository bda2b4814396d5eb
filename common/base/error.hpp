// Errors: one exception type for what should not happen, with a kind, the failed operation and
// errno; BadInput is the kind for a user's mistake (the CLI turns it into exit code 2).
#pragma once

#include <cerrno>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace tandem {

enum class ErrorKind {
  Failed,         // a syscall or ioctl failed, or an invariant broke
  BadInput,       // the user's input is unusable: a sentence saying what and what to do
  Disconnected,   // a peer went away
  Unimplemented,  // asked for something tandem does not do
};

class Error : public std::runtime_error {
public:
  Error(ErrorKind kind, std::string message, int errnoValue = 0)
      : std::runtime_error(std::move(message)), kind_(kind), errno_(errnoValue) {}
  ErrorKind kind() const { return kind_; }
  int errnoValue() const { return errno_; }

private:
  ErrorKind kind_;
  int errno_;
};

// Joins its arguments as text: concat("slot ", 3, " at ", gpa).
template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream out;
  (out << ... << std::forward<Args>(args));
  return out.str();
}

template <typename... Args>
[[noreturn]] void failBadInput(Args&&... args) {
  throw Error(ErrorKind::BadInput, concat(std::forward<Args>(args)...));
}

// Throws Error(Failed) naming the operation and errno's text when rc < 0.
[[noreturn]] void throwErrno(std::string_view operation, int errnoValue);

template <typename T>
T checkSys(T rc, std::string_view operation) {
  if (rc < 0) throwErrno(operation, errno);
  return rc;
}

// Calls f() again while it fails with EINTR; throws on any other failure.
template <typename F>
auto retrySys(std::string_view operation, F&& f) {
  for (;;) {
    auto rc = f();
    if (rc >= 0) return rc;
    if (errno != EINTR) throwErrno(operation, errno);
  }
}

// Preconditions (the caller is wrong) and invariants (we are wrong), with the values that matter.
template <typename... Args>
void require(bool condition, Args&&... what) {
  if (!condition) throw Error(ErrorKind::Failed, concat("precondition failed: ", std::forward<Args>(what)...));
}
template <typename... Args>
void assertThat(bool condition, Args&&... what) {
  if (!condition) throw Error(ErrorKind::Failed, concat("invariant broken: ", std::forward<Args>(what)...));
}

}  // namespace tandem
