// This host's identity for peers that must know whether they share it: the kernel's boot id
// (/proc/sys/kernel/random/boot_id), the same for every process until the host reboots.
#pragma once

#include <fstream>
#include <string>

namespace tandem {

inline std::string hostBootId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}

}  // namespace tandem
