// Log lines to stderr: "tandem: <text>". Level from TANDEM_LOG (error, warn, info, debug; default warn).
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>

#include "base/error.hpp"

namespace tandem::log {

enum class Level { Error, Warn, Info, Debug };

bool enabled(Level level);
void write(Level level, std::string_view text);

// "2026-11-23T13:28:48.123456Z": a moment in UTC to the microsecond, as QEMU's -msg timestamp=on
// writes it, for log lines that mark when something happened (the two ends of a migration).
std::string utcTime(std::chrono::system_clock::time_point at);

template <typename... Args>
void error(Args&&... args) {
  write(Level::Error, concat(std::forward<Args>(args)...));
}
template <typename... Args>
void warn(Args&&... args) {
  if (enabled(Level::Warn)) write(Level::Warn, concat(std::forward<Args>(args)...));
}
template <typename... Args>
void info(Args&&... args) {
  if (enabled(Level::Info)) write(Level::Info, concat(std::forward<Args>(args)...));
}
template <typename... Args>
void debug(Args&&... args) {
  if (enabled(Level::Debug)) write(Level::Debug, concat(std::forward<Args>(args)...));
}

}  // namespace tandem::log
