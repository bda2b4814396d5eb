// Console backends: where the guest's serial output goes and where its input comes from.
//   stdio          this process's stdin and stdout
//   file:PATH      output appended to PATH; no input
//   tcp:ADDR:PORT  listens on ADDR:PORT; one client at a time gets output and types input. Output
//                  while nobody is connected is kept (the last kBacklog bytes) for the next client.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "devices/serial.hpp"

namespace tandem::dev {

class Console : public ConsoleOutput {
public:
  using Deliver = std::function<size_t(std::span<const uint8_t>)>;  // returns the bytes it took

  // Starts a thread that hands input to deliver (the serial's receive) until stopInput().
  virtual void startInput(Deliver deliver) = 0;
  virtual void stopInput() = 0;
  // The spec this console was opened from, for status and messages.
  virtual std::string describe() const = 0;
};

// Opens the console named by spec; throws Error(BadInput) with one sentence for a bad spec, an
// address already in use or a file that cannot be written.
std::unique_ptr<Console> openConsole(std::string_view spec);

// A console on two file descriptors that the caller owns and keeps open (stdio uses 0 and 1).
std::unique_ptr<Console> fdConsole(int inputFd, int outputFd, std::string description);

}  // namespace tandem::dev
