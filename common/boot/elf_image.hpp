// ElfImage: a guest kernel read from an ELF64 file: its loadable segments and its entry points.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/units.hpp"

namespace tandem {

class GuestMemory;

struct ElfImage {
  struct Segment {
    Gpa start;                  // physical load address (p_paddr)
    std::vector<uint8_t> bytes; // file contents
    uint64_t memorySize = 0;    // p_memsz: the rest, past bytes, is zero
  };

  std::string path;
  std::vector<Segment> segments;
  std::optional<uint64_t> entry64;     // "tandem" note: 64-bit entry, long mode
  std::optional<uint64_t> pvhEntry32;  // "Xen" PHYS32_ENTRY note: PVH 32-bit entry

  // Reads and checks path; throws Error(BadInput) with one sentence when it is unusable.
  static ElfImage load(const std::string& path);
  // Parses an image already in memory (path only names it in messages).
  static ElfImage parse(const std::string& path, const std::vector<uint8_t>& file);

  // Highest-plus-one physical address the segments occupy.
  Gpa end() const;
  // Copies the segments into guest memory; throws BadInput if they do not fit.
  void loadInto(GuestMemory& memory, Gpa lowestAllowed) const;
};

}  // namespace tandem
