#include "base/log.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

namespace tandem::log {

namespace {

Level configuredLevel() {
  const char* env = std::getenv("TANDEM_LOG");
  std::string_view v = env ? env : "";
  if (v == "error") return Level::Error;
  if (v == "info") return Level::Info;
  if (v == "debug") return Level::Debug;
  return Level::Warn;
}

}  // namespace

bool enabled(Level level) {
  static const Level configured = configuredLevel();
  return level <= configured;
}

void write(Level level, std::string_view text) {
  static constexpr std::string_view kPrefix[] = {"tandem: error: ", "tandem: warning: ", "tandem: ", "tandem: debug: "};
  std::string line(kPrefix[static_cast<int>(level)]);
  line.append(text).push_back('\n');
  // One write() per line, so lines from different threads never interleave.
  [[maybe_unused]] auto rc = ::write(STDERR_FILENO, line.data(), line.size());
}

std::string utcTime(std::chrono::system_clock::time_point at) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(at.time_since_epoch()).count();
  std::time_t seconds = static_cast<std::time_t>(us / 1'000'000);
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  char text[40];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday,
                utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<long long>(us % 1'000'000));
  return text;
}

}  // namespace tandem::log
