// Command-line parsing shared by the subcommands: "--name value" and "--name=value" options.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace tandem::cli {

class Arguments {
public:
  // Parses args (after the subcommand); every option must be in `known` (with a value) or in
  // `flags` (without one). Throws Error(BadInput) naming an unknown option or a missing value.
  Arguments(const std::vector<std::string>& args, const std::string& command, std::set<std::string> known,
            std::set<std::string> flags = {});

  std::optional<std::string> value(const std::string& name) const;  // the last one given
  std::vector<std::string> values(const std::string& name) const;   // all, in order (repeatable options)
  bool flag(const std::string& name) const { return flags_.count(name) > 0; }

private:
  std::map<std::string, std::vector<std::string>> values_;
  std::set<std::string> flags_;
};

// "512M", "2G", "64MiB", "1048576": a size in bytes. Throws BadInput naming option on anything else.
uint64_t parseSize(const std::string& text, const std::string& option);
// "PATH" or "PATH,readonly": a --disk option.
struct DiskOption {
  std::string path;
  bool readonly = false;
};
DiskOption parseDisk(const std::string& text);

// "tap=NAME" or "tap=NAME,mac=52:54:00:12:34:56": a --net option.
struct NetOption {
  std::string tap;
  std::string mac;  // empty: derived from the tap's name
};
NetOption parseNet(const std::string& text);

// A decimal number in [min, max]. Throws BadInput naming option.
uint64_t parseNumber(const std::string& text, const std::string& option, uint64_t min, uint64_t max);

}  // namespace tandem::cli
