// Helpers for tests that snapshot a running tandem and restore it in a new process.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "control/control_server.hpp"
#include "support/tandem_run.hpp"

namespace tandem::test {

// A private temporary directory, removed with everything in it.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& stem) {
    std::string pattern = (std::filesystem::temp_directory_path() / ("tandem-test-" + stem + "-XXXXXX")).string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

inline nlohmann::json control(const std::string& socket, const nlohmann::json& request) {
  return controlRequest(socket, request);
}

// Reads lines until none arrives for `quiet`; returns the last line seen that starts with prefix.
inline std::string drainUntilQuiet(ChildProcess& child, const std::string& prefix, std::chrono::milliseconds quiet,
                                   std::string last = "") {
  while (auto line = child.readLine(quiet))
    if (line->starts_with(prefix)) last = *line;
  return last;
}

inline uint64_t tickNumber(const std::string& line) { return std::stoull(line.substr(line.find(' ') + 1)); }

}  // namespace tandem::test
