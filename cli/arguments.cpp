#include "cli/arguments.hpp"

#include <cctype>
#include <charconv>

#include "base/error.hpp"
#include "base/units.hpp"

namespace tandem::cli {

Arguments::Arguments(const std::vector<std::string>& args, const std::string& command, std::set<std::string> known,
                     std::set<std::string> flags) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (!arg.starts_with("--"))
      failBadInput("unexpected argument '", arg, "' for tandem ", command, "; see tandem ", command, " --help");
    std::string name = arg.substr(2);
    std::optional<std::string> inlineValue;
    if (auto eq = name.find('='); eq != std::string::npos) {
      inlineValue = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (flags.count(name)) {
      if (inlineValue) failBadInput("option --", name, " of tandem ", command, " takes no value");
      flags_.insert(name);
      continue;
    }
    if (!known.count(name)) failBadInput("unknown option --", name, " for tandem ", command, "; see tandem ", command, " --help");
    if (inlineValue) {
      values_[name].push_back(*inlineValue);
    } else if (i + 1 < args.size()) {
      values_[name].push_back(args[++i]);
    } else {
      failBadInput("option --", name, " of tandem ", command, " needs a value");
    }
  }
}

std::optional<std::string> Arguments::value(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second.back();
}

std::vector<std::string> Arguments::values(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

uint64_t parseSize(const std::string& text, const std::string& option) {
  uint64_t number = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  std::string suffix(end, text.data() + text.size());
  for (auto& c : suffix) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  uint64_t unit = 0;
  if (suffix.empty() || suffix == "B") unit = 1;
  if (suffix == "K" || suffix == "KIB" || suffix == "KB") unit = kKiB;
  if (suffix == "M" || suffix == "MIB" || suffix == "MB") unit = kMiB;
  if (suffix == "G" || suffix == "GIB" || suffix == "GB") unit = kGiB;
  if (ec != std::errc() || end == text.data() || unit == 0 || number > UINT64_MAX / unit)
    failBadInput("--", option, " '", text, "' is not a size; write it like 512M or 2G");
  return number * unit;
}

uint64_t parseNumber(const std::string& text, const std::string& option, uint64_t min, uint64_t max) {
  uint64_t number = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty())
    failBadInput("--", option, " '", text, "' is not a number");
  if (number < min || number > max) failBadInput("--", option, " ", number, " is out of range (", min, " to ", max, ")");
  return number;
}

}  // namespace tandem::cli

namespace tandem::cli {

DiskOption parseDisk(const std::string& text) {
  DiskOption disk;
  auto comma = text.find(',');
  disk.path = text.substr(0, comma);
  if (comma != std::string::npos) {
    std::string flags = text.substr(comma + 1);
    if (flags != "readonly") failBadInput("--disk ", text, ": the only option after the path is 'readonly'");
    disk.readonly = true;
  }
  if (disk.path.empty()) failBadInput("--disk needs a file path, e.g. --disk /var/lib/tandem/vm1.img");
  return disk;
}

NetOption parseNet(const std::string& text) {
  NetOption net;
  size_t start = 0;
  for (;;) {
    size_t comma = text.find(',', start);
    std::string part = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (part.starts_with("tap=")) net.tap = part.substr(4);
    else if (part.starts_with("mac=")) net.mac = part.substr(4);
    else failBadInput("--net ", text, ": expected tap=NAME[,mac=MAC]");
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (net.tap.empty()) failBadInput("--net ", text, ": name the tap device, e.g. --net tap=tap0");
  return net;
}

}  // namespace tandem::cli
