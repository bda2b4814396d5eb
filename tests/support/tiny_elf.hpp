// Builds minimal guest kernels in memory: one PT_LOAD at 1 MiB with the given code, and entry notes.
// Used to test the ELF loader and what tandem does when a guest faults.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tandem::test {

struct TinyElfOptions {
  std::vector<uint8_t> code;
  bool entry64Note = true;   // "tandem" note pointing at the code
  bool pvhNote = false;      // "Xen" PHYS32_ENTRY note pointing at the code
  uint16_t machine = 62;     // EM_X86_64
  uint64_t loadAddress = 0x100000;
};

std::vector<uint8_t> tinyElf(const TinyElfOptions& options);
// Writes bytes to a new temporary file and returns its path; the caller removes it.
std::string writeTempFile(const std::vector<uint8_t>& bytes, const std::string& stem);

}  // namespace tandem::test
