#include "boot/boot_layout.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "base/error.hpp"
#include "boot/guest_abi.h"
#include "memory/guest_memory.hpp"

namespace tandem::boot {

namespace {

// The PVH boot ABI's structures (Xen's public arch-x86/hvm/start_info.h), version 1.
struct HvmStartInfo {
  uint32_t magic;
  uint32_t version;
  uint32_t flags;
  uint32_t nrModules;
  uint64_t modlistPaddr;
  uint64_t cmdlinePaddr;
  uint64_t rsdpPaddr;
  uint64_t memmapPaddr;
  uint32_t memmapEntries;
  uint32_t reserved;
};
static_assert(sizeof(HvmStartInfo) == 56);

struct HvmMemmapEntry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
  uint32_t reserved;
};
static_assert(sizeof(HvmMemmapEntry) == 24);

constexpr uint64_t kPresentWritable = 0x7;  // present, writable, user: the guest may run its jobs at CPL 3
constexpr uint64_t kLargePage = 0x80;

template <typename T>
void put(GuestMemory& memory, Gpa gpa, const T& value) {
  memory.write(gpa, std::span(reinterpret_cast<const uint8_t*>(&value), sizeof value));
}

kvm_segment flatSegment(uint16_t selector, uint8_t type, bool code64, bool db) {
  kvm_segment s{};
  s.base = 0;
  s.limit = 0xffffffff;
  s.selector = selector;
  s.type = type;
  s.present = 1;
  s.dpl = 0;
  s.db = db ? 1 : 0;
  s.s = 1;
  s.l = code64 ? 1 : 0;
  s.g = 1;
  return s;
}

constexpr uint64_t kCr0Pe = 1u << 0, kCr0Mp = 1u << 1, kCr0Et = 1u << 4, kCr0Ne = 1u << 5, kCr0Wp = 1u << 16,
                   kCr0Pg = 1u << 31;
constexpr uint64_t kCr4Pae = 1u << 5, kCr4Osfxsr = 1u << 9, kCr4Osxmmexcpt = 1u << 10;
constexpr uint64_t kEferLme = 1u << 8, kEferLma = 1u << 10;

}  // namespace

void writeStartInfo(GuestMemory& memory, std::string_view cmdline) {
  if (cmdline.size() > kMaxCmdline)
    failBadInput("the kernel command line is ", cmdline.size(), " bytes; at most ", kMaxCmdline, " fit");
  std::vector<uint8_t> text(cmdline.begin(), cmdline.end());
  text.push_back(0);
  memory.write(kCmdline, text);

  std::vector<HvmMemmapEntry> map;
  for (const auto& r : memory.regions()) map.push_back({r.start.value, r.size, PVH_MEMMAP_TYPE_RAM, 0});
  memory.write(kMemoryMap, std::span(reinterpret_cast<const uint8_t*>(map.data()), map.size() * sizeof map[0]));

  HvmStartInfo info{};
  info.magic = PVH_START_MAGIC;
  info.version = 1;
  info.cmdlinePaddr = kCmdline.value;
  info.memmapPaddr = kMemoryMap.value;
  info.memmapEntries = static_cast<uint32_t>(map.size());
  put(memory, kStartInfo, info);
}

void writeLongModeTables(GuestMemory& memory) {
  const uint64_t gdt[] = {0, 0x00af9a000000ffff, 0x00cf92000000ffff, 0x00cf9a000000ffff};
  put(memory, kGdt, gdt);

  uint64_t mapEnd = std::max(GuestMemory::kHoleEnd, memory.end().value);
  uint64_t directories = (mapEnd + kGiB - 1) / kGiB;            // one per GiB
  uint64_t pointerTables = (directories + 511) / 512;           // one per 512 GiB
  Gpa pml4 = kPageTables;
  Gpa firstPdpt = pml4 + kPageSize;
  Gpa firstPd = firstPdpt + pointerTables * kPageSize;
  assertThat(firstPd.value + directories * kPageSize <= kPageTablesEnd.value, "page tables for ", mapEnd,
             " bytes do not fit below 0x9f000");

  std::vector<uint64_t> table(512);
  for (uint64_t p = 0; p < pointerTables; ++p) {
    std::fill(table.begin(), table.end(), 0);
    for (uint64_t i = 0; i < 512 && p * 512 + i < directories; ++i)
      table[i] = (firstPd.value + (p * 512 + i) * kPageSize) | kPresentWritable;
    memory.write(firstPdpt + p * kPageSize, std::span(reinterpret_cast<const uint8_t*>(table.data()), kPageSize));
  }
  std::fill(table.begin(), table.end(), 0);
  for (uint64_t p = 0; p < pointerTables; ++p) table[p] = (firstPdpt.value + p * kPageSize) | kPresentWritable;
  memory.write(pml4, std::span(reinterpret_cast<const uint8_t*>(table.data()), kPageSize));
  for (uint64_t d = 0; d < directories; ++d) {
    for (uint64_t i = 0; i < 512; ++i) table[i] = (d * kGiB + i * 2 * kMiB) | kPresentWritable | kLargePage;
    memory.write(firstPd + d * kPageSize, std::span(reinterpret_cast<const uint8_t*>(table.data()), kPageSize));
  }
}

kvm_sregs longModeSregs(kvm_sregs s) {
  s.cs = flatSegment(0x08, 0xb, true, false);
  s.ds = s.es = s.fs = s.gs = s.ss = flatSegment(0x10, 0x3, false, true);
  s.gdt.base = kGdt.value;
  s.gdt.limit = 4 * 8 - 1;
  s.cr3 = kPageTables.value;
  s.cr4 = kCr4Pae | kCr4Osfxsr | kCr4Osxmmexcpt;
  s.cr0 = kCr0Pe | kCr0Mp | kCr0Et | kCr0Ne | kCr0Wp | kCr0Pg;
  s.efer = kEferLme | kEferLma;
  return s;
}

kvm_sregs protectedModeSregs(kvm_sregs s) {
  s.cs = flatSegment(0x18, 0xb, false, true);
  s.ds = s.es = s.fs = s.gs = s.ss = flatSegment(0x10, 0x3, false, true);
  s.gdt.base = kGdt.value;
  s.gdt.limit = 4 * 8 - 1;
  s.cr0 = kCr0Pe | kCr0Et;
  s.cr4 = 0;
  s.efer = 0;
  return s;
}

kvm_regs entry64Regs(uint64_t entry, uint32_t vcpuIndex, uint32_t vcpuCount) {
  kvm_regs r{};
  r.rip = entry;
  r.rflags = 0x2;
  r.rdi = vcpuIndex;
  r.rsi = kStartInfo.value;
  r.rdx = vcpuCount;
  return r;
}

kvm_regs pvhEntryRegs(uint64_t entry) {
  kvm_regs r{};
  r.rip = entry;
  r.rflags = 0x2;
  r.rbx = kStartInfo.value;
  return r;
}

}  // namespace tandem::boot
