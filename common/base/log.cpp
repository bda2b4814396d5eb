#include "base/log.hpp"

#include <unistd.h>

#include <cstdlib>
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

}  // namespace tandem::log
