// Where tandem puts its boot structures in the guest's first megabyte, and what it writes there.
//
//   0x0500  GDT (null, 64-bit code 0x08, data 0x10, 32-bit code 0x18)
//   0x1000  struct hvm_start_info (PVH), memory map right after it
//   0x2000  kernel command line (NUL-ended, at most kMaxCmdline bytes)
//   0x10000 identity page tables: PML4, PDPTs, then one page directory (2 MiB pages) per GiB
//   0x100000 and up: the kernel
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <string_view>

#include "base/units.hpp"

namespace tandem {

class GuestMemory;

namespace boot {

constexpr Gpa kGdt{0x500};
constexpr Gpa kStartInfo{0x1000};
constexpr Gpa kMemoryMap{0x1040};
constexpr Gpa kCmdline{0x2000};
constexpr uint64_t kMaxCmdline = 0x1000 - 1;
constexpr Gpa kPageTables{0x10000};
constexpr Gpa kPageTablesEnd{0x9f000};
constexpr Gpa kKernelLowest{0x100000};

// Writes the PVH start info, memory map and command line. Throws BadInput for a too long cmdline.
void writeStartInfo(GuestMemory& memory, std::string_view cmdline);
// Writes the GDT and page tables that identity-map all RAM and the 32-bit hole below 4 GiB.
void writeLongModeTables(GuestMemory& memory);

// Special registers for a vCPU entering at a 64-bit entry with the tables above.
kvm_sregs longModeSregs(kvm_sregs current);
// ... or at a PVH 32-bit entry (protected mode, paging off).
kvm_sregs protectedModeSregs(kvm_sregs current);
// General registers at the 64-bit entry: rdi = index, rsi = start info, rdx = count (guest_abi.h).
kvm_regs entry64Regs(uint64_t entry, uint32_t vcpuIndex, uint32_t vcpuCount);
// ... at the PVH entry: ebx = start info.
kvm_regs pvhEntryRegs(uint64_t entry);

}  // namespace boot
}  // namespace tandem
